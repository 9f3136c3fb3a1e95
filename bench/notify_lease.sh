#!/usr/bin/env bash
# bench/notify_lease.sh [BACKLOG=200000] [CALLS=7]: what one lease of the notification
# delivery workers costs when a destination has a backlog (a receiver down for hours, a
# paused destination, a burst), with the index of 0061 and without it.
#
# One private PostgreSQL with leadflow's schema (lf_bench_pg_only, leadflow-migrate).
# BACKLOG notifications waiting for one robot, due an hour ago. In one session, CALLS
# calls of lf_notify_lease (up to 20 rows merged into one message), each rolled back so
# that every call sees the same backlog: the figure is the median time of the calls after
# the first (which plans the function's statements), with the spread, and the rows of
# notify_deliveries the last call read (pg_stat_xact_user_tables: index fetches and
# sequential reads). Then the same without notify_deliveries_order. Not part of make bench.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
BACKLOG=${1:-200000}
CALLS=${2:-7}
lf_bench_pg_only
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
build/bin/leadflow-migrate >/dev/null 2>&1 || { build/bin/leadflow-migrate >&2; exit 1; }
psql -qX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" >/dev/null <<SQL
INSERT INTO notify_dests (key, type, url) VALUES ('bench-robot', 'wecom', 'http://127.0.0.1:9/');
WITH n AS (INSERT INTO notifications (kind, message)
           SELECT 'lead_assigned', 'lead ' || g FROM generate_series(1, $BACKLOG) g RETURNING id)
INSERT INTO notify_deliveries (notification_id, dest_key, next_at, since)
SELECT id, 'bench-robot', now() - interval '1 hour', now() - interval '1 hour' FROM n;
ANALYZE notify_deliveries;
SQL
# What the backend read of notify_deliveries so far: its statistics not yet reported,
# which PostgreSQL keeps across transactions for up to a second (a call's own reads are
# the difference taken inside its transaction, where nothing is reported).
READ="SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) AS r FROM \
pg_stat_xact_user_tables WHERE relname = 'notify_deliveries'"
run() { # prints: median (min - max) ms of the calls after the first, rows a call read
    local out
    out=$({ echo '\timing on'
            for _ in $(seq "$CALLS"); do
                echo "BEGIN; $READ \\gset"
                echo "SELECT count(*) FROM lf_notify_lease('bench', 4, 20, 60, '{}'::jsonb);"
                echo "SELECT 'read ' || (($READ) - :r); ROLLBACK;"
            done; } | psql -qtAX "$LEADFLOW_DATABASE_URL")
    # each call prints five timings (BEGIN, the first read, the lease, the read,
    # ROLLBACK): the third
    echo "$out" | awk '/^Time:/ && ++t % 5 == 3 && t > 5 { print $2 }' | sort -g |
        awk -v rows="$(echo "$out" | awk '/^read / { r = $2 } END { print r }')" \
            '{ ms[NR] = $1 } END { printf "%.2f ms (%.2f - %.2f, %d calls), %d rows read\n",
                                   ms[int((NR + 1) / 2)], ms[1], ms[NR], NR, rows }'
}
echo "notify_lease.with_index $(run) (backlog $BACKLOG, load $(cut -d' ' -f1 /proc/loadavg))"
psql -qX "$LEADFLOW_DATABASE_URL" -c "DROP INDEX notify_deliveries_order" >/dev/null
echo "notify_lease.without_index $(run) (backlog $BACKLOG, load $(cut -d' ' -f1 /proc/loadavg))"
