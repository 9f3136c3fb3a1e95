#!/usr/bin/env bash
# bench/upgrade_uuid.sh [LEADS=1000000]: what migration 0040_uuid_ids costs an existing
# database (docs/operations.md, "Upgrading"). Starts its own PostgreSQL on a free
# loopback port, applies the migrations before 0040 (without the function folder, whose
# files are written for uuid ids), fills LEADS leads as the services write them - each
# with 3 timeline entries, 2 outbox events, 1 assignment with 5 candidates, 1 timer and
# 2 consumer acknowledgements - compacts them (VACUUM FULL), then times leadflow-migrate
# (0040 and the function folder) and prints pg_total_relation_size of the tables before
# and after. Prints the load average beside the time: the machine's other work counts.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. bench/lib.sh
LEADS=${1:-1000000}
lf_bench_pg_only
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow LEADFLOW_LOG_LEVEL=warn
mkdir -p "$W/old/migrations" "$W/old/functions"
for f in db/migrations/*.sql; do
    case "$(basename "$f")" in 004[0-9]_* | 00[5-9]* | 0[1-9]*) ;; *) cp "$f" "$W/old/migrations/" ;; esac
done
LEADFLOW_MIGRATIONS_DIR=$W/old/migrations build/bin/leadflow-migrate
q() { psql -qtAX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" "$@"; }
q -v n="$LEADS" <<'SQL'
SET synchronous_commit = off;
INSERT INTO reps (id, name, team) SELECT 'rep' || i, 'Rep ' || i,
       (ARRAY['east','north','south','west'])[1 + i % 4] FROM generate_series(1, 200) i;
-- UUIDv7-shaped ids, as intake makes them: time-ordered, lower case.
CREATE TEMP TABLE g AS
SELECT i, lpad(to_hex(1764547200000 + i * 10), 12, '0') AS h, md5(i::text) AS r,
       'rep' || (1 + i % 200) AS owner, timestamptz '2026-01-01' + i * interval '10 ms' AS at
  FROM generate_series(1, :n) i;
ALTER TABLE g ADD COLUMN id text;
UPDATE g SET id = substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 1, 3)
                  || '-8' || substr(r, 4, 3) || '-' || substr(r, 7, 12);
INSERT INTO leads (id, channel, source, name, company, email, phone, need, budget_min,
                   budget_max, currency, budget_raw, urgency, region, industry, raw,
                   idempotency_key, created_at, grade, score, score_breakdown, graded_at,
                   owner, assignment_reason, assigned_at, stage, team, company_key)
SELECT g.id, 'web_form', 'seo', '王先生' || g.i, '华东医疗' || (g.i % 50000) || '有限公司',
       'user' || g.i || '@example' || (g.i % 1000) || '.com',
       '+86138' || lpad(g.i::text, 8, '0'), 'CT 机', 500000, 500000, 'CNY', '50万', 'high',
       'east', 'medical',
       jsonb_build_object('name', '王先生', 'phone', '138 0013 8000', 'budget', '50万'),
       'key1:' || g.r, g.at, 'B', 62,
       '[{"rule":"budget","points":30},{"rule":"urgency","points":20},{"rule":"industry","points":12}]',
       g.at, g.owner, 'round_robin', g.at, 'new', 'east', '华东医疗' || (g.i % 50000)
  FROM g;
INSERT INTO lead_events (lead_id, at, type, data)
SELECT g.id, g.at, t.type, t.data FROM g CROSS JOIN (VALUES
    ('created', '{"channel":"web_form","source":"seo"}'::jsonb),
    ('graded', '{"grade":"B","score":62}'::jsonb),
    ('assigned', '{"owner":"rep1","reason":"round_robin","team":"east"}'::jsonb)) t(type, data);
INSERT INTO outbox (event_id, type, lead_id, at, payload)
SELECT gen_random_uuid(), t.type, g.id, g.at, t.payload FROM g CROSS JOIN (VALUES
    ('lead.created', '{"channel":"web_form"}'::jsonb),
    ('lead.assigned', '{"owner":"rep1","grade":"B","channel":"web_form","team":"east"}'::jsonb))
    t(type, payload);
INSERT INTO assignments (lead_id, at, rep_id, reason, candidates)
SELECT g.id, g.at, g.owner, 'round_robin',
       '[{"rep":"rep1","eligible":true,"chosen":true},{"rep":"rep2","eligible":true},{"rep":"rep3","skip":"capacity"},{"rep":"rep4","skip":"region"},{"rep":"rep5","skip":"shift"}]'
  FROM g;
INSERT INTO timers (lead_id, kind, step, due_at, state, fired_at)
SELECT g.id, 'sla_first_contact', 0, g.at + interval '1 hour', 'fired', g.at + interval '1 hour'
  FROM g;
INSERT INTO consumer_acks (consumer, event_id)
SELECT CASE WHEN o.type = 'lead.created' THEN 'router' ELSE 'scheduler' END, o.id FROM outbox o;
SQL
q -c "VACUUM FULL" -c "ANALYZE"
sizes() {
    q -F ' ' -c "SELECT c.relname, pg_total_relation_size(c.oid), pg_indexes_size(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'
          AND c.relname IN ('leads', 'lead_events', 'outbox', 'assignments', 'timers',
                            'consumer_acks')
        UNION ALL SELECT 'all_tables', sum(pg_total_relation_size(c.oid)),
                         sum(pg_indexes_size(c.oid))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC" |
        awk -v w="$1" '{printf "%s %-13s total %7.1f MB  indexes %7.1f MB\n", w, $1, $2 / 1e6, $3 / 1e6}'
}
sizes before
t0=$(date +%s.%N)
build/bin/leadflow-migrate
t1=$(date +%s.%N)
sizes after
awk -v a="$t0" -v b="$t1" -v n="$LEADS" -v l="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
    printf "leadflow-migrate (0040 + function folder): %.1f s for %d leads (%.1f s per million), load average %s\n", b - a, n, (b - a) * 1e6 / n, l }'
q -c "SELECT link || ': ' || orphans FROM lf_orphans() WHERE orphans > 0" |
    sed 's/^/ORPHANS /'
