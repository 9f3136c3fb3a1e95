-- lf_lead_canonical: repeatable; first created by 0001_init.sql. Edit here, not in a migration.
-- The canonical lead as the router and scorecard read it.
CREATE OR REPLACE FUNCTION lf_lead_canonical(l leads) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_build_object(
        'id', l.id, 'channel', l.channel, 'source', l.source, 'name', l.name,
        'company', l.company, 'email', l.email, 'phone', l.phone,
        'phone_type', l.phone_type, 'phone_country', l.phone_country, 'flags', l.flags,
        'company_key', nullif(l.company_key, ''),
        'budget', CASE WHEN l.budget_min IS NULL AND l.budget_max IS NULL THEN NULL
                  ELSE jsonb_build_object('min', l.budget_min, 'max', l.budget_max,
                                          'currency', l.currency, 'raw', l.budget_raw) END,
        'urgency', l.urgency, 'decision_maker', l.decision_maker, 'region', l.region,
        'industry', l.industry, 'need', l.need, 'external_id', l.external_id,
        'extra', l.extra, 'created_at', lf_rfc3339(l.created_at)) $$;
