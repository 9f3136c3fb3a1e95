#!/usr/bin/env bash
# make run: leadflow on one machine. Installs missing packages (as root), builds,
# starts PostgreSQL (port 55432) and Redis (port 56379) with data under ./var,
# applies migrations, loads demo reps, starts the four services and waits; Ctrl-C
# or SIGTERM stops everything in order. Run again, it reuses ./var.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

lf_need_pkgs $LF_BUILD_PKGS $LF_RUN_PKGS
make -s -j"$(nproc 2>/dev/null || echo 2)" bins

VAR=$PWD/var
PG_PORT=${LEADFLOW_PG_PORT:-55432}
REDIS_PORT=${LEADFLOW_REDIS_PORT:-56379}
HTTP_PORT=${LEADFLOW_INTAKE_PORT:-8080}
export LEADFLOW_ADMIN_KEY=${LEADFLOW_ADMIN_KEY:-dev-admin-key}
# The development key is shorter than the 16 characters intake requires of an admin key.
if [ "$LEADFLOW_ADMIN_KEY" = dev-admin-key ]; then export LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1; fi
# Only this machine reaches intake unless told otherwise (LEADFLOW_INTAKE_ADDR=0.0.0.0).
export LEADFLOW_INTAKE_ADDR=${LEADFLOW_INTAKE_ADDR:-127.0.0.1}
export LEADFLOW_DATABASE_URL=${LEADFLOW_DATABASE_URL:-postgresql://leadflow@127.0.0.1:$PG_PORT/leadflow}
export LEADFLOW_REDIS_PORT=$REDIS_PORT LEADFLOW_INTAKE_PORT=$HTTP_PORT
export LEADFLOW_CONFIG_DIR=${LEADFLOW_CONFIG_DIR:-$PWD/config}
mkdir -p "$VAR/log"
chmod 755 "$VAR"

pids=()
PG_DIR=$VAR/pg
stop_all() {
    trap - INT TERM EXIT
    lf_say "stopping services"
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    lf_redis_stop "$VAR/redis" "$REDIS_PORT"
    lf_pg_stop "$PG_DIR"
    lf_say "stopped"
}
trap stop_all INT TERM EXIT

# PostgreSQL runs as the postgres user, who must be able to reach its data folder.
# A checkout under a private home (/root is 0700) is not reachable: the data then
# lives in /var/lib/leadflow/<checkout hash>, and var/pg links to it.
PG_DIR=$VAR/pg
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$VAR" 2>/dev/null; then
    real=/var/lib/leadflow/$(printf '%s' "$PWD" | sha1sum | cut -c1-12)/pg
    mkdir -p "$(dirname "$real")"; chmod 755 /var/lib/leadflow "$(dirname "$real")"
    [ -L "$PG_DIR" ] || { [ -e "$PG_DIR" ] && lf_say "var/pg exists but postgres cannot reach it" && exit 1; ln -s "$real" "$PG_DIR"; }
    PG_DIR=$real
    lf_say "postgres cannot reach $VAR; PostgreSQL data is in $real (var/pg links to it)"
fi
lf_say "starting PostgreSQL on 127.0.0.1:$PG_PORT (data in var/pg)"
lf_pg_start "$PG_DIR" "$PG_PORT"
lf_say "starting Redis on 127.0.0.1:$REDIS_PORT (data in var/redis)"
lf_redis_start "$VAR/redis" "$REDIS_PORT"
build/bin/leadflow-migrate
"$PG_BIN/psql" -q "$LEADFLOW_DATABASE_URL" -f db/seed/demo_reps.sql

for s in intake router scheduler analytics; do
    build/bin/leadflow-$s 2> >(tee -a "$VAR/log/$s.log" >&2) &
    pids+=($!)
done
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null || { lf_say "intake did not start"; exit 1; }

cat <<MSG

leadflow is running: intake on http://127.0.0.1:$HTTP_PORT, admin key: $LEADFLOW_ADMIN_KEY
(set LEADFLOW_ADMIN_KEY before 'make run' to choose another). Logs: var/log/. Ctrl-C stops.

Post a lead:
  curl -s -X POST http://127.0.0.1:$HTTP_PORT/v1/leads \\
    -H 'Authorization: Bearer $LEADFLOW_ADMIN_KEY' -H 'Content-Type: application/json' \\
    -d '{"name":"王芳","company":"华东医疗","phone":"138 0013 8000","budget":"50万","urgency":"高","industry":"medical","region":"east"}'

Then see it graded and assigned (use the id it returned):
  curl -s http://127.0.0.1:$HTTP_PORT/v1/leads/<id> -H 'Authorization: Bearer $LEADFLOW_ADMIN_KEY'

MSG
# Wait for any service to exit (a crash) or for a signal.
set +e
wait -n "${pids[@]}"
code=$?
lf_say "a service exited (status $code); stopping the rest"
exit 1
