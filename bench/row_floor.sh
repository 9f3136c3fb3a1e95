#!/usr/bin/env bash
# bench/row_floor.sh [ROWS=200000] [REPS=3]: what PostgreSQL's backend spends per row
# written on this machine when nothing else is asked of it - the floor under any design of
# leadflow's write path (docs/benchmarks.md, "What 20,000 leads/s would take").
#
# One private PostgreSQL (lf_bench_pg_only, the project's settings: fsync on). Three
# tables of the shape of our append-only rows (a uuid primary key, a timestamp, a short
# text, a jsonb of ~60 bytes): with the primary key only, and with four more btree
# indexes (five entries per row, about what a lead's timeline, outbox and search rows carry
# together with their keys). Each is written by COPY FROM STDIN in one transaction (the
# cheapest way in), and by INSERT ... SELECT FROM unnest() of arrays in statements of 256
# rows (how our services write batches), synchronous_commit on, one commit per statement.
# The figure is the backend's utime + stime from /proc per row (not wall time: the
# machine is shared), the median of REPS runs with the spread, and the rows per second
# one core would write at that cost.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
ROWS=${1:-200000}
REPS=${2:-3}
lf_bench_pg_only
URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
TCK=$(getconf CLK_TCK)
psql -qX -v ON_ERROR_STOP=1 "$URL" >/dev/null <<'SQL'
SET jit = off;
CREATE TABLE f_pk (id uuid PRIMARY KEY, at timestamptz NOT NULL, kind text COLLATE "C",
                   lead uuid, data jsonb);
CREATE TABLE f_idx (LIKE f_pk INCLUDING ALL);
CREATE INDEX ON f_idx (at);
CREATE INDEX ON f_idx (lead, at);
CREATE INDEX ON f_idx (kind, at);
CREATE INDEX ON f_idx (lead);
SQL
W2=$(mktemp -d /tmp/leadflow-floor.XXXXXX)
trap 'rm -rf "$W2"; lf_pg_stop "$W/pg"; rm -rf "$W"' EXIT
# the rows, as COPY text: a UUIDv7-like id, a time, a kind, a lead id, a small document
awk -v n="$ROWS" 'BEGIN { srand(7); for (i = 1; i <= n; i++)
    printf "0190%04x-%04x-7%03x-8%03x-%012x\t2026-12-02 03:00:00+00\tassigned\t0190%04x-0000-7000-8000-%012x\t{\"rep\": \"rep%d\", \"grade\": \"B\", \"score\": %d}\n",
        int(i / 65536) % 65536, i % 65536, int(rand() * 4096), int(rand() * 4096), i,
        int(i / 7) % 65536, int(i / 7), i % 200, i % 100 }' >"$W2/rows.tsv"
# measure TABLE MODE: the backend's CPU seconds to write ROWS rows into TABLE
measure() {
    local t=$1 mode=$2 pid c0 c1
    psql -qX "$URL" -c "TRUNCATE $t" >/dev/null
    psql -qX "$URL" -c "CHECKPOINT" >/dev/null
    coproc P { psql -qtAX -v ON_ERROR_STOP=1 "$URL"; }
    echo "SELECT pg_backend_pid();" >&"${P[1]}"
    read -r pid <&"${P[0]}"
    c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    if [ "$mode" = copy ]; then
        { echo "COPY $t FROM STDIN;"; cat "$W2/rows.tsv"; echo '\.'; } >&"${P[1]}"
    else
        # statements of 256 rows, each its own transaction, from arrays as our services send them
        split -l 256 "$W2/rows.tsv" "$W2/chunk."
        for f in "$W2"/chunk.*; do
            awk -F'\t' -v t="$t" '{ id = id s "\"" $1 "\""; lead = lead s "\"" $4 "\"";
                  gsub(/"/, "\\\"", $5); doc = doc s "\"" $5 "\""; s = "," }
                END { printf "INSERT INTO %s SELECT i, now(), %s, l, d FROM unnest(%s::uuid[], %s::uuid[], %s::jsonb[]) u(i, l, d);\n",
                      t, "'\''assigned'\''", "'\''{" id "}'\''", "'\''{" lead "}'\''", "'\''{" doc "}'\''" }' "$f"
        done >&"${P[1]}"
        rm -f "$W2"/chunk.*
    fi
    echo "SELECT 'done';" >&"${P[1]}"
    while read -r line <&"${P[0]}"; do [ "$line" = "done" ] && break; done
    c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    eval "exec ${P[1]}>&-"
    wait "$P_PID" 2>/dev/null || true
    awk -v a="$c0" -v b="$c1" -v k="$TCK" 'BEGIN {printf "%.3f", (b - a) / k}'
}
lf_say "row floor: $ROWS rows per measurement, $REPS runs, load $(lf_bench_load)"
for t in f_pk f_idx; do
    for mode in copy insert256; do
        runs=()
        for _ in $(seq 1 "$REPS"); do
            s=$(measure "$t" "$mode")
            runs+=("$(awk -v s="$s" -v n="$ROWS" 'BEGIN {printf "%.2f", s * 1e6 / n}')")
        done
        med=$(printf '%s\n' "${runs[@]}" | lf_bench_median)
        echo "floor.$t.$mode.us_per_row $med (runs: ${runs[*]}; $(printf '%s\n' "${runs[@]}" | lf_bench_spread); $(awk -v m="$med" 'BEGIN {printf "%d rows/s per core", (m > 0 ? 1e6 / m : 0)}'); load $(lf_bench_load))"
    done
done
