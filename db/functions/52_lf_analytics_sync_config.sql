-- lf_analytics_sync_config: repeatable; first created by 0007_analytics.sql. Edit here, not in a migration.
-- Rewrites stages, loss_reasons and sla_first_contact from the parsed configuration
-- files (config/pipeline.json, config/sla.json). Called by leadflow-analytics at start.
CREATE OR REPLACE FUNCTION lf_analytics_sync_config(pipeline jsonb, sla jsonb) RETURNS void
    LANGUAGE sql AS $$
DELETE FROM stages WHERE id NOT IN
    (SELECT s ->> 'id' FROM jsonb_array_elements(pipeline -> 'stages') s);
INSERT INTO stages (id, label_zh, label_en, stage_order, kind, probability)
SELECT s ->> 'id', s -> 'label' ->> 'zh', s -> 'label' ->> 'en', (s ->> 'order')::int,
       s ->> 'kind', (s ->> 'probability')::numeric
FROM jsonb_array_elements(pipeline -> 'stages') s
ON CONFLICT (id) DO UPDATE SET label_zh = EXCLUDED.label_zh, label_en = EXCLUDED.label_en,
    stage_order = EXCLUDED.stage_order, kind = EXCLUDED.kind,
    probability = EXCLUDED.probability;
DELETE FROM loss_reasons WHERE id NOT IN
    (SELECT r ->> 'id' FROM jsonb_array_elements(pipeline -> 'loss_reasons') r);
INSERT INTO loss_reasons (id, label_zh, label_en)
SELECT r ->> 'id', r -> 'label' ->> 'zh', r -> 'label' ->> 'en'
FROM jsonb_array_elements(pipeline -> 'loss_reasons') r
ON CONFLICT (id) DO UPDATE SET label_zh = EXCLUDED.label_zh, label_en = EXCLUDED.label_en;
DELETE FROM sla_first_contact
WHERE grade NOT IN (SELECT jsonb_object_keys(sla -> 'first_contact_seconds'));
INSERT INTO sla_first_contact (grade, seconds)
SELECT key, value::text::int FROM jsonb_each(sla -> 'first_contact_seconds')
ON CONFLICT (grade) DO UPDATE SET seconds = EXCLUDED.seconds;
$$;
