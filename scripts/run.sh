#!/usr/bin/env bash
# make run: leadflow on one machine. Installs missing packages (as root), builds,
# starts PostgreSQL (port 55432) and Redis (port 56379) with data under ./var,
# applies migrations, loads demo reps, starts the four services and supervises them:
# a service that exits is started again after a pause that doubles with each quick
# failure (1 s up to 30 s; back to 1 s once it ran a minute), with a line in the log.
# Ctrl-C, or SIGTERM to this script or to its whole process group, stops everything
# in order, PostgreSQL and Redis included. Run again, it reuses ./var.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

lf_need_pkgs $LF_BUILD_PKGS $LF_RUN_PKGS
make -s -j"$(nproc 2>/dev/null || echo 2)" bins

# Data and logs under ./var (LEADFLOW_VAR_DIR elsewhere: tests use a folder of their own).
VAR=${LEADFLOW_VAR_DIR:-$PWD/var}
PG_PORT=${LEADFLOW_PG_PORT:-55432}
REDIS_PORT=${LEADFLOW_REDIS_PORT:-56379}
HTTP_PORT=${LEADFLOW_INTAKE_PORT:-8080}
export LEADFLOW_ADMIN_KEY=${LEADFLOW_ADMIN_KEY:-dev-admin-key}
# The development key is shorter than the 16 characters intake requires of an admin key.
if [ "$LEADFLOW_ADMIN_KEY" = dev-admin-key ]; then export LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1; fi
# Only this machine reaches intake unless told otherwise (LEADFLOW_INTAKE_ADDR=0.0.0.0).
export LEADFLOW_INTAKE_ADDR=${LEADFLOW_INTAKE_ADDR:-127.0.0.1}
# The services log in as their own roles (0012_roles.sql) on the PostgreSQL started here;
# a LEADFLOW_DATABASE_URL given by the caller is used as it is, for every program.
OWN_DB=${LEADFLOW_DATABASE_URL:+given}
export LEADFLOW_DATABASE_URL=${LEADFLOW_DATABASE_URL:-postgresql://leadflow@127.0.0.1:$PG_PORT/leadflow}
export LEADFLOW_REDIS_PORT=$REDIS_PORT LEADFLOW_INTAKE_PORT=$HTTP_PORT
export LEADFLOW_CONFIG_DIR=${LEADFLOW_CONFIG_DIR:-$PWD/config}
# On one machine, a notification receiver on 127.0.0.1 is allowed (compose: refused).
export LEADFLOW_NOTIFY_ALLOW_PRIVATE=${LEADFLOW_NOTIFY_ALLOW_PRIVATE:-loopback}
mkdir -p "$VAR/log"
chmod 755 "$VAR"
# Notification secrets are stored encrypted with LEADFLOW_SECRET_KEY: kept if set, else a
# key made once for this folder and read again on every start (losing it loses them).
if [ -z "${LEADFLOW_SECRET_KEY:-}" ]; then
    [ -s "$VAR/secret.key" ] ||
        (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$VAR/secret.key")
    LEADFLOW_SECRET_KEY=$(cat "$VAR/secret.key")
fi
export LEADFLOW_SECRET_KEY

SERVICES=(intake router scheduler analytics)
declare -A pid_of=() started_at=() delay_of=()
PG_DIR=$VAR/pg
stopping=0
stop_all() {
    # Ignore further signals while stopping (not the default action: SIGTERM to the
    # process group arrives more than once - from the sender and again from make - and
    # a second one would end this script before PostgreSQL and Redis are stopped).
    trap '' INT TERM HUP
    trap - EXIT
    stopping=1
    lf_say "stopping services"
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        p=${pid_of[${SERVICES[$i]}]:-}
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for s in "${SERVICES[@]}"; do
        p=${pid_of[$s]:-}
        [ -n "$p" ] && wait "$p" 2>/dev/null || true
    done
    lf_redis_stop "$VAR/redis" "$REDIS_PORT"
    lf_pg_stop "$PG_DIR"
    lf_say "stopped"
}
# SIGTERM to the whole process group reaches the services too; the trap still stops
# PostgreSQL and Redis, which run in sessions of their own (pg_ctl and redis-server
# --daemonize detach), so nothing else would.
trap 'stop_all; exit 0' INT TERM HUP
trap stop_all EXIT

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
if [ -z "$OWN_DB" ]; then
    "$PG_BIN/psql" -q "$LEADFLOW_DATABASE_URL" -c "ALTER ROLE leadflow_intake LOGIN" \
        -c "ALTER ROLE leadflow_router LOGIN" -c "ALTER ROLE leadflow_scheduler LOGIN" \
        -c "ALTER ROLE leadflow_analytics LOGIN"
fi

start_service() {
    local s=$1 url=$LEADFLOW_DATABASE_URL
    # Each service as its own database role, unless the caller gave a URL for all.
    [ -n "$OWN_DB" ] || url=postgresql://leadflow_$s@127.0.0.1:$PG_PORT/leadflow
    LEADFLOW_DATABASE_URL=$url build/bin/leadflow-$s 2> >(tee -a "$VAR/log/$s.log" >&2) &
    pid_of[$s]=$!
    started_at[$s]=$SECONDS
}
for s in "${SERVICES[@]}"; do
    start_service "$s"
    delay_of[$s]=1
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
# Supervise: wait for any service to exit (or a signal, whose trap stops everything),
# then start what exited again after its back-off pause. The pause is slept in the
# background so a signal interrupts it at once.
set +e
while [ "$stopping" -eq 0 ]; do
    wait -n "${pid_of[@]}"
    for s in "${SERVICES[@]}"; do
        kill -0 "${pid_of[$s]}" 2>/dev/null && continue
        wait "${pid_of[$s]}" 2>/dev/null
        code=$?
        [ "$stopping" -eq 0 ] || break
        if [ $((SECONDS - ${started_at[$s]})) -ge 60 ]; then delay_of[$s]=1; fi
        delay=${delay_of[$s]}
        lf_say "leadflow-$s exited (status $code); restarting it in ${delay}s (log: var/log/$s.log)"
        echo "$(date -u +%FT%TZ) leadflow-$s exited (status $code); restarted after ${delay}s" >>"$VAR/log/supervisor.log"
        sleep "$delay" &
        wait $!
        [ "$stopping" -eq 0 ] || break
        next=$((delay * 2)); [ "$next" -le 30 ] || next=30
        delay_of[$s]=$next
        start_service "$s"
    done
done
