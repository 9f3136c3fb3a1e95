# bench/lib.sh - shared by the benchmarks that start the whole service stack
# (bench/stack.sh, bench/latency.sh, bench/memory.sh), and by the benchmarks of SQL
# alone (lf_bench_pg_only). Sourced after scripts/lib.sh.
#
# The whole stack: one PostgreSQL and one Redis on free loopback ports in a temporary
# folder, the four services (release build, build/bin), the do-nothing libmicrohttpd
# server (bench/mhd_null.c) as the same-run reference, 200 reps and one intake key.
#
# The limits a benchmark raises, and the settings that raise them (docs/benchmarks.md):
#   LEADFLOW_RATE_PER_ADDR  = LF_BENCH_RATE_PER_ADDR (default 100000000 requests per
#       minute, the largest allowed: every request of a benchmark comes from 127.0.0.1,
#       and the default 12,000 a minute would cap it at 200/s after a minute's burst);
#   the intake key's rate_per_minute = LF_BENCH_KEY_RATE (default 10000000, the largest
#       leadflow-keys accepts), given to `leadflow-keys create --rate`.
# The limiters still run on every request; they never refuse one. The connection cap
# (LEADFLOW_MAX_CONNECTIONS_PER_ADDR, default 256) is left as it is: the benchmarks open
# 32 connections.

LF_BENCH_RATE_PER_ADDR=${LF_BENCH_RATE_PER_ADDR:-100000000}
LF_BENCH_KEY_RATE=${LF_BENCH_KEY_RATE:-10000000}
LF_BENCH_REPS=${LF_BENCH_REPS:-200}

# Median and spread of numbers, one a line on stdin (a leading '>' of a lower bound
# is ignored, and so is a line that is no number: a run without data prints "-").
lf_bench_median() { tr -d '>' | awk '$1 ~ /^-?[0-9.]+$/' | sort -g | awk '{a[++n]=$1} END {print (n ? a[int((n+1)/2)] : "-")}'; }
lf_bench_spread() { tr -d '>' | awk '$1 ~ /^-?[0-9.]+$/' | sort -g | awk '{a[++n]=$1} END {printf "min %s max %s", (n ? a[1] : "-"), (n ? a[n] : "-")}'; }
# The load average now: 1, 5 and 15 minutes.
lf_bench_load() { cut -d' ' -f1-3 /proc/loadavg; }

# Exports what the four services need for a benchmark run: the admin key, the HTTP
# port, Redis, the three ZeroMQ endpoints and the raised limits, then migrates and
# loads LF_BENCH_REPS reps (lf_bench_reps) and makes the intake key (LF_BENCH_KEY).
# Usage: lf_bench_stack_env HTTP_PORT REDIS_PORT ZMQ1 ZMQ2 ZMQ3
lf_bench_stack_env() {
    export LEADFLOW_ADMIN_KEY=bench-key LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 LEADFLOW_INTAKE_PORT=$1 LEADFLOW_LOG_LEVEL=warn
    export LEADFLOW_CONFIG_DIR=$PWD/config LEADFLOW_REDIS_PORT=$2 LEADFLOW_REDIS_PREFIX=bench:
    export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$3 LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:$3
    export LEADFLOW_ROUTER_EVENTS_BIND=tcp://127.0.0.1:$4 LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:$4
    export LEADFLOW_SCHEDULER_EVENTS_BIND=tcp://127.0.0.1:$5 LEADFLOW_SCHEDULER_EVENTS=tcp://127.0.0.1:$5
    export LEADFLOW_RATE_PER_ADDR=$LF_BENCH_RATE_PER_ADDR
    build/bin/leadflow-migrate >/dev/null 2>&1 || { build/bin/leadflow-migrate >&2; return 1; }
    lf_bench_reps "$LF_BENCH_REPS"
    # LF_BENCH_SQL: SQL run once after the migration, for experiments (as in
    # bench/router_drain.sh: e.g. a schema before a migration, to compare).
    if [ -n "${LF_BENCH_SQL:-}" ]; then
        psql -qX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" -c "$LF_BENCH_SQL" >/dev/null || return 1
    fi
    LF_BENCH_KEY=$(build/bin/leadflow-keys create --scope intake --channel api \
        --rate "$LF_BENCH_KEY_RATE" 2>/dev/null | awk '$1 == "key:" {print $2}')
    [ -n "$LF_BENCH_KEY" ] || { echo "leadflow-keys create failed" >&2; return 1; }
    export LF_BENCH_KEY
}

# N reps in 4 teams, skills and regions spread so that the router's filters do real
# work, all grades, capacity 1,000,000 (capacity never sends a lead to the pool), as
# bench_router's pool.
lf_bench_reps() {
    psql -qX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" >/dev/null <<SQL
INSERT INTO reps (id, name, team, skills, regions, grades, capacity, weight, active)
SELECT 'rep' || i, 'Rep ' || i, (ARRAY['east','north','south','west'])[1 + i % 4],
       ARRAY[(ARRAY['medical','manufacturing','software','education','retail'])[1 + i % 5]],
       ARRAY[(ARRAY['east','north','south','west'])[1 + (i / 5) % 4]],
       ARRAY['A','B','C','D'], 1000000, 1 + i % 3, true
  FROM generate_series(1, $1) i
ON CONFLICT (id) DO NOTHING;
SQL
}

# lf_bench_pg_only: for the benchmarks of SQL alone (no service runs): builds the
# binaries (leadflow-migrate), makes the work folder W and starts a private PostgreSQL on
# a free loopback port PG; both are stopped and removed when the script exits.
lf_bench_pg_only() {
    make -s WERROR=1 bins >/dev/null
    W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
    PG=$(lf_free_port)
    trap 'lf_pg_stop "$W/pg"; rm -rf "$W"' EXIT
    lf_pg_start "$W/pg" "$PG" >/dev/null
}

# The SQL of the benchmarks' leads, so every benchmark of SQL alone writes the same rows.
# lf_bench_raw EXPR: the raw submission (about 300 bytes) of the lead numbered EXPR.
lf_bench_raw() {
    echo "jsonb_build_object('name', '客户 ' || $1 || ' Wang', 'phone', '138' || $1,
                          'company', 'Company ' || ($1 % 50000) || ' Trading Co',
                          'email', 'buyer' || $1 || '@example.com',
                          'need', 'pumps and valves for a new plant, about 200 units',
                          'budget', '100k-200k CNY', 'region', 'east', 'industry',
                          'manufacturing', 'utm', 'spring-fair-2026-landing-page-b')"
}

# lf_bench_fill_leads URL N [routed]: writes N leads numbered 1..N (ids
# 00000000-0000-7000-8000-<n in hex>) into the database at URL as intake leaves them
# (name, company, e-mail, phone, raw submission, no owner), or with routed as the router
# leaves them (owner among 200 reps, team, grade, score, first-contact deadline), then
# VACUUM ANALYZE leads.
lf_bench_fill_leads() {
    local cols='' vals=''
    if [ "${3:-}" = routed ]; then
        cols=', owner, team, assigned_at, grade, score, score_breakdown, first_contact_due_at'
        vals=", 'rep' || (1 + g % 200), (ARRAY['east','south','north','west'])[1 + g % 4],
       timestamptz '2026-01-01' + g * interval '10 ms', 'B', 55,
       '{\"budget\": 20, \"urgency\": 15, \"decision_maker\": 20}',
       timestamptz '2026-01-01' + g * interval '10 ms' + interval '1 hour'"
    fi
    psql -qX -v ON_ERROR_STOP=1 "$1" -v n="$2" >/dev/null <<SQL
SET synchronous_commit = off;
INSERT INTO leads (id, channel, source, name, company, email, phone, need, extra, raw,
                   company_key, intake_open, phone_type, phone_country, created_at,
                   updated_at, region, industry$cols)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       (ARRAY['web_form','phone','trade_show','partner','api','referral'])[1 + g % 6],
       'bench', '客户 ' || g || ' Wang', 'Company ' || (g % 50000) || ' Trading Co',
       'buyer' || g || '@example' || (g % 977) || '.com',
       '+86138' || lpad((g % 100000000)::text, 8, '0'), 'pumps and valves',
       jsonb_build_object('sent_us', g), $(lf_bench_raw g),
       'company' || (g % 50000), true, 'mobile', 'CN',
       timestamptz '2026-01-01' + g * interval '10 ms',
       timestamptz '2026-01-01' + g * interval '10 ms', 'east', 'manufacturing'$vals
  FROM generate_series(1, :n) g;
VACUUM ANALYZE leads;
SQL
}

# lf_bench_new_leads ROWS: one INSERT ... ON CONFLICT DO NOTHING of new leads, as
# lf_intake_commit writes them, one per row of the query ROWS (columns id uuid, g
# bigint: a number no other new lead of the run has).
lf_bench_new_leads() {
    echo "INSERT INTO leads (id, channel, source, name, company, email, phone, need, extra, raw,
                   company_key, intake_open, phone_type, phone_country, flags)
SELECT x.id, 'api', 'bench', '客户 ' || x.g || ' Li', 'New Company ' || x.g,
       'new' || x.g || '@example.org', '+86139' || lpad(x.g::text, 8, '0'), 'pumps',
       jsonb_build_object('sent_us', x.g), $(lf_bench_raw x.g),
       'newcompany' || x.g, true, 'mobile', 'CN', '[]'
  FROM ($1) x ON CONFLICT DO NOTHING"
}

# lf_bench_up: the whole stack's databases. Makes the work folder W, picks the ports
# (PG RP HTTP NULLP Z1 Z2 Z3), starts PostgreSQL (track_commit_timestamp on, so that
# a row's commit time can be read back; pg_stat_statements with LF_BENCH_PROFILE=1)
# and Redis, then lf_bench_stack_env. Services are started with lf_bench_start.
lf_bench_up() {
    W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
    PG=$(lf_free_port); RP=$(lf_free_port); HTTP=$(lf_free_port); NULLP=$(lf_free_port)
    Z1=$(lf_free_port); Z2=$(lf_free_port); Z3=$(lf_free_port)
    lf_pg_start "$W/pg" "$PG" >/dev/null
    export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
    psql -qtAX "$LEADFLOW_DATABASE_URL" -c "ALTER SYSTEM SET track_commit_timestamp = on" >/dev/null
    [ -n "${LF_BENCH_PROFILE:-}" ] && psql -qtAX "$LEADFLOW_DATABASE_URL" \
        -c "ALTER SYSTEM SET shared_preload_libraries = pg_stat_statements, auto_explain" >/dev/null
    lf_as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -o "-p $PG -c log_error_verbosity=terse" \
        -l "$W/pg/postgres.log" -w -t 60 restart >/dev/null
    # LF_BENCH_EXPLAIN=MS (with LF_BENCH_PROFILE): auto_explain logs the plans of statements
    # slower than MS ms, with their nested statements, in $W/pg/postgres.log (LF_BENCH_KEEP)
    if [ -n "${LF_BENCH_PROFILE:-}" ] && [ -n "${LF_BENCH_EXPLAIN:-}" ]; then
        for kv in "log_min_duration = '${LF_BENCH_EXPLAIN}ms'" "log_analyze = on" \
                  "log_nested_statements = on" "log_buffers = on"; do
            psql -qtAX "$LEADFLOW_DATABASE_URL" -c "ALTER SYSTEM SET auto_explain.$kv" >/dev/null
        done
        psql -qtAX "$LEADFLOW_DATABASE_URL" -c "SELECT pg_reload_conf()" >/dev/null
    fi
    lf_redis_start "$W/redis" "$RP"
    lf_bench_stack_env "$HTTP" "$RP" "$Z1" "$Z2" "$Z3"
    if [ -n "${LF_BENCH_PROFILE:-}" ]; then
        psql -qX "$LEADFLOW_DATABASE_URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    fi
    return 0
}

# lf_bench_start NAME...: starts mhd_null (on NULLP) and/or services (intake, router,
# scheduler, analytics) in the background, their stderr in $W/NAME.log; waits for
# intake's /healthz when intake is among them. PIDs go to LF_BENCH_PID[NAME].
declare -A LF_BENCH_PID=()
lf_bench_start() {
    local s
    for s in "$@"; do
        if [ "$s" = mhd_null ]; then
            build/bench/mhd_null "$NULLP" >>"$W/mhd_null.log" 2>&1 &
        else
            # LF_BENCH_ENV_<service>="NAME=VALUE ...": settings for that service alone
            local own="LF_BENCH_ENV_$s"
            env ${!own:-} "${LF_BENCH_BIN_DIR:-build/bin}/leadflow-$s" 2>>"$W/$s.log" &
        fi
        LF_BENCH_PID[$s]=$!
    done
    for s in "$@"; do
        [ "$s" = intake ] || continue
        for _ in $(seq 1 100); do
            curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1
        done
        curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null ||
            { echo "intake did not start" >&2; tail -20 "$W/intake.log" >&2; return 1; }
    done
    return 0
}

# lf_bench_stop NAME...: SIGTERM, then waits for each (the reverse order of the names).
lf_bench_stop() {
    local i n p
    local names=("$@")
    for ((i = ${#names[@]} - 1; i >= 0; i--)); do
        n=${names[$i]}; p=${LF_BENCH_PID[$n]:-}
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for n in "${names[@]}"; do
        p=${LF_BENCH_PID[$n]:-}
        [ -n "$p" ] && { wait "$p" 2>/dev/null || true; }
        unset "LF_BENCH_PID[$n]"
    done
    return 0
}

# lf_bench_alive NAME: fails (with a line on stderr) when that process has died.
lf_bench_alive() {
    local p=${LF_BENCH_PID[$1]:-}
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && return 0
    echo "$1 is not running; the end of its log:" >&2; tail -20 "$W/$1.log" >&2 2>/dev/null
    return 1
}

# lf_bench_down: stops every process lf_bench_start started, Redis and PostgreSQL, and
# removes W (kept with LF_BENCH_KEEP=1). For `trap lf_bench_down EXIT`.
lf_bench_down() {
    [ -n "${W:-}" ] || return 0
    lf_bench_stop "${!LF_BENCH_PID[@]}"
    lf_redis_stop "$W/redis" "$RP"; lf_pg_stop "$W/pg"
    if [ -n "${LF_BENCH_KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}

# lf_bench_kib PID FIELD: VmRSS or VmHWM of a process, in KiB.
lf_bench_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# lf_bench_q SQL: one value (or rows, '|'-separated) from the benchmark's database.
lf_bench_q() { psql -qtAX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" -c "$1"; }
