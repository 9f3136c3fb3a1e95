-- Grants: what each service's role may do, table by table, and what BI tools may read
-- (roles: db/migrations/0012_roles.sql). Repeatable, and applied last: everything is
-- revoked first and granted again, so this file is the whole truth.
--
-- A new table needs its line here: a service without one fails with "permission denied
-- for table ...". SELECT ... FOR UPDATE needs UPDATE. Functions run with the caller's
-- rights (lf_intake_commit as intake, lf_fire_timers as the scheduler), so the tables
-- they touch are granted to their caller. Sequences (bigserial ids) are granted as a
-- whole, now and for tables made later.

REVOKE ALL ON ALL TABLES IN SCHEMA public
    FROM leadflow_intake, leadflow_router, leadflow_scheduler, leadflow_analytics,
         leadflow_bi;
GRANT USAGE ON SCHEMA public
    TO leadflow_intake, leadflow_router, leadflow_scheduler, leadflow_analytics,
       leadflow_bi;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public
    TO leadflow_intake, leadflow_router, leadflow_scheduler, leadflow_analytics;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES
    TO leadflow_intake, leadflow_router, leadflow_scheduler, leadflow_analytics;

-- Every consumer of the outbox: its acknowledgements and cursor, and the events.
GRANT SELECT, INSERT, UPDATE, DELETE ON consumer_acks, consumer_cursors
    TO leadflow_router, leadflow_scheduler, leadflow_analytics;
GRANT SELECT ON outbox TO leadflow_router, leadflow_scheduler, leadflow_analytics;
-- the acks one row per event (16_consumer_acked.sql), for reading only
GRANT SELECT ON consumer_acked
    TO leadflow_intake, leadflow_router, leadflow_scheduler, leadflow_analytics;
-- the events a consumer gave up on (0049_consumer_parked.sql): parked, replayed
GRANT SELECT, INSERT, UPDATE, DELETE ON consumer_parked
    TO leadflow_router, leadflow_scheduler, leadflow_analytics;
-- the tries of the events that failed, and the running instances (0050)
GRANT SELECT, INSERT, UPDATE, DELETE ON consumer_attempts, consumer_instances
    TO leadflow_router, leadflow_scheduler, leadflow_analytics;

-- intake: leads in (lf_intake_commit), keys, reps, stage moves and activities.
GRANT SELECT, INSERT, UPDATE ON leads, lead_inquiries, customers, reps, api_keys
    TO leadflow_intake;
GRANT SELECT, INSERT ON lead_events, outbox, notifications TO leadflow_intake;
GRANT SELECT ON stages, loss_reasons TO leadflow_intake;
-- /metrics shows each consumer's lag and the oldest open transaction: pg_stat_activity
-- shows other sessions' transactions only to members of pg_read_all_stats (read-only
-- statistics, no data)
GRANT SELECT ON consumer_cursors, consumer_acks, consumer_parked TO leadflow_intake;
GRANT pg_read_all_stats TO leadflow_intake;
-- claims, assignments and handovers by people (lf_claim_lead, lf_move_lead, lf_handover)
GRANT SELECT, INSERT ON assignments TO leadflow_intake;
-- the timeline decodes the router's compact explanations (lf_timeline_data)
GRANT SELECT ON route_explanations TO leadflow_intake;
-- the lists' search reads lead_search; the triggers on leads (23_lf_lead_search.sql) write
-- it as whoever inserts a lead or edits its name, company, e-mail or phone
GRANT SELECT, INSERT, UPDATE ON lead_search
    TO leadflow_intake, leadflow_router, leadflow_scheduler;
GRANT SELECT, INSERT, UPDATE ON lead_claims, routing_ledger TO leadflow_intake;
-- a stage move restarts the deal's stale clock (lf_keepalive_on_move)
GRANT SELECT, INSERT, UPDATE ON timers TO leadflow_intake;
GRANT SELECT ON lead_recycles TO leadflow_intake;

-- router: grades, assigns and reassigns; its fairness ledger.
GRANT SELECT, UPDATE ON leads, reps TO leadflow_router;
GRANT SELECT, INSERT ON lead_events, assignments, notifications, outbox TO leadflow_router;
GRANT SELECT, INSERT, UPDATE ON routing_ledger TO leadflow_router;
-- the batch's explanation dictionary (0045_route_explanations.sql)
GRANT SELECT, INSERT ON route_explanations TO leadflow_router;
GRANT SELECT ON customers, stages, lead_recycles, lead_claims TO leadflow_router;

-- scheduler: timers, reminders and escalations, notifications and their delivery.
GRANT SELECT, INSERT, UPDATE, DELETE ON timers TO leadflow_scheduler;
-- the first-contact deadline of each lead's current owner (0047)
GRANT SELECT, INSERT, UPDATE ON lead_first_contact TO leadflow_scheduler;
GRANT SELECT, INSERT, UPDATE ON notifications TO leadflow_scheduler;
-- (a reactivated lost deal is a new lead; recycling updates the owner's open count)
GRANT SELECT, INSERT, UPDATE ON leads TO leadflow_scheduler;
GRANT UPDATE ON reps TO leadflow_scheduler;
GRANT SELECT, INSERT ON lead_events, outbox TO leadflow_scheduler;
GRANT SELECT ON reps, assignments, stages, sla_first_contact TO leadflow_scheduler;
-- stale deals recycled to the pool, weekly digests (lf_fire_timers, keep-alive)
GRANT SELECT, INSERT, UPDATE ON lead_recycles, digests TO leadflow_scheduler;

-- analytics: its rollups and the stage/SLA tables it syncs from the configuration.
GRANT SELECT, INSERT, UPDATE, DELETE
    ON analytics_deals, rollup_funnel, rollup_leads_daily, rollup_outcomes_daily,
       rollup_stage_daily, stages, loss_reasons, sla_first_contact,
       rollup_keepalive_daily, rollup_funnel_reactivated, analytics_reactivated
    TO leadflow_analytics;
GRANT SELECT ON leads, lead_events, reps TO leadflow_analytics;
-- recycled deals that closed later (lf_analytics_keepalive)
GRANT SELECT ON lead_recycles TO leadflow_analytics;

-- Notification destinations and deliveries (0030_notify.sql): every service that writes
-- a notification fans it out to its destinations in the same statement
-- (lf_notify_fanout); intake lists and retries them and edits destinations; the
-- scheduler delivers them.
GRANT SELECT, INSERT, UPDATE ON notify_teams, notify_dests, notify_deliveries, notify_stats
    TO leadflow_intake, leadflow_router, leadflow_scheduler;
GRANT UPDATE ON notifications TO leadflow_intake;
GRANT DELETE ON notify_teams TO leadflow_scheduler; -- synced from config/routing.json

-- BI tools: the documented views and the rollups behind them; no table that holds a
-- name, phone, e-mail, company or raw submission (leads, lead_events, customers, ...).
-- A view reads its tables with its owner's rights, so v_lead_outcomes shows ids,
-- channels, grades, times and amounts without leadflow_bi reading leads itself.
GRANT SELECT
    ON v_funnel, v_win_loss, v_pipeline_value, v_loss_reasons, v_lead_outcomes,
       v_first_response, v_conversion, v_stage_conversion, assignment_explanations,
       v_recycled_deals, v_reactivated_deals, v_keepalive_outcomes,
       v_keepalive_daily, v_funnel_reactivated, rollup_keepalive_daily,
       rollup_funnel_reactivated,
       rollup_funnel, rollup_leads_daily, rollup_outcomes_daily, rollup_stage_daily,
       stages, loss_reasons, sla_first_contact
    TO leadflow_bi;
