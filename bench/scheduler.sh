#!/usr/bin/env bash
# bench/scheduler.sh [RUNS] [N] : leadflow-scheduler against BullMQ (docs/benchmarks.md).
# Starts a private PostgreSQL and Redis on free loopback ports. Each run: N leads
# (owned, stage new, not contacted) and N pending first-contact timers all due at
# the same instant T, inserted with SQL; the scheduler starts and indexes them in
# Redis (rebuild from PostgreSQL), then fires them. Measured from timers.fired_at:
# fire rate = N / (last fired_at - T), lateness = fired_at - due_at (avg, p50, p99,
# max). A fired timer is durable when its flip and its 'timer.fired' event are
# committed; its effects (reminder notification, timeline entry, sla.reminded event,
# escalation timer) are derived from that event by the scheduler's effects consumer:
# "all fired" and "all effects" say when the last of each was committed and visible
# (polled), and the run checks N notifications and N sla.reminded events. Then the
# steady phase: STEADY_RATE timers/s (default 5,000) due one after the other for
# STEADY_S seconds (default 10), lateness avg/p50/p99/max. In the same run, on the
# same Redis, BullMQ 5 fires 50,000 (and N) delayed jobs all due at one instant
# (bench/bullmq). Prints one line per figure: the median over RUNS runs and every
# run's value. Environment: LEADFLOW_TIMER_BATCH and LEADFLOW_TIMER_LANES pass to
# the scheduler; LF_BENCH_SCHEDULER=<binary> measures another build (e.g. an older
# one); LF_BENCH_BULLMQ_N="" skips BullMQ; LF_BENCH_STEADY_RATE=0 skips the steady
# phase; LF_BENCH_STEADY_EVENTS=N puts N lead.assigned events (new grade C leads, whose
# first-contact clock is armed hours out) into the outbox as the steady phase starts, so the
# scheduler's consumer works through a backlog while the steady timers fire, as in the
# whole stack when the router is still assigning. LF_BENCH_KEEP=1 keeps the temporary
# folder (the scheduler's log of each run: sched.RUN.log). LF_BENCH_PROFILE=1: pg_stat_statements
# (track = all, so the statements inside functions and triggers show too) from the
# scheduler's start until every effect of the burst is committed, top LF_BENCH_TOP (15)
# by total time, per run. Per run on stderr also: the CPU of the scheduler's backends by
# connection (fire, effects, main...) when every timer has fired and the effects
# committed by then (what took the cores from the burst), timers fired per 100 ms after
# T, the autovacuums and autoanalyzes of the run, and the CPU per timer.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNS=${1:-3}; N=${2:-100000}; BN=${LF_BENCH_BULLMQ_N-"50000 $N"}
SR=${LF_BENCH_STEADY_RATE:-5000}; SS=${LF_BENCH_STEADY_S:-10}; SE=${LF_BENCH_STEADY_EVENTS:-0}
make -s WERROR=1 bins >/dev/null
(cd bench/bullmq && [ -d node_modules/bullmq ] || npm install --no-audit --no-fund >/dev/null)
W=$(mktemp -d /tmp/leadflow-sched-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); RP=$(lf_free_port); Z=$(lf_free_port)
sched=
cleanup() { [ -n "$sched" ] && kill "$sched" 2>/dev/null; wait 2>/dev/null || true
            lf_redis_stop "$W/redis" "$RP"; lf_pg_stop "$W/pg"
            if [ -n "${LF_BENCH_KEEP:-}" ]; then echo "kept $W" >&2; else rm -rf "$W"; fi; }
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
lf_redis_start "$W/redis" "$RP"
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
export LEADFLOW_REDIS_PORT=$RP LEADFLOW_REDIS_PREFIX=bench: LEADFLOW_LOG_LEVEL=warn
export LEADFLOW_SCHEDULER_EVENTS_BIND=tcp://127.0.0.1:$Z
export LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:1 LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:1
build/bin/leadflow-migrate >/dev/null 2>&1
if [ -n "${LF_BENCH_PROFILE:-}" ]; then
    psql -qtAX "$LEADFLOW_DATABASE_URL" -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
    lf_as_pg "$PG_BIN/pg_ctl" -D "$W/pg/data" -o "-p $PG -c log_error_verbosity=terse" \
        -l "$W/pg/postgres.log" -w -t 60 restart >/dev/null
    psql -qX "$LEADFLOW_DATABASE_URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
        -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
fi
sql() { psql -qtAX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" "$@"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# CPU seconds (utime + stime, /proc) of process $1 and of the PostgreSQL backends of
# the scheduler's connections: "SCHED BACKENDS". With the machine shared, CPU per timer
# moves much less than the wall-clock rate.
cpu_s() {
    local tck; tck=$(getconf CLK_TCK)
    local b; b=$(sql -c "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
                          WHERE application_name LIKE 'leadflow-scheduler%'")
    local s=0 t=0 p
    s=$(awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0)
    for p in $b; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    awk -v s="$s" -v t="$t" -v k="$tck" 'BEGIN {printf "%.2f %.2f", s / k, t / k}'
}
# CPU seconds of the scheduler's backends by connection (application_name less
# "leadflow-scheduler"): "main 0.12 fire 3.40 effects 1.10 ...". Taken when every timer
# has fired, it shows how much of the two cores the effects took while the burst fired.
cpu_by_app() {
    local tck; tck=$(getconf CLK_TCK)
    sql -F ' ' -c "SELECT pid, application_name FROM pg_stat_activity
                   WHERE application_name LIKE 'leadflow-scheduler%'" |
        while read -r pid app; do
            echo "x${app#leadflow-scheduler} $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
        done | awk -v k="$tck" '{a[$1 == "x" ? "main" : substr($1, 3)] += $2}
                   END {for (x in a) printf "%s %.2f ", x, a[x] / k}'
}
declare -A S B

for i in $(seq 1 "$RUNS"); do
    redis-cli -p "$RP" flushall >/dev/null
    sql >/dev/null <<SQL
TRUNCATE notifications, timers, lead_events, outbox, assignments, consumer_acks,
         consumer_cursors, leads, reps CASCADE;
INSERT INTO reps (id, name, manager)
SELECT 'rep' || g, 'Rep ' || g, 'mgr' || (g % 10) FROM generate_series(1, 200) g;
INSERT INTO leads (id, channel, phone, grade, owner, stage, assigned_at)
SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, 'web_form',
       '138' || lpad(g::text, 8, '0'), 'B', 'rep' || (1 + g % 200), 'new', now()
  FROM generate_series(1, $N) g;
INSERT INTO timers (lead_id, kind, step, due_at)
SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, 'sla_first_contact', 0,
       now() + interval '6 seconds'
  FROM generate_series(1, $N) g;
VACUUM ANALYZE leads, timers, reps;
CHECKPOINT;
SQL
    T=$(sql -c "SELECT extract(epoch FROM min(due_at)) FROM timers")
    [ -n "${LF_BENCH_PROFILE:-}" ] && sql -c "SELECT pg_stat_statements_reset()" >/dev/null
    "${LF_BENCH_SCHEDULER:-build/bin/leadflow-scheduler}" >"$W/sched.$i.log" 2>&1 & sched=$!
    # Wait until every timer fired (visible, i.e. committed), at most 120 s.
    seen=
    for _ in $(seq 1 1200); do
        sleep 0.1
        # Cheap (partial index on pending timers), so polling takes little from the
        # machine being measured.
        if [ "$(sql -c "SELECT NOT EXISTS (SELECT 1 FROM timers WHERE state = 'pending'
                          AND step = 0 AND due_at < now() + interval '1 hour')")" = t ]
        then seen=$(date +%s.%N); break; fi
    done
    [ -n "$seen" ] || { echo "run $i: not all timers fired" >&2; tail "$W/sched.$i.log" >&2; exit 1; }
    echo "run $i: when every timer had fired: CPU s of the scheduler's backends by connection:" \
         "$(cpu_by_app); effects committed by then: $(sql -c "SELECT count(*) FROM notifications")" >&2
    # Then until every effect is committed: the reminders (and with them their
    # timeline entries, events and escalation timers: one transaction), at most 300 s.
    done_at=
    for _ in $(seq 1 3000); do
        if [ "$(sql -c "SELECT count(*) FROM notifications")" -ge "$N" ]
        then done_at=$(date +%s.%N); break; fi
        sleep 0.1
    done
    [ -n "$done_at" ] || { echo "run $i: not every effect committed" >&2; tail "$W/sched.$i.log" >&2; exit 1; }
    read -r cpu_sched cpu_pg <<<"$(cpu_s "$sched")"
    echo "run $i: autovacuum and autoanalyze since the insert, seconds after T:" \
         "$(sql -c "SELECT coalesce(string_agg(x, ', '), 'none') FROM (
            SELECT relname || ' ' || w || ' ' || round((extract(epoch FROM at) - $T)::numeric, 1) AS x
              FROM pg_stat_user_tables, LATERAL (VALUES ('vacuum', last_autovacuum),
                   ('analyze', last_autoanalyze)) v(w, at)
             WHERE at > to_timestamp($T) - interval '30 seconds' ORDER BY at) y")" >&2
    if [ -n "${LF_BENCH_PROFILE:-}" ]; then
        echo "run $i: pg_stat_statements until every effect was committed (ms total, calls, ms/call, rows, statement):" >&2
        sql -F ' | ' -c "SELECT round(total_exec_time), calls, round((total_exec_time / calls)::numeric, 3),
            rows, left(regexp_replace(query, '\s+', ' ', 'g'), 140) FROM pg_stat_statements
            ORDER BY total_exec_time DESC LIMIT ${LF_BENCH_TOP:-15}" >&2
    fi
    echo "run $i: CPU s until every effect of the $N timers was committed: scheduler $cpu_sched," \
         "its PostgreSQL backends $cpu_pg ($(awk -v a="$cpu_sched" -v b="$cpu_pg" -v n="$N" \
         'BEGIN {printf "%.0f", (a + b) * 1e6 / n}') us per timer; load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    if [ "$SR" -gt 0 ]; then
        # Steady phase: SR timers/s due one after another for SS seconds, on the
        # running scheduler, inserted ahead of time and indexed by a rebuild. The first
        # is due 8 s after the insert: the insert and the rebuild (every pending timer,
        # the burst's escalation timers too) are done by then, so they do not count as
        # lateness.
        sn=$((SR * SS))
        sql >/dev/null <<SQL
INSERT INTO leads (id, channel, phone, grade, owner, stage, assigned_at)
SELECT ('00000000-0000-7000-9000-' || lpad(g::text, 12, '0'))::uuid, 'web_form',
       '139' || lpad(g::text, 8, '0'), 'B', 'rep' || (1 + g % 200), 'new', now()
  FROM generate_series(1, $sn) g;
INSERT INTO timers (lead_id, kind, step, due_at)
SELECT ('00000000-0000-7000-9000-' || lpad(g::text, 12, '0'))::uuid, 'sla_first_contact', 0,
       now() + interval '8 seconds' + make_interval(secs => g::double precision / $SR)
  FROM generate_series(1, $sn) g;
INSERT INTO leads (id, channel, phone, grade, owner, stage, assigned_at)
SELECT ('00000000-0000-7000-a000-' || lpad(g::text, 12, '0'))::uuid, 'web_form',
       '136' || lpad(g::text, 8, '0'), 'C', 'rep' || (1 + g % 200), 'new', now()
  FROM generate_series(1, $SE) g;
INSERT INTO outbox (event_id, type, lead_id, payload)
SELECT gen_random_uuid(), 'lead.assigned', ('00000000-0000-7000-a000-' || lpad(g::text, 12, '0'))::uuid,
       jsonb_build_object('grade', 'C', 'owner', 'rep' || (1 + g % 200))
  FROM generate_series(1, $SE) g;
SQL
        redis-cli -p "$RP" del bench:timers:epoch >/dev/null
        for _ in $(seq 1 $((SS * 10 + 600))); do
            sleep 0.1
            [ "$(sql -c "SELECT NOT EXISTS (SELECT 1 FROM timers WHERE state = 'pending'
                          AND step = 0 AND due_at < now() + interval '1 hour')")" = t ] && break
        done
        read -r savg sp50 sp99 smax <<<"$(sql -F ' ' -c "
          SELECT round(avg(ms)), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)),
                 round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)), round(max(ms))
            FROM (SELECT extract(epoch FROM fired_at - due_at) * 1000 AS ms
                    FROM timers WHERE step = 0 AND lead_id::text LIKE '%-9000-%'
                     AND state = 'fired') t")"
        S[savg]+="$savg "; S[sp50]+="$sp50 "; S[sp99]+="$sp99 "; S[smax]+="$smax "
        echo "run $i: steady $SR timers/s for ${SS}s$([ "$SE" -gt 0 ] && echo " (with $SE lead.assigned events to consume; $(sql -c "SELECT count(*) FROM timers WHERE lead_id::text LIKE '%-a000-%'") clocks armed by the end)"): lateness avg $savg p50 $sp50 p99 $sp99 max $smax ms" >&2
    fi
    kill "$sched"; wait "$sched" || true; sched=
    read -r rate avg p50 p99 max notif events <<<"$(sql -F ' ' -c "
      SELECT round(count(*) / extract(epoch FROM max(fired_at) - min(due_at)))::bigint,
             round(avg(ms)), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)),
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)), round(max(ms)),
             (SELECT count(*) FROM notifications WHERE kind = 'sla_reminder'
                 AND lead_id::text LIKE '%-8000-%'),
             (SELECT count(*) FROM outbox WHERE type = 'sla.reminded'
                 AND lead_id::text LIKE '%-8000-%')
        FROM (SELECT fired_at, due_at,
                     extract(epoch FROM fired_at - due_at) * 1000 AS ms
                FROM timers WHERE step = 0 AND lead_id::text LIKE '%-8000-%') t")"
    echo "run $i: timers fired per 100 ms after T (by fired_at):" \
         "$(sql -c "SELECT string_agg(coalesce(c, 0)::text, ' ' ORDER BY b) FROM
            generate_series(0, (SELECT floor((extract(epoch FROM max(fired_at)) - $T) * 10)::int
                                  FROM timers WHERE step = 0 AND lead_id::text LIKE '%-8000-%')) b
            LEFT JOIN (SELECT floor((extract(epoch FROM fired_at) - $T) * 10)::int AS k, count(*) AS c
                         FROM timers WHERE step = 0 AND lead_id::text LIKE '%-8000-%' GROUP BY 1) f
              ON f.k = b")" >&2
    vis=$(awk -v a="$T" -v b="$seen" 'BEGIN {printf "%.2f", b - a}')
    eff=$(awk -v a="$T" -v b="$done_at" 'BEGIN {printf "%.2f", b - a}')
    [ "$notif" = "$N" ] && [ "$events" = "$N" ] ||
        { echo "run $i: notifications $notif, events $events, expected $N each" >&2; exit 1; }
    S[rate]+="$rate "; S[avg]+="$avg "; S[p50]+="$p50 "; S[p99]+="$p99 "; S[max]+="$max "
    S[vis]+="$vis "; S[eff]+="$eff "
    echo "run $i: scheduler $rate timers/s, lateness avg $avg p50 $p50 p99 $p99 max $max ms," \
         "all $N fired and visible ${vis}s after T, all effects ${eff}s after T" >&2
    for bn in $BN; do
        out=$(cd bench/bullmq && node bullmq_bench.js "$RP" "$bn" 100)
        for k in fire_rate avg_ms p50_ms p99_ms max_ms; do
            B[$bn.$k]+="$(node -e "console.log(Math.round(JSON.parse(process.argv[1]).$k))" "$out") "
        done
        echo "run $i: bullmq n=$bn $out" >&2
    done
done

line() { # name values unit
    local m; m=$(printf '%s\n' $2 | median)
    echo "$1 $m $3 (runs: ${2% })"
}
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
     "PostgreSQL $(sql -c 'SHOW server_version'), Redis $(redis-server --version | awk '{print $3}')," \
     "runs $RUNS, N $N"
line scheduler.fire_rate "${S[rate]}" timers/s
line scheduler.lateness_avg "${S[avg]}" ms
line scheduler.lateness_p50 "${S[p50]}" ms
line scheduler.lateness_p99 "${S[p99]}" ms
line scheduler.lateness_max "${S[max]}" ms
line scheduler.all_fired_after_T "${S[vis]}" s
line scheduler.all_effects_after_T "${S[eff]}" s
if [ "$SR" -gt 0 ]; then
    line scheduler.steady${SR}.lateness_avg "${S[savg]}" ms
    line scheduler.steady${SR}.lateness_p50 "${S[sp50]}" ms
    line scheduler.steady${SR}.lateness_p99 "${S[sp99]}" ms
    line scheduler.steady${SR}.lateness_max "${S[smax]}" ms
fi
for bn in $BN; do
    line "bullmq.n$bn.fire_rate" "${B[$bn.fire_rate]}" jobs/s
    line "bullmq.n$bn.lateness_avg" "${B[$bn.avg_ms]}" ms
    line "bullmq.n$bn.lateness_p50" "${B[$bn.p50_ms]}" ms
    line "bullmq.n$bn.lateness_p99" "${B[$bn.p99_ms]}" ms
    line "bullmq.n$bn.lateness_max" "${B[$bn.max_ms]}" ms
done
sr=$(printf '%s\n' ${S[rate]} | median)
sp=$( [ "$SR" -gt 0 ] && printf '%s\n' ${S[sp99]} | median || echo NA)
for bn in $BN; do
    br=$(printf '%s\n' ${B[$bn.fire_rate]} | median)
    awk -v s="$sr" -v b="$br" -v n="$bn" -v p="$sp" 'BEGIN {
        r = s / b; m1 = (r >= 5) ? "met" : "not met"; m2 = (p != "NA" && p <= 100) ? "met" : "not met"
        printf "scheduler.ratio_to_bullmq_n%s %.1f (target >= 5: %s; p99 lateness at the steady rate %s ms, target <= 100: %s)\n",
               n, r, m1, p, m2 }'
done
