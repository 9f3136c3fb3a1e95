-- lf_envelope: repeatable; first created by 0001_init.sql. Edit here, not in a migration.
-- lead_id was text until 0040_uuid_ids.sql.
DROP FUNCTION IF EXISTS lf_envelope(bigint, uuid, text, text, timestamptz, integer, jsonb);
CREATE OR REPLACE FUNCTION lf_envelope(seq bigint, event_id uuid, type text, lead_id uuid,
                            at timestamptz, version integer, payload jsonb) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('v', version, 'seq', seq, 'event_id', event_id,
                                   'type', type, 'lead_id', lead_id,
                                   'at', lf_rfc3339(at), 'payload', payload) $$;
