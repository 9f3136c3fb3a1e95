#!/usr/bin/env bash
# bench/analytics.sh [RUNS] [EVENTS] [LEADS]: the analytics figures of docs/benchmarks.md.
#  (a) fold rate: EVENTS (200,000) lead.assigned / stage.changed / deal.won / deal.lost
#      events with the payloads the router and intake write are put straight into the
#      outbox; leadflow-analytics (release build) is started and timed from its start
#      until every event is acknowledged (consumer_acks of 'analytics'). RUNS runs.
#      Each run also checks the rollups against counts computed from the outbox.
#  (b) funnel: LEADS (1,000,000) leads with stage history (lead_events) and the
#      analytics state are generated with SQL; SELECT * FROM v_funnel runs 20 times in
#      one psql session (\timing, client round trip included): median and p95. The old
#      definition (0004: scans of leads and lead_events) is timed 3 times beside it.
# Starts its own PostgreSQL on a free loopback port; prints one line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
RUNS=${1:-3}; E=${2:-200000}; L=${3:-1000000}
make -s WERROR=1 bins >/dev/null
W=$(mktemp -d /tmp/leadflow-bench.XXXXXX); chmod 755 "$W"
PG=$(lf_free_port)
apid=
cleanup() { [ -n "$apid" ] && kill "$apid" 2>/dev/null; wait 2>/dev/null || true
            lf_pg_stop "$W/pg"; rm -rf "$W"; }
trap cleanup EXIT
lf_pg_start "$W/pg" "$PG" >/dev/null
export LEADFLOW_DATABASE_URL=postgresql://leadflow@127.0.0.1:$PG/leadflow
export LEADFLOW_LOG_LEVEL=warn
# Nothing publishes in this benchmark: the sweep is the only way in, as after an outage.
export LEADFLOW_INTAKE_EVENTS=tcp://127.0.0.1:$(lf_free_port)
export LEADFLOW_ROUTER_EVENTS=tcp://127.0.0.1:$(lf_free_port)
export LEADFLOW_SCHEDULER_EVENTS=tcp://127.0.0.1:$(lf_free_port)
export LEADFLOW_HEALTH_FILE=$W/health
build/bin/leadflow-migrate >/dev/null 2>&1
q() { psql -qtAX -v ON_ERROR_STOP=1 "$LEADFLOW_DATABASE_URL" "$@"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { sort -n | awk '{a[NR]=$1} END {printf "min %s max %s", a[1], a[NR]}'; }

# Event i belongs to lead i/4: 0 lead.assigned, 1 stage.changed new->contacted (first
# contact), 2 contacted->qualified, 3 deal.won (1 in 5), deal.lost (1 in 5, a loss
# reason) or qualified->proposal with an amount.
gen_events() {
    q <<SQL
TRUNCATE outbox, consumer_acks, consumer_cursors, rollup_leads_daily, rollup_stage_daily,
         rollup_outcomes_daily, rollup_funnel, analytics_deals;
INSERT INTO outbox (event_id, type, lead_id, at, payload)
SELECT gen_random_uuid(),
       CASE i % 4 WHEN 0 THEN 'lead.assigned' WHEN 1 THEN 'stage.changed'
            WHEN 2 THEN 'stage.changed'
            ELSE CASE (i / 4) % 5 WHEN 0 THEN 'deal.won' WHEN 1 THEN 'deal.lost'
                 ELSE 'stage.changed' END END,
       ('00000000-0000-7000-8000-' || lpad((i / 4)::text, 12, '0'))::uuid,
       t,
       CASE i % 4
         WHEN 0 THEN jsonb_build_object('grade', (ARRAY['A','B','C','D'])[1 + (i / 4) % 4],
             'score', 40 + (i / 4) % 60, 'owner', 'rep-' || (i / 4) % 200, 'queue', NULL,
             'reason', 'round_robin', 'channel',
             (ARRAY['web_form','wechat','phone','email','import','api'])[1 + (i / 4) % 6],
             'created_at', lf_rfc3339(t - interval '2 seconds'))
         WHEN 1 THEN jsonb_build_object('from', 'new', 'to', 'contacted',
             'first_contact', true, 'actor', 'rep-' || (i / 4) % 200,
             'owner', 'rep-' || (i / 4) % 200, 'playbook_notification', i)
         WHEN 2 THEN jsonb_build_object('from', 'contacted', 'to', 'qualified',
             'actor', 'rep-' || (i / 4) % 200, 'owner', 'rep-' || (i / 4) % 200,
             'playbook_notification', i)
         ELSE CASE (i / 4) % 5
           WHEN 0 THEN jsonb_build_object('from', 'qualified', 'to', 'won',
             'amount', 1000 + (i / 4) % 90000, 'actor', 'rep-' || (i / 4) % 200,
             'owner', 'rep-' || (i / 4) % 200, 'customer_id', i / 4)
           WHEN 1 THEN jsonb_build_object('from', 'qualified', 'to', 'lost',
             'loss_reason', (ARRAY['price','competitor','no_budget','unreachable'])[1 + (i / 4) % 4],
             'reason', '客户选择了其他供应商', 'actor', 'rep-' || (i / 4) % 200,
             'owner', 'rep-' || (i / 4) % 200)
           ELSE jsonb_build_object('from', 'qualified', 'to', 'proposal',
             'amount', 5000 + (i / 4) % 50000, 'actor', 'rep-' || (i / 4) % 200,
             'owner', 'rep-' || (i / 4) % 200) END
       END
FROM generate_series(0, $E - 1) i,
     LATERAL (SELECT now() - interval '1 day' + i * interval '1 millisecond') x(t);
VACUUM ANALYZE outbox, consumer_acks;
SQL
}

rates=()
for run in $(seq 1 "$RUNS"); do
    gen_events
    last=$(q -c "SELECT max(id) FROM outbox")
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    build/bin/leadflow-analytics 2>"$W/analytics.$run.log" & apid=$!
    # One psql session polls with an index probe for the last event's ack every 20 ms
    # (the sweep pages in seq order), then confirms with a count. A psql process per
    # poll, or counting 200,000 acks each time, would take a good part of a core from
    # the process being measured.
    q <<SQL || { echo "analytics did not finish" >&2; cat "$W/analytics.$run.log" >&2; exit 1; }
SET statement_timeout = '300s';
DO \$\$ BEGIN
    LOOP
        IF EXISTS (SELECT 1 FROM consumer_acks WHERE consumer = 'analytics'
                   AND seqs @> $last::bigint) THEN
            EXIT WHEN (SELECT sum(upper(r) - lower(r)) FROM consumer_acks a,
                              unnest(a.seqs) r WHERE a.consumer = 'analytics') >= $E;
        END IF;
        PERFORM pg_sleep(0.02);
    END LOOP;
END \$\$;
SQL
    t1=$(date +%s.%N)
    kill "$apid"; wait "$apid" || true; apid=
    rates+=("$(awk -v n="$E" -v a="$t0" -v b="$t1" 'BEGIN {print int(n / (b - a))}')")
    # Exactly what was put in must come out.
    check=$(q <<'SQL'
SELECT (SELECT sum(leads) FROM rollup_leads_daily) = (SELECT count(*) FROM outbox WHERE type = 'lead.assigned')
   AND (SELECT sum(moves) FROM rollup_stage_daily) = (SELECT count(*) FROM outbox WHERE type = 'stage.changed')
   AND (SELECT sum(deals) FROM rollup_outcomes_daily) = (SELECT count(*) FROM outbox WHERE type IN ('deal.won', 'deal.lost'))
   AND (SELECT sum(amount) FROM rollup_outcomes_daily WHERE outcome = 'won') = (SELECT sum((payload->>'amount')::numeric) FROM outbox WHERE type = 'deal.won')
   AND (SELECT sum(deals_now) FROM rollup_funnel) = (SELECT count(*) FROM outbox WHERE type = 'lead.assigned')
   AND (SELECT deals_reached FROM rollup_funnel WHERE stage = 'qualified') = (SELECT count(*) FROM outbox WHERE payload->>'to' = 'qualified')
   AND (SELECT count(*) FROM consumer_acks WHERE error IS NOT NULL) = 0
SQL
)
    echo "run $run: $E events folded in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s = ${rates[-1]} events/s, rollups exact: $check, load average before $load" >&2
    [ "$check" = t ] || { echo "rollups do not match the events" >&2; exit 1; }
done
r=$(printf '%s\n' "${rates[@]}" | median)
echo "analytics.fold_events_per_sec $r ($(printf '%s\n' "${rates[@]}" | spread); runs: ${rates[*]}) (target >= 50000)"

# (b) the funnel over LEADS leads.
q <<SQL
TRUNCATE outbox, consumer_acks, rollup_funnel, analytics_deals, rollup_stage_daily CASCADE;
INSERT INTO reps (id, name) SELECT 'rep-' || r, 'Rep ' || r FROM generate_series(0, 199) r
ON CONFLICT DO NOTHING;
ALTER TABLE lead_events DISABLE TRIGGER USER;
INSERT INTO leads (id, channel, source, name, phone, created_at, grade, score, owner,
                   assigned_at, stage, stage_changed_at, first_contact_at, amount,
                   loss_reason, closed_at)
SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid,
       (ARRAY['web_form','wechat','phone','email','import','api'])[1 + i % 6],
       'campaign-' || i % 20, '客户' || i, '1380000' || lpad((i % 10000)::text, 4, '0'),
       c, (ARRAY['A','B','C','D'])[1 + i % 4], 40 + i % 60, 'rep-' || i % 200,
       c + interval '2 seconds', s.stage, c + interval '1 day',
       CASE WHEN s.stage <> 'new' THEN c + (i % 7200) * interval '1 second' END,
       CASE WHEN s.stage IN ('quote','negotiation','won') THEN 1000 + i % 90000 END,
       CASE WHEN s.stage = 'lost' THEN 'price' END,
       CASE WHEN s.stage IN ('won','lost') THEN c + interval '1 day' END
FROM generate_series(1, $L) i,
     LATERAL (SELECT now() - (i % 365) * interval '1 day') x(c),
     LATERAL (SELECT (ARRAY['new','new','contacted','contacted','qualified','proposal',
              'quote','negotiation','won','lost'])[1 + i % 10] AS stage) s;
-- The stage history of each lead: one stage_changed row per stage on the way to its
-- current one (forward moves; lost leads went new -> contacted -> qualified -> lost).
INSERT INTO lead_events (lead_id, at, type, actor, data)
SELECT l.id, l.created_at + k * interval '1 hour', 'stage_changed', l.owner,
       jsonb_build_object('from', p.path[k], 'to', p.path[k + 1])
FROM leads l,
     LATERAL (SELECT CASE WHEN l.stage = 'lost' THEN ARRAY['new','contacted','qualified','lost']
              ELSE (ARRAY['new','contacted','qualified','proposal','quote','negotiation','won'])
                   [1:(SELECT o FROM unnest(ARRAY['new','contacted','qualified','proposal',
                      'quote','negotiation','won']) WITH ORDINALITY u(s, o) WHERE s = l.stage)]
              END AS path) p,
     generate_series(1, array_length(p.path, 1) - 1) k;
ALTER TABLE lead_events ENABLE TRIGGER USER;
-- What the fold would have built from these leads' events.
INSERT INTO analytics_deals (lead_id, stage, amount, reached)
SELECT l.id, l.stage, l.amount,
       ARRAY(SELECT DISTINCT s FROM unnest(array_remove('{new}' || array_agg(e.data ->> 'to'), NULL)) s ORDER BY 1)
FROM leads l LEFT JOIN lead_events e ON e.lead_id = l.id AND e.type = 'stage_changed'
GROUP BY l.id;
INSERT INTO rollup_funnel (stage, deals_now, amount_now, deals_reached)
SELECT s, count(*) FILTER (WHERE stage = s), coalesce(sum(amount) FILTER (WHERE stage = s), 0),
       count(*)
FROM analytics_deals, unnest(reached) s GROUP BY s;
INSERT INTO rollup_stage_daily (day, stage, moves)
SELECT (at AT TIME ZONE 'Asia/Shanghai')::date, data ->> 'to', count(*)
FROM lead_events WHERE type = 'stage_changed' GROUP BY 1, 2;
VACUUM ANALYZE;
SQL
echo "funnel data: $(q -c "SELECT count(*) FROM leads") leads, $(q -c "SELECT count(*) FROM lead_events") timeline rows" >&2
# The funnel must say what a scan of leads and lead_events says (the 0004 definition).
old_funnel="WITH reached AS (SELECT e.data ->> 'to' AS stage, count(DISTINCT e.lead_id) AS deals
 FROM lead_events e WHERE e.type = 'stage_changed' GROUP BY 1 UNION ALL SELECT 'new', count(*) FROM leads),
 now_in AS (SELECT stage, count(*) AS deals, coalesce(sum(amount), 0) AS amount FROM leads GROUP BY stage)
 SELECT s.stage, coalesce(n.deals, 0), coalesce(n.amount, 0),
        coalesce((SELECT sum(r.deals) FROM reached r WHERE r.stage = s.stage), 0)
 FROM (SELECT stage FROM reached UNION SELECT stage FROM now_in) s LEFT JOIN now_in n ON n.stage = s.stage"
diff <(q -c "SELECT * FROM ($old_funnel) x ORDER BY 1") \
     <(q -c "SELECT stage, deals_now, amount_now, deals_reached FROM v_funnel WHERE deals_reached > 0 ORDER BY 1") >&2 ||
    { echo "v_funnel differs from the scan of leads and lead_events" >&2; exit 1; }
timing() { # SQL N: prints the N client-side times in ms, one a line
    { echo '\timing on'; for _ in $(seq 1 "$2"); do echo "$1;"; done; } |
        psql -qX "$LEADFLOW_DATABASE_URL" -o /dev/null | awk '/^Time:/ {print $2}'
}
timing "SELECT * FROM v_funnel ORDER BY stage_order" 20 >"$W/funnel.ms"
m=$(median <"$W/funnel.ms")
p95=$(sort -n "$W/funnel.ms" | awk '{a[NR]=$1} END {print a[int(NR * 0.95 + 0.999)]}')
echo "analytics.funnel_ms_median $m (p95 $p95, $(spread <"$W/funnel.ms"), 20 queries over $L leads) (target <= 200)"
timing "$old_funnel" 3 >"$W/old.ms"
echo "analytics.funnel_scan_ms_median $(median <"$W/old.ms") (reference: the 0004 definition scanning leads and lead_events, 3 queries)"
timing "SELECT * FROM v_pipeline_value" 5 >"$W/pv.ms"
echo "analytics.pipeline_value_ms_median $(median <"$W/pv.ms") (no target)"
