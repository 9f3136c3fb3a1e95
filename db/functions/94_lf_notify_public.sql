-- lf_notify_public / lf_notify_mask: repeatable (notifications, 0030_notify.sql).
-- Destinations as the API shows them: secrets and robot URLs are write-only, so a URL
-- keeps its scheme, host and path up to its last '/' or '=', then "****" and the key's
-- last four characters; a secret shows as "****". services/intake/api_notifications.c
-- applies the same rule to recognise a masked value sent back unchanged.
CREATE OR REPLACE FUNCTION lf_notify_mask(url text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN url IS NULL THEN NULL
                      WHEN url ~ '[=/][^=/]{5,}$'
                        THEN regexp_replace(url, '([=/])[^=/]*([^=/]{4})$', '\1****\2')
                      ELSE regexp_replace(url, '([=/])[^=/]*$', '\1****') END $$;

CREATE OR REPLACE FUNCTION lf_notify_public(notify jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT coalesce(jsonb_agg(
              CASE WHEN d ? 'url' THEN d || jsonb_build_object('url', lf_notify_mask(d ->> 'url'))
                   ELSE d END
              || CASE WHEN d ? 'secret' THEN '{"secret": "****"}'::jsonb ELSE '{}'::jsonb END
              ORDER BY o), '[]'::jsonb)
            FROM jsonb_array_elements(CASE WHEN jsonb_typeof(notify) = 'array' THEN notify
                                           ELSE '[]'::jsonb END) WITH ORDINALITY AS x(d, o) $$;
