# bench/cpu.sh - where the CPU of a whole-stack benchmark phase goes. Sourced after
# bench/lib.sh (it reads LF_BENCH_PID, W and LEADFLOW_DATABASE_URL).
#
# lf_bench_cpu_snap FILE: writes one line per process of the stack, "LABEL PID TICKS"
# (utime + stime from /proc/PID/stat, in clock ticks): each service by name, each
# PostgreSQL client backend as pg:APPLICATION_NAME (pg:other for psql and the like),
# PostgreSQL's own processes (checkpointer, WAL writer, autovacuum...) as pg:background,
# Redis as redis; then "machine - BUSY" with the busy ticks of all CPUs (/proc/stat).
# lf_bench_cpu_report BEFORE AFTER N: per label, CPU microseconds per lead for N leads
# (a process that started between the snapshots counts from zero; one that ended is
# lost, so the phase should not stop services), then the stack's total and the
# machine's (the difference is the load generator and everything else on the machine).

lf_bench_cpu_snap() {
    local out=$1 pm pid label
    : >"$out"
    for label in "${!LF_BENCH_PID[@]}"; do
        [ "$label" = mhd_null ] && continue
        echo "$label ${LF_BENCH_PID[$label]} $(awk '{print $14 + $15}' "/proc/${LF_BENCH_PID[$label]}/stat" 2>/dev/null || echo 0)" >>"$out"
    done
    # client backends, by the application_name each service sets
    lf_bench_q "SELECT pid, CASE WHEN application_name LIKE 'leadflow-%'
                THEN 'pg:' || application_name ELSE 'pg:other' END
                FROM pg_stat_activity WHERE backend_type = 'client backend'" |
        while IFS='|' read -r pid label; do
            echo "$label $pid $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
        done >>"$out"
    pm=$(head -1 "$W/pg/data/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pm" ]; then
        for pid in $pm $(cat "/proc/$pm/task/$pm/children" 2>/dev/null); do
            grep -q " $pid " "$out" && continue
            echo "pg:background $pid $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)"
        done >>"$out"
    fi
    pid=$(cat "$W/redis/redis.pid" 2>/dev/null || true)
    [ -n "$pid" ] && echo "redis $pid $(awk '{print $14 + $15}' "/proc/$pid/stat")" >>"$out"
    awk '$1 == "cpu" {print "machine - " $2 + $3 + $4 + $7 + $8}' /proc/stat >>"$out"
}

lf_bench_cpu_report() {
    local hz parts
    hz=$(getconf CLK_TCK)
    parts=$(awk -v n="$3" -v hz="$hz" '
        FNR == NR { before[$1 " " $2] = $3; next }
        { d = $3 - (($1 " " $2) in before ? before[$1 " " $2] : 0)
          if ($1 == "machine") m = d; else { by[$1] += d; t += d } }
        END {
            if (n <= 0) exit
            for (k in by) if (by[k] > 0) printf "%.0f %s\n", by[k] * 1e6 / hz / n, k
            printf "%.0f ~stack-total\n%.0f ~machine\n", t * 1e6 / hz / n, m * 1e6 / hz / n
        }' "$1" "$2" | sort -k1,1nr)
    [ -n "$parts" ] || { echo "(no leads: no CPU per lead)"; return 0; }
    { grep -v ' ~' <<<"$parts" | awk '{printf "%s %s, ", $2, $1}'
      awk '$2 == "~stack-total" {t = $1} $2 == "~machine" {m = $1}
           END {printf "stack total %s, machine %s us of CPU per lead", t, m}' <<<"$parts"
      echo " ($3 leads)"; }
}
