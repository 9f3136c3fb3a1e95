-- lf_envelope: repeatable; first created by 0001_init.sql. Edit here, not in a migration.
CREATE OR REPLACE FUNCTION lf_envelope(seq bigint, event_id uuid, type text, lead_id text,
                            at timestamptz, version integer, payload jsonb) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('v', version, 'seq', seq, 'event_id', event_id,
                                   'type', type, 'lead_id', lead_id,
                                   'at', lf_rfc3339(at), 'payload', payload) $$;
