-- lf_batch_keys: repeatable; first created by 0002_intake.sql. Edit here, not in a migration.
-- Every value that can make two submissions "the same", per batch position (1-based).
CREATE OR REPLACE FUNCTION lf_batch_keys(batch jsonb) RETURNS TABLE (pos bigint, c text)
LANGUAGE sql IMMUTABLE AS $$
    SELECT t.o, v.c FROM jsonb_array_elements(batch) WITH ORDINALITY AS t(x, o),
      LATERAL (VALUES ('p:' || (t.x ->> 'phone')), ('e:' || (t.x ->> 'email')),
                      ('i:' || (t.x ->> 'idempotency_key')),
                      ('x:' || (t.x ->> 'channel') || ':' || (t.x ->> 'external_id')),
                      ('c:' || (t.x -> 'call' ->> 'call_sid'))) AS v(c)
     WHERE v.c IS NOT NULL
$$;
