# bench/lib.sh - shared by the benchmarks that start the whole service stack.
# Sourced after scripts/lib.sh and after LEADFLOW_DATABASE_URL is exported.

# Exports what the four services need for a benchmark run: the admin key, the HTTP
# port, Redis, and the three ZeroMQ endpoints, then migrates and loads the demo reps
# with unlimited capacity (so capacity never sends leads to the queue).
# Usage: lf_bench_stack_env HTTP_PORT REDIS_PORT ZMQ1 ZMQ2 ZMQ3
lf_bench_stack_env() {
    export LEADFLOW_ADMIN_KEY=bench-key LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 LEADFLOW_INTAKE_PORT=$1 LEADFLOW_LOG_LEVEL=warn
    export LEADFLOW_CONFIG_DIR=$PWD/config LEADFLOW_REDIS_PORT=$2 LEADFLOW_REDIS_PREFIX=bench:
    export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$3 LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:$3
    export LEADFLOW_ROUTER_EVENTS_BIND=tcp://127.0.0.1:$4 LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:$4
    export LEADFLOW_SCHEDULER_EVENTS_BIND=tcp://127.0.0.1:$5 LEADFLOW_SCHEDULER_EVENTS=tcp://127.0.0.1:$5
    build/bin/leadflow-migrate >/dev/null 2>&1
    psql -qX "$LEADFLOW_DATABASE_URL" -f db/seed/demo_reps.sql >/dev/null
    psql -qX "$LEADFLOW_DATABASE_URL" -c "UPDATE reps SET capacity = 1000000" >/dev/null
}
