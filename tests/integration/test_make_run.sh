#!/usr/bin/env bash
# tests/integration/test_make_run.sh : the README's `make run`, as a user runs it.
#
# Starts scripts/run.sh (what `make run` runs) in a session of its own, on free loopback
# ports and a data folder of its own, and checks what a user relies on:
#   - intake answers on 127.0.0.1 only, and a posted lead is graded and assigned;
#   - kill -9 of a service: the supervisor starts it again, logs it, and the pause
#     doubles on a quick second failure (1 s, then 2 s); the restarted router works;
#   - SIGTERM to the script stops everything: services, PostgreSQL and Redis.
# Needs release binaries in build/bin (make test builds them). Bounded: every wait
# has a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
WORK=$(mktemp -d /tmp/leadflow-makerun.XXXXXX)
chmod 755 "$WORK"
export LEADFLOW_VAR_DIR=$WORK/var
export LEADFLOW_PG_PORT=$(lf_free_port) LEADFLOW_REDIS_PORT=$(lf_free_port)
export LEADFLOW_INTAKE_PORT=$(lf_free_port)
E1=$(lf_free_port); E2=$(lf_free_port); E3=$(lf_free_port)
export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$E1 LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:$E1
export LEADFLOW_ROUTER_EVENTS_BIND=tcp://127.0.0.1:$E2 LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:$E2
export LEADFLOW_SCHEDULER_EVENTS_BIND=tcp://127.0.0.1:$E3 LEADFLOW_SCHEDULER_EVENTS=tcp://127.0.0.1:$E3
unset LEADFLOW_DATABASE_URL LEADFLOW_ADMIN_KEY LEADFLOW_INTAKE_ADDR
URL=http://127.0.0.1:$LEADFLOW_INTAKE_PORT
AUTH="Authorization: Bearer dev-admin-key"
SID=""
cleanup() {
    if [ -n "$SID" ]; then pkill -KILL -s "$SID" 2>/dev/null || true; fi
    lf_pg_stop "$WORK/var/pg"
    lf_redis_stop "$WORK/var/redis" "$LEADFLOW_REDIS_PORT"
    rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
    echo "FAIL $*" >&2
    tail -n 30 "$WORK/run.out" >&2 || true
    tail -n 10 "$WORK/var/log/supervisor.log" >&2 2>/dev/null || true
    exit 1
}
# wait_for SECONDS CMD... : polls CMD every 0.2 s until it succeeds or time is up.
wait_for() {
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
# The pid of a service started by this run (its session only: never another's).
svc_pid() { pgrep -s "$SID" -f "build/bin/leadflow-$1\$" | head -n 1; }
post_lead() {
    curl -fsS -X POST "$URL/v1/leads" -H "$AUTH" -H 'Content-Type: application/json' \
        -d "{\"name\":\"王芳\",\"company\":\"华东医疗$1\",\"phone\":\"1380013$1\",\"budget\":\"50万\",\"urgency\":\"高\",\"industry\":\"medical\",\"region\":\"east\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
assigned() { curl -fsS "$URL/v1/leads/$1" -H "$AUTH" | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin).get("owner") else 1)'; }

setsid bash scripts/run.sh >"$WORK/run.out" 2>&1 &
RUN=$!
SID=$RUN
wait_for 180 curl -fs "$URL/healthz" || fail "intake did not answer within 180 s"

# Safe default: only this machine reaches intake.
listen=$(ss -Hltn "sport = :$LEADFLOW_INTAKE_PORT" | awk '{print $4}')
[ "$listen" = "127.0.0.1:$LEADFLOW_INTAKE_PORT" ] || fail "intake listens on '$listen', not 127.0.0.1 only"

lead=$(post_lead 8001) || fail "POST /v1/leads"
wait_for 30 assigned "$lead" || fail "lead $lead not assigned within 30 s"

# kill -9 of the router: started again after 1 s, and it works.
old=$(svc_pid router)
[ -n "$old" ] || fail "no router process in the run's session"
kill -KILL "$old"
wait_for 20 grep -q "leadflow-router exited (status 137); restarted after 1s" "$WORK/var/log/supervisor.log" ||
    fail "supervisor did not log the router's restart"
wait_for 20 bash -c "p=\$(pgrep -s $SID -f 'build/bin/leadflow-router\$'); [ -n \"\$p\" ] && [ \"\$p\" != $old ]" ||
    fail "router not started again"
lead=$(post_lead 8002) || fail "POST /v1/leads after the restart"
wait_for 30 assigned "$lead" || fail "lead $lead not assigned by the restarted router"

# A second quick failure: the pause doubles.
kill -KILL "$(svc_pid router)"
wait_for 20 grep -q "leadflow-router exited (status 137); restarted after 2s" "$WORK/var/log/supervisor.log" ||
    fail "the second quick failure was not paused 2 s"
wait_for 20 bash -c "[ -n \"\$(pgrep -s $SID -f 'build/bin/leadflow-router\$')\" ]" || fail "router not started again (2nd)"

# SIGTERM to the script stops everything, PostgreSQL and Redis included.
kill -TERM "$RUN"
wait_for 60 bash -c "! kill -0 $RUN" || fail "run.sh did not exit within 60 s of SIGTERM"
wait "$RUN" 2>/dev/null || true
# The log tees of the services end when their pipes close, a moment after the script.
wait_for 10 bash -c "! pgrep -s $SID" || true
left=$(pgrep -s "$SID" || true)
[ -z "$left" ] || ps -o pid,ppid,stat,cmd -p "$(echo $left | tr ' ' ,)" >&2 || true
[ -z "$left" ] || fail "processes left in the run's session: $left"
[ ! -f "$WORK/var/pg/data/postmaster.pid" ] || fail "PostgreSQL still running after SIGTERM"
! redis-cli -p "$LEADFLOW_REDIS_PORT" ping >/dev/null 2>&1 || fail "Redis still running after SIGTERM"
SID=""
echo "PASS make run: 127.0.0.1 only, lead assigned, router restarted after 1 s then 2 s, SIGTERM stops all"
