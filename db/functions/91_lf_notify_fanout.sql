-- lf_notify_fanout: repeatable (notifications, 0030_notify.sql).
-- Every new notification becomes one notify_deliveries row per destination of its
-- rep (reps.notify), of the rep's team and of team '*' (notify_teams, copied from
-- config by the scheduler): in the same transaction as the notification, so a
-- notification is never without its deliveries. Quiet hours: messages to people (chat
-- robots, e-mail) wait for the rep's working time - its own work_hours when set
-- (lf_notify_not_before), else its team's business calendar (lf_notify_next_open) -
-- unless the rep ignores shifts; escalations, pause notices and generic webhooks
-- (machines) never wait.
-- Destinations are keyed by md5(type|url|to): the same robot set by two reps is one
-- destination with one rate limit.
CREATE OR REPLACE FUNCTION lf_notify_targets(p_ids bigint[])
    RETURNS TABLE (notification_id bigint, key text, dest jsonb, owner_rep text,
                   owner_team text, urgent boolean, not_before timestamptz)
    LANGUAGE sql STABLE AS $$
    WITH n AS (
        SELECT n.id, n.kind, n.rep_id, r.team, r.timezone, r.work_hours,
               CASE WHEN jsonb_typeof(r.notify) = 'array' THEN r.notify
                    ELSE '[]'::jsonb END AS rep_notify,
               n.kind IN ('sla_escalation', 'destination_paused')
                 OR r.id IS NULL OR r.ignore_shift AS urgent,
               coalesce((SELECT t.open_hours FROM notify_teams t WHERE t.team = r.team),
                        (SELECT t.open_hours FROM notify_teams t WHERE t.team = ''))
                 AS open_hours
          FROM notifications n LEFT JOIN reps r ON r.id = n.rep_id
         WHERE n.id = ANY (p_ids)),
    d AS (
        SELECT n.id, n.urgent, n.timezone, n.work_hours, n.open_hours, x.dest,
               n.rep_id AS owner_rep, NULL::text AS owner_team
          FROM n CROSS JOIN LATERAL jsonb_array_elements(n.rep_notify) x(dest)
        UNION ALL
        SELECT n.id, n.urgent OR t.team = '*', n.timezone, n.work_hours, n.open_hours,
               x.dest, NULL, t.team
          FROM n JOIN notify_teams t ON t.team = n.team OR t.team = '*'
         CROSS JOIN LATERAL jsonb_array_elements(t.notify) x(dest)
         WHERE jsonb_typeof(t.notify) = 'array' AND t.team <> '')
    SELECT d.id,
           md5(concat_ws('|', d.dest ->> 'type', coalesce(d.dest ->> 'url', ''),
                         coalesce(d.dest ->> 'to', ''))),
           d.dest, d.owner_rep, d.owner_team, d.urgent,
           CASE WHEN d.urgent OR d.dest ->> 'type' = 'webhook' THEN now()
                WHEN d.work_hours IS NOT NULL
                  THEN lf_notify_not_before(d.timezone, d.work_hours, now())
                ELSE lf_notify_next_open(d.open_hours, now()) END
      FROM d
     WHERE d.dest ->> 'type' IN ('wecom', 'dingtalk', 'feishu', 'slack', 'webhook', 'email')
$$;

CREATE OR REPLACE FUNCTION lf_notify_fanout() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    -- No destination anywhere - no rep with one and no team or '*' row with one -
    -- means no delivery for any notification: skip the targets' joins, which cost
    -- ~36 us per notification (the router writes one per assignment) for nothing
    -- (docs/benchmarks.md). Two small scans per statement: reps and notify_teams
    -- hold a row per rep and per team.
    IF NOT EXISTS (SELECT 1 FROM reps r
                    WHERE jsonb_typeof(r.notify) = 'array' AND r.notify <> '[]'::jsonb)
       AND NOT EXISTS (SELECT 1 FROM notify_teams t
                        WHERE t.team <> '' AND jsonb_typeof(t.notify) = 'array'
                          AND t.notify <> '[]'::jsonb) THEN
        RETURN NULL;
    END IF;
    SELECT array_agg(id) INTO ids FROM new_notifications;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO notify_dests AS nd (key, type, url, secret, to_addr, format, owner_rep,
                                    owner_team)
    SELECT DISTINCT ON (t.key) t.key, t.dest ->> 'type', t.dest ->> 'url',
           t.dest ->> 'secret', t.dest ->> 'to', t.dest ->> 'format', t.owner_rep,
           t.owner_team
      FROM lf_notify_targets(ids) t
     ORDER BY t.key
        ON CONFLICT (key) DO UPDATE
       SET secret = EXCLUDED.secret, format = EXCLUDED.format,
           owner_rep = coalesce(EXCLUDED.owner_rep, nd.owner_rep),
           owner_team = coalesce(EXCLUDED.owner_team, nd.owner_team)
     WHERE (nd.secret, nd.format) IS DISTINCT FROM (EXCLUDED.secret, EXCLUDED.format);
    INSERT INTO notify_deliveries (notification_id, dest_key, urgent, next_at)
    SELECT DISTINCT ON (t.notification_id, t.key) t.notification_id, t.key, t.urgent,
           t.not_before
      FROM lf_notify_targets(ids) t
     ORDER BY t.notification_id, t.key
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS notifications_fanout ON notifications;
CREATE TRIGGER notifications_fanout AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_notifications
    FOR EACH STATEMENT EXECUTE FUNCTION lf_notify_fanout();
