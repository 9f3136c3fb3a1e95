#!/usr/bin/env bash
# bench/latency.sh [RUNS=3] [RATE=5000] [SECONDS=20]: latency at a steady offered rate,
# whole stack up (bench/lib.sh; docs/benchmarks.md targets: ack p99 <= 20 ms and
# end-to-end p99 <= 100 ms at 5,000 leads/s for 60 s; scheduler lateness p99 <= 100 ms
# at a steady 5,000 timers/s).
#
# (a) Leads. Per run: build/bench/loadgen at RATE for SECONDS with 32 connections and
# the intake key (open loop: latency counts from the scheduled send time), waits until
# the router has assigned every lead of the run (at most LF_BENCH_WAIT s, default 60),
# and computes in SQL the p99 of assigned_at - extra.sent_us over the leads of that run,
# and the same from the commit time of the assigning transaction
# (track_commit_timestamp), since assigned_at is now(), the *start* of the router's
# batch transaction. A lead not assigned by then counts with the time of the query: the
# figure is then a lower bound, shown as ">N". The reference is the same loadgen
# against the do-nothing mhd_null at the same rate (min(SECONDS, 10) s).
#
# (b) Timers. The router's assignments in (a) left one pending first-contact timer per
# lead (due in minutes or hours). Per run, LF_BENCH_TIMER_RATE x LF_BENCH_TIMER_SECS
# (default 5,000/s x 20 s; fewer when (a) left fewer than RUNS times that) of them are
# moved to be due one after another at that steady rate, starting 10 s later; the scheduler is restarted (it rebuilds its Redis index
# from PostgreSQL at start) and fires them while the rest of the stack runs. Lateness =
# fired_at - due_at, and commit time - due_at; p50, p99, max over the run's timers.
#
# (c) Burst. Per run, LF_BENCH_BURST_N (default 100,000; fewer when (a) left fewer than
# RUNS times that) of those timers are moved to be due at one instant T, 10 s later; the
# scheduler restarts and fires them with the stack up: fire rate = fired / (commit time
# of the last firing - T) (and by fired_at), lateness, and the time until every effect (an sla.reminded event - or
# sla.escalated, for a timer that is a lead's escalation step - and a
# notification per timer) is committed. Then BullMQ 5 (bench/bullmq) fires as many
# delayed jobs due at one instant on the same Redis (docs/benchmarks.md: >= 5x).
# Per burst, on stderr: what ran from T until every timer had fired (the CPU of each
# process of the stack per timer, PostgreSQL's own processes by kind, WAL per timer,
# checkpoints, autovacuum); LF_BENCH_BURST_PERF=FILE records perf of the machine for 2 s
# from T into FILE.RUN.
#
# Prints one line per figure: median over RUNS, then the runs and the spread.
# LF_BENCH_PROFILE=1: perf, top and pg_stat_statements during the first run of (a).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
. bench/cpu.sh
RUNS=${1:-3}; RATE=${2:-5000}; SECS=${3:-20}; CONNS=${LF_BENCH_CONNECTIONS:-32}
TRATE=${LF_BENCH_TIMER_RATE:-5000}; TSECS=${LF_BENCH_TIMER_SECS:-20}
REFSECS=$((SECS < 10 ? SECS : 10))
make -s WERROR=1 bins benches >/dev/null
lg=
cleanup() { [ -n "$lg" ] && kill "$lg" 2>/dev/null; lf_bench_down; }
trap cleanup EXIT
lf_bench_up
SVCS=(intake router scheduler analytics)
lf_bench_start mhd_null "${SVCS[@]}"
sleep 1 # let the ZeroMQ subscriptions connect
q() { lf_bench_q "$1"; }
ack=(); e2e=(); e2ec=(); rate=(); ref=()
for i in $(seq 1 "$RUNS"); do
    # the reference: the do-nothing libmicrohttpd server at the same offered rate
    build/bench/loadgen --port "$NULLP" --rate "$RATE" --duration "$REFSECS" \
        --connections "$CONNS" >"$W/ref.$i" || true
    ref+=("$(awk '/ack_p99_ms/ {print $2}' "$W/ref.$i")")
    load=$(lf_bench_load)
    since=$(q "SELECT now()")
    build/bench/loadgen --port "$HTTP" --rate "$RATE" --duration "$SECS" \
        --connections "$CONNS" --key "$LF_BENCH_KEY" --phone-base $((i * 10000000)) >"$W/lg.$i" &
    lg=$!
    if [ -n "${LF_BENCH_PROFILE:-}" ] && [ "$i" -eq 1 ]; then # where the CPU goes, 5 s
        sleep 5
        { perf record -a -o "$W/perf.data" -- sleep 5 >/dev/null 2>&1 &&
            perf report -i "$W/perf.data" --sort comm,dso,sym --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -40 >&2; } || true
        { top -b -n 1 -w 200 | head -20 >&2; } || true
    fi
    wait "$lg" || true
    lg=
    n=$(q "SELECT count(*) FROM leads WHERE created_at >= '$since'")
    wait_end=$(($(date +%s) + ${LF_BENCH_WAIT:-60}))
    while :; do # the router catches up (at most LF_BENCH_WAIT seconds)
        left=$(q "SELECT count(*) FROM leads WHERE created_at >= '$since' AND assigned_at IS NULL")
        [ "$left" -eq 0 ] || [ "$(date +%s)" -ge "$wait_end" ] && break; sleep 0.2
    done
    # a lead still unassigned counts with now() as its time: the p99 is then a lower bound
    row=$(q "WITH r AS (SELECT extract(epoch FROM coalesce(assigned_at, now())) * 1e6 - (extra->>'sent_us')::bigint AS a,
                extract(epoch FROM CASE WHEN assigned_at IS NULL THEN now() ELSE pg_xact_commit_timestamp(xmin) END) * 1e6
                  - (extra->>'sent_us')::bigint AS c
              FROM leads WHERE created_at >= '$since')
             SELECT round((percentile_cont(0.99) WITHIN GROUP (ORDER BY a) / 1000)::numeric, 1),
                    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY c) / 1000)::numeric, 1),
                    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY c) / 1000)::numeric, 1),
                    count(*) FROM r")
    IFS='|' read -r a99 c99 c50 nstored <<<"$row"
    nassigned=$((nstored - left))
    [ "$left" -gt 0 ] && { a99=">$a99"; c99=">$c99"; }
    p99=$(awk '/ack_p99_ms/ {print $2}' "$W/lg.$i")
    # 2xx answers per second over the time the answers took (a fast 503 is no lead)
    ach=$(awk '/achieved_rate/ {t = $6} /loadgen.status/ {sub("2xx=", "", $2); n = $2}
               END {printf "%.0f", (t > 0 ? n / t : 0)}' "$W/lg.$i")
    st=$(awk '/loadgen.status/ {$1=""; print}' "$W/lg.$i")
    ack+=("$p99"); e2e+=("$a99"); e2ec+=("$c99"); rate+=("$ach")
    for s in "${SVCS[@]}"; do lf_bench_alive "$s"; done
    echo "run $i (load avg before: $load): reference p99 ${ref[-1]} ms; intake achieved $ach/s,$st; ack p50 $(awk '/ack_p50_ms/ {print $2}' "$W/lg.$i") p99 $p99 p99.9 $(awk '/ack_p99_9_ms/ {print $2}' "$W/lg.$i") max $(awk '/ack_max_ms/ {print $2}' "$W/lg.$i") ms; stored $n, assigned $nassigned (unassigned after wait: $left); e2e p99 by assigned_at $a99 ms, by commit time p50 $c50 p99 $c99 ms; load avg after: $(lf_bench_load)" >&2
done
if [ -n "${LF_BENCH_PROFILE:-}" ]; then # where PostgreSQL's time went, by statement
    echo "pg_stat_statements, top 10 by total time (ms, calls, ms/call, rows, query):" >&2
    psql -qtAX "$LEADFLOW_DATABASE_URL" -F ' | ' -c "SELECT round(total_exec_time), calls,
        round((total_exec_time / calls)::numeric, 3), rows, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10" >&2
fi
lb() { printf '%s\n' "$@" | grep -q '>' && printf '>' || true; }
fig() { # name values detail
    echo "$1 $(lb $2)$(printf '%s\n' $2 | lf_bench_median) (runs: ${2% }; $(printf '%s\n' $2 | lf_bench_spread); $3)"
}
fig intake.achieved_rate "${rate[*]}" "2xx answers/s, offered $RATE/s for ${SECS}s, 32 connections"
fig intake.reference_ack_p99_ms "${ref[*]}" "do-nothing libmicrohttpd at the same rate, ${REFSECS}s"
fig intake.ack_p99_ms "${ack[*]}" "target <= 20"
fig e2e.assigned_p99_ms "${e2e[*]}" "assigned_at, the start of the router's transaction"
fig e2e.assigned_committed_p99_ms "${e2ec[*]}" "commit time of the assigning transaction; target <= 100"

# (b) the scheduler at a steady rate
# First the leads (a) left unassigned are assigned (at most LF_BENCH_DRAIN_MAX s, default
# 120). How many (a) leaves after its wait varies from run to run (0 to 26,000 in the runs
# of docs/benchmarks.md, "the steady lateness and the burst between make bench runs"), and
# a router still assigning them, with the scheduler and analytics consuming its events,
# shared the cores with the firing in some runs and not in others. The wait and what was
# left are printed.
d0=$(date +%s.%N); dend=$(($(date +%s) + ${LF_BENCH_DRAIN_MAX:-120}))
while left=$(q "SELECT count(*) FROM leads WHERE assigned_at IS NULL") &&
    [ "$left" -gt 0 ] && [ "$(date +%s)" -lt "$dend" ]; do sleep 1; done
echo "before the timers: $(awk -v a="$d0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s until (a)'s leads were assigned, $left left (load avg $(lf_bench_load))" >&2
lat=(); latc=(); l50=(); lmax=(); fired=()
# Each run takes its share of the timers (a) left, at most TRATE x TSECS.
avail=$(q "SELECT count(*) FROM timers WHERE state = 'pending' AND kind = 'sla_first_contact'
             AND due_at > now() + interval '5 minutes'")
# What PostgreSQL did, for the difference between two snapshots: WAL records,
# full-page images and bytes (pg_stat_wal), checkpoints (pg_stat_bgwriter), the
# autovacuum and autoanalyze runs of the tables named in $1 (a quoted SQL list; none:
# every table), vacuums in progress: one line.
pg_snap() {
    q "SELECT w.wal_records, w.wal_fpi, w.wal_bytes, b.checkpoints_timed + b.checkpoints_req,
              (SELECT sum(autovacuum_count + autoanalyze_count) FROM pg_stat_user_tables
                WHERE ${1:+relname IN ($1) AND} true),
              (SELECT coalesce(string_agg(relid::regclass::text, ','), '-') FROM pg_stat_progress_vacuum)
         FROM pg_stat_wal w, pg_stat_bgwriter b"
}
burst_pg_snap() { pg_snap "'timers', 'outbox'"; }
# PostgreSQL's own processes by kind (walwriter, checkpointer, autovacuum worker...): "KIND PID TICKS".
burst_bg_snap() {
    q "SELECT backend_type, pid FROM pg_stat_activity WHERE backend_type <> 'client backend'" |
        while IFS='|' read -r k pid; do
            echo "${k// /_} $pid $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
        done
}
want=$((avail / RUNS < TRATE * TSECS ? avail / RUNS : TRATE * TSECS))
for i in $(seq 1 "$RUNS"); do
    q "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_steady;
       CREATE TABLE bench_steady AS SELECT id FROM timers WHERE state = 'pending'
          AND kind = 'sla_first_contact' AND due_at > now() + interval '5 minutes'
        ORDER BY id LIMIT $want; ANALYZE bench_steady" >/dev/null
    n=$(q "SELECT count(*) FROM bench_steady")
    if [ "$n" -eq 0 ]; then
        echo "timers run $i: no pending first-contact timer to move (the router assigned nothing in (a))" >&2
        lat+=("-"); latc+=("-"); l50+=("-"); lmax+=("-"); fired+=("0"); continue
    fi
    load=$(lf_bench_load)
    t_end=$(q "WITH b AS (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM bench_steady),
                    u AS (UPDATE timers t SET due_at = now() + interval '10 seconds'
                                 + (b.rn - 1) / $TRATE::float8 * interval '1 second'
                            FROM b WHERE t.id = b.id RETURNING t.due_at)
               SELECT max(due_at) FROM u")
    lf_bench_stop scheduler # it rebuilds its Redis index from PostgreSQL at start
    lf_bench_start scheduler
    sp0=$(pg_snap) # the tails of the lateness may follow a vacuum of any table
    wait_end=$(($(date +%s) + 10 + n / TRATE + ${LF_BENCH_WAIT:-60}))
    while :; do # cheap: the partial index of pending timers
        p=$(q "SELECT count(*) FROM timers WHERE state = 'pending' AND due_at <= '$t_end'")
        [ "$p" -eq 0 ] || [ "$(date +%s)" -ge "$wait_end" ] && break; sleep 0.5
    done
    sp1=$(pg_snap)
    # the seconds of the run (from the first due time) with timers more than 50 ms late
    late=$(q "SELECT coalesce(string_agg(s || 's:' || n, ' ' ORDER BY s), 'none')
                FROM (SELECT floor(extract(epoch FROM t.due_at - m.d))::int AS s, count(*) AS n
                        FROM timers t JOIN bench_steady b ON b.id = t.id,
                             (SELECT min(t2.due_at) AS d FROM timers t2
                                JOIN bench_steady b2 ON b2.id = t2.id) m
                       WHERE coalesce(t.fired_at, now()) - t.due_at > interval '50 ms'
                       GROUP BY 1) x")
    row=$(q "SELECT count(*) FILTER (WHERE t.state <> 'pending'),
                    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
                    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1),
                    round(max(ms)::numeric, 1),
                    round((percentile_cont(0.99) WITHIN GROUP (ORDER BY cms))::numeric, 1)
               FROM timers t JOIN bench_steady b ON b.id = t.id,
                    LATERAL (SELECT extract(epoch FROM coalesce(t.fired_at, now()) - t.due_at) * 1000 AS ms,
                                    extract(epoch FROM CASE WHEN t.state = 'pending' THEN now()
                                        ELSE pg_xact_commit_timestamp(t.xmin) END - t.due_at) * 1000 AS cms) x")
    IFS='|' read -r nf t50 t99 tmax tc99 <<<"$row"
    [ "$nf" -lt "$n" ] && { t99=">$t99"; tc99=">$tc99"; }
    lat+=("$t99"); latc+=("$tc99"); l50+=("$t50"); lmax+=("$tmax"); fired+=("$nf")
    for s in "${SVCS[@]}"; do lf_bench_alive "$s"; done
    echo "timers run $i (load avg before: $load, after: $(lf_bench_load)): $n timers due at $TRATE/s over $(awk -v n="$n" -v r="$TRATE" 'BEGIN {printf "%.1f", n / r}') s, $nf fired (not pending); lateness p50 $t50 p99 $t99 max $tmax ms, by commit time p99 $tc99 ms" >&2
    IFS='|' read -r r0 _ by0 c0 v0 _ <<<"$sp0"; IFS='|' read -r r1 _ by1 c1 v1 _ <<<"$sp1"
    echo "timers run $i, PostgreSQL from the scheduler's start until every timer fired:" \
        "WAL $(awk -v a="$r0" -v b="$r1" -v c="$by0" -v d="$by1" -v n="$n" \
            'BEGIN {printf "%.1f records, %.0f bytes per timer", (b - a) / n, (d - c) / n}'),"\
        "checkpoints $((c1 - c0)), autovacuum/analyze runs $((v1 - v0));" \
        "timers more than 50 ms late by second of the run: $late" >&2
done
fig scheduler.steady_lateness_p99_ms "${lat[*]}" "fired_at - due_at, $TRATE timers/s for $(awk -v n="$want" -v r="$TRATE" 'BEGIN {printf "%.1f", n / r}')s, whole stack; target <= 100"
fig scheduler.steady_lateness_committed_p99_ms "${latc[*]}" "commit time - due_at"
fig scheduler.steady_lateness_p50_ms "${l50[*]}" "fired_at - due_at"
fig scheduler.steady_lateness_max_ms "${lmax[*]}" "fired_at - due_at"
fig scheduler.steady_fired "${fired[*]}" "timers fired per run, of $want moved ($((TRATE * TSECS)) asked)"

# (c) the scheduler, all due at once, against BullMQ on the same Redis
BN=${LF_BENCH_BURST_N:-100000}
(cd bench/bullmq && [ -d node_modules/bullmq ] || npm install --no-audit --no-fund >/dev/null)
avail=$(q "SELECT count(*) FROM timers WHERE state = 'pending' AND kind = 'sla_first_contact'
             AND due_at > now() + interval '5 minutes'")
bwant=$((avail / RUNS < BN ? avail / RUNS : BN))
brate=(); bcrate=(); b99=(); bvis=(); bfx=(); qrate=(); q99=()
for i in $(seq 1 "$RUNS"); do
    q "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_burst;
       CREATE TABLE bench_burst AS SELECT id, lead_id FROM timers WHERE state = 'pending'
          AND kind = 'sla_first_contact' AND due_at > now() + interval '5 minutes'
        ORDER BY id LIMIT $bwant; ANALYZE bench_burst" >/dev/null
    n=$(q "SELECT count(*) FROM bench_burst")
    if [ "$n" -eq 0 ]; then
        echo "burst run $i: no pending first-contact timer to move" >&2; continue
    fi
    load=$(lf_bench_load)
    T=$(q "WITH u AS (UPDATE timers t SET due_at = date_trunc('second', now()) + interval '10 seconds'
                        FROM bench_burst b WHERE t.id = b.id RETURNING t.due_at)
           SELECT extract(epoch FROM min(due_at)) FROM u")
    # The effects are counted among the rows written after this point only, each count
    # one hash join (planned with the outbox's statistics of before the burst, which
    # hold no sla.reminded yet, a nested loop rescanned bench_burst for every reminder:
    # a poll then ran for minutes, on the cores the effects need).
    IFS='|' read -r ob0 nb0 < <(q "SELECT (SELECT coalesce(max(id), 0) FROM outbox),
                                          (SELECT coalesce(max(id), 0) FROM notifications)")
    lf_bench_stop scheduler
    lf_bench_start scheduler
    # What else runs while the burst fires: from a second before T until every timer has
    # fired, the CPU of each process of the stack (bench/cpu.sh), the WAL written,
    # checkpoints and autovacuum runs (printed per run below). The snapshots are taken
    # before T: their psql calls take a few hundred ms, and taken at T they missed most
    # of a short burst (a 10,000-timer one fires in half a second).
    until_t() { awk -v t="$T" -v o="$1" -v now="$(date +%s.%N)" 'BEGIN {d = t - o - now; printf "%.3f", (d > 0 ? d : 0)}'; }
    sleep "$(until_t 1)"
    lf_bench_cpu_snap "$W/burst_cpu0.$i"; bw0=$(burst_pg_snap); burst_bg_snap >"$W/burst_bg0.$i"
    sleep "$(until_t 0)"
    if [ -n "${LF_BENCH_BURST_PERF:-}" ]; then # LF_BENCH_BURST_PERF=FILE: perf of the whole machine, 2 s from T
        perf record -a -g -o "$LF_BENCH_BURST_PERF.$i" -- sleep 2 >/dev/null 2>&1 &
    fi
    seen=; fx=
    end=$(($(date +%s) + 10 + ${LF_BENCH_BURST_MAX:-60}))
    while [ "$(date +%s)" -lt "$end" ]; do # cheap: the partial index of pending timers
        sleep 0.1
        if [ -z "$seen" ] && [ "$(q "SELECT count(*) FROM timers WHERE state = 'pending'
                                  AND due_at <= to_timestamp($T)")" -eq 0 ]; then
            seen=$(date +%s.%N)
            lf_bench_cpu_snap "$W/burst_cpu1.$i"; bw1=$(burst_pg_snap); burst_bg_snap >"$W/burst_bg1.$i"
        fi
        # every effect committed: one event and one notification per timer. When (a)
        # assigned fewer leads than (b) and (c) ask for, (b) has used the first steps and
        # the burst holds escalation steps (the ones (b)'s reminders armed): their effect
        # is sla.escalated and an sla_escalation notification, so both kinds count.
        if [ -n "$seen" ]; then
            fx=$(q "SET enable_nestloop = off;
                    SELECT (SELECT count(*) FROM outbox WHERE id > $ob0
                              AND type IN ('sla.reminded', 'sla.escalated')
                              AND lead_id IN (SELECT lead_id FROM bench_burst)) || ' ' ||
                           (SELECT count(*) FROM notifications WHERE id > $nb0
                              AND kind IN ('sla_reminder', 'sla_escalation')
                              AND lead_id IN (SELECT lead_id FROM bench_burst))")
            [ "$fx" = "$n $n" ] && break
            sleep 0.4
        fi
    done
    done_at=$(date +%s.%N)
    IFS='|' read -r nf rate crate t50 t99 tmax last <<<"$(q "SELECT count(*) FILTER (WHERE t.state <> 'pending'),
            round(count(*) FILTER (WHERE t.state <> 'pending')
                  / greatest(extract(epoch FROM max(t.fired_at) - to_timestamp($T)), 0.001)),
            round(count(*) FILTER (WHERE t.state <> 'pending')
                  / greatest(extract(epoch FROM max(pg_xact_commit_timestamp(t.xmin))
                                     FILTER (WHERE t.state <> 'pending') - to_timestamp($T)), 0.001)),
            round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric),
            round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric), round(max(ms)::numeric),
            round(extract(epoch FROM max(pg_xact_commit_timestamp(t.xmin))
                                     FILTER (WHERE t.state <> 'pending') - to_timestamp($T))::numeric, 2)
        FROM timers t JOIN bench_burst b ON b.id = t.id,
             LATERAL (SELECT extract(epoch FROM coalesce(t.fired_at, now()) - t.due_at) * 1000 AS ms) x")"
    # Every timer fired: the commit time of the last firing (the poll below sees it later,
    # by up to seconds while the effects have the cores: its psql and its scan of the
    # pending timers' index, full of the burst's dead entries, wait for them). Not all
    # fired (or not every effect) when the wait ended: the seconds are a lower bound.
    polled=$(awk -v a="$T" -v b="${seen:-$done_at}" 'BEGIN {printf "%.2f", b - a}')
    if [ -n "$seen" ]; then vis=$last; else vis=">$polled"; fi
    efx=$(awk -v a="$T" -v b="$done_at" 'BEGIN {printf "%.2f", b - a}')
    [ "$fx" = "$n $n" ] || efx=">$efx"
    brate+=("$rate"); bcrate+=("$crate"); b99+=("$t99"); bvis+=("$vis"); bfx+=("$efx")
    out=$(cd bench/bullmq && node bullmq_bench.js "$RP" "$n" 100)
    qrate+=("$(node -e "console.log(Math.round(JSON.parse(process.argv[1]).fire_rate))" "$out")")
    q99+=("$(node -e "console.log(Math.round(JSON.parse(process.argv[1]).p99_ms))" "$out")")
    for s in "${SVCS[@]}"; do lf_bench_alive "$s"; done
    if [ -n "$seen" ]; then
        IFS='|' read -r r0 f0 by0 c0 v0 _ <<<"$bw0"; IFS='|' read -r r1 f1 by1 c1 v1 vac <<<"$bw1"
        echo "burst run $i, from 1 s before T until the poll saw every timer fired (${polled} s after T; the last" \
            "firing committed ${last} s after T): CPU per timer fired, us:" \
            "$(lf_bench_cpu_report "$W/burst_cpu0.$i" "$W/burst_cpu1.$i" "$n" | sed 's/ per lead/ per timer/; s/ leads)/ timers)/')" \
            "WAL per timer: $(awk -v a="$r0" -v b="$r1" -v c="$f0" -v d="$f1" -v e="$by0" -v f="$by1" -v n="$n" \
                'BEGIN {printf "%.2f records, %.2f full-page images, %.0f bytes", (b - a) / n, (d - c) / n, (f - e) / n}');" \
            "PostgreSQL's own processes, ms: $(awk 'FNR == NR {b[$1 " " $2] = $3; next}
                {d[$1] += $3 - (($1 " " $2) in b ? b[$1 " " $2] : 0)}
                END {for (k in d) if (d[k] > 0) printf "%s %.0f ", k, d[k] * 1000 / '"$(getconf CLK_TCK)"'}' \
                "$W/burst_bg0.$i" "$W/burst_bg1.$i");" \
            "checkpoints $((c1 - c0)), autovacuum/analyze runs of timers and outbox $((v1 - v0)), vacuum running at the end: $vac" >&2
    fi
    echo "burst run $i (load avg before: $load, after: $(lf_bench_load)): $n timers due at one instant T;" \
        "$nf fired, $rate timers/s by fired_at, $crate/s to the commit of the last, lateness p50 $t50 p99 $t99 max $tmax ms; all fired and committed" \
        "${vis}s after T, every effect (sla.reminded or sla.escalated event, notification: $fx of $n each) ${efx}s after T;" \
        "BullMQ n=$n on the same Redis: $out" >&2
done
fig scheduler.burst_fire_rate "${brate[*]}" "$bwant timers due at one instant, whole stack: fired / (last fired_at - T)"
fig scheduler.burst_committed_fire_rate "${bcrate[*]}" "fired / (commit time of the last firing - T)"
fig scheduler.burst_bullmq_fire_rate "${qrate[*]}" "BullMQ 5, $bwant delayed jobs due at one instant, the same Redis, concurrency 100"
r=$(printf '%s\n' "${bcrate[@]}" | lf_bench_median); b=$(printf '%s\n' "${qrate[@]}" | lf_bench_median)
awk -v a="$r" -v b="$b" 'BEGIN {printf "scheduler.burst_ratio_to_bullmq %.2f (committed fire rate / BullMQ; target >= 5)\n", (b > 0 ? a / b : 0)}'
fig scheduler.burst_lateness_p99_ms "${b99[*]}" "fired_at - due_at"
fig scheduler.burst_bullmq_lateness_p99_ms "${q99[*]}" "BullMQ"
fig scheduler.burst_all_fired_s "${bvis[*]}" "seconds after T until the last firing of the burst committed (its commit time)"
fig scheduler.burst_all_effects_s "${bfx[*]}" "seconds after T until every effect (reminder or escalation event, notification) was committed"
