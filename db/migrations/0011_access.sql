-- 0011_access: every API key has one scope (intake, rep, manager, admin), a last-used
-- time and who made it. Today's keys map without loss: admin keys become admin, keys
-- that carry a rep become rep, the others (channel keys) intake. is_admin stays, kept
-- equal to scope = 'admin' by lf_api_keys_scope (db/functions/70_access.sql), so
-- scripts that insert keys the old way still get the right scope.

ALTER TABLE api_keys
    ADD COLUMN scope text,
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN created_by text;

UPDATE api_keys SET scope = CASE WHEN is_admin THEN 'admin'
                                 WHEN rep_id IS NOT NULL THEN 'rep'
                                 ELSE 'intake' END;

ALTER TABLE api_keys
    ALTER COLUMN scope SET NOT NULL,
    ADD CONSTRAINT api_keys_scope CHECK (scope IN ('intake', 'rep', 'manager', 'admin')),
    ADD CONSTRAINT api_keys_scope_rep CHECK (
        (scope IN ('rep', 'manager')) = (rep_id IS NOT NULL));

CREATE INDEX api_keys_rep ON api_keys (rep_id) WHERE rep_id IS NOT NULL;
