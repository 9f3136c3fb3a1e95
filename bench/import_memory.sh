#!/usr/bin/env bash
# bench/import_memory.sh [ROWS] [RUNS] [PAD]: intake's peak resident memory while it takes
# one large CSV import (POST /v1/leads/import). PAD (default 0) lengthens each row's note
# by PAD Chinese characters (3 bytes each): the same body size with fewer rows.
# LF_BENCH_FORMAT=xlsx sends the same rows as an .xlsx workbook instead (written by
# build/bench/xlsx_gen: shared strings for the header and companies, inline strings, number
# cells; PAD is ignored). LF_BENCH_BIN_DIR runs another build's intake and migrate (e.g.
# the previous version's, to compare).
#
# Starts its own PostgreSQL on a free loopback port, migrates, starts intake alone
# (release build, build/bin; no router or scheduler: the leads are only stored), writes a
# CSV of ROWS data rows (default 100,000, the default row cap, 15.4 MiB: 9 columns,
# Chinese and English text, each row a different person), and per run: starts intake
# fresh, reads VmRSS, sends the file with curl, and reads VmHWM (the peak RSS of the
# process's life) once the answer is in, and samples the size of intake's spool file (the
# good rows waiting for the commit, on disk). Prints the file size, the answer's counts
# and, per run, idle and peak KiB and the spool's size, with the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ROWS=${1:-100000}; RUNS=${2:-1}; PAD=${3:-0}
make -s WERROR=1 bins >/dev/null
BIN=${LF_BENCH_BIN_DIR:-build/bin}
FORMAT=${LF_BENCH_FORMAT:-csv}
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port); HTTP=$(lf_free_port); Z1=$(lf_free_port)
pid=
cleanup() {
    [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
    lf_pg_stop "$W/pg"
    [ -n "${LF_BENCH_KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
export LEADFLOW_ADMIN_KEY=bench-key LEADFLOW_ALLOW_SHORT_ADMIN_KEY=1 LEADFLOW_INTAKE_PORT=$HTTP
export LEADFLOW_LOG_LEVEL=warn LEADFLOW_CONFIG_DIR=$PWD/config
export LEADFLOW_INTAKE_EVENTS_BIND=tcp://127.0.0.1:$Z1 LEADFLOW_IMPORT_MAX_ROWS=$ROWS
"$BIN"/leadflow-migrate >/dev/null 2>&1
awk -v n="$ROWS" -v pad="$PAD" 'BEGIN {
    extra = ""; for (k = 0; k < pad; k++) extra = extra "备"
    print "姓名,手机,邮箱,公司,职位,预算（万元）,行业,地区,备注"
    for (i = 1; i <= n; i++)
        printf "展会客户%06d,139%08d,visitor%06d@example-expo.com,华东医疗器械有限公司%04d,采购经理,%d," \
               "medical,east,\"展位 A%03d 来访, 要报价单%s\"\n",
               i, i, i, i % 9973, 10 + i % 90, i % 500, extra
}' >"$W/import.csv"
BODY=$W/import.csv CT=text/csv
if [ "$FORMAT" = xlsx ]; then
    make -s WERROR=1 build/bench/xlsx_gen >/dev/null
    build/bench/xlsx_gen "$ROWS" "$W/import.xlsx" 2>/dev/null
    BODY=$W/import.xlsx CT=application/vnd.openxmlformats-officedocument.spreadsheetml.sheet
fi
size=$(stat -c %s "$BODY")
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
for r in $(seq 1 "$RUNS"); do
    psql -qX "$LEADFLOW_DATABASE_URL" -c "TRUNCATE leads CASCADE" >/dev/null 2>&1 || true
    "$BIN"/leadflow-intake 2>>"$W/intake.log" & pid=$!
    for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.1
    done
    idle=$(kib "$pid" VmRSS); load=$(cut -d' ' -f1-3 /proc/loadavg)
    start=$(date +%s.%N)
    # The largest size of intake's spool file (good rows waiting for the commit), sampled.
    ( max=0; while kill -0 "$pid" 2>/dev/null; do
        for f in /proc/$pid/fd/*; do
            case "$(readlink "$f")" in *leadflow-import.*)
                s=$(stat -L -c %s "$f" 2>/dev/null || echo 0); [ "$s" -gt "$max" ] && max=$s
                echo "$max" >"$W/spool.max";;
            esac
        done; sleep 0.5; done ) & sampler=$!
    code=$(curl -s -o "$W/answer.json" -w '%{http_code}' --max-time 600 \
        -H 'Authorization: Bearer bench-key' -H "Content-Type: $CT" \
        --data-binary @"$BODY" "http://127.0.0.1:$HTTP/v1/leads/import")
    secs=$(echo "$(date +%s.%N) - $start" | bc)
    kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
    peak=$(kib "$pid" VmHWM)
    counts=$(head -c 200 "$W/answer.json" | grep -o '"accepted":[0-9]*,"rejected":[0-9]*' || true)
    echo "import_memory run $r ($FORMAT, $BIN): file ${size} bytes, ${ROWS} rows; HTTP $code $counts in ${secs}s;" \
         "intake idle ${idle} KiB, peak (VmHWM) ${peak} KiB, spool file at most $(cat "$W/spool.max" 2>/dev/null || echo 0) bytes; load avg before: $load, after: $(cut -d' ' -f1-3 /proc/loadavg)"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
