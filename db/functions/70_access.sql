-- Access (issue "Access and privacy"): who reaches which reps and leads, and the
-- triggers that keep API keys consistent and tell intake at once when a key or a
-- rep's active flag changes. Repeatable: edit here, not in a migration.

-- The reps a manager reaches through the reps.manager chain, at any depth (a
-- regional director reaches the teams of the managers under it). The manager itself
-- is not included. UNION (not UNION ALL) ends the recursion should a chain ever
-- loop.
CREATE OR REPLACE FUNCTION lf_reps_reachable(manager text) RETURNS SETOF text
    LANGUAGE sql STABLE AS $$
    WITH RECURSIVE r(id) AS (
        SELECT id FROM reps WHERE reps.manager = lf_reps_reachable.manager
        UNION
        SELECT c.id FROM reps c JOIN r ON c.manager = r.id)
    SELECT id FROM r WHERE id <> lf_reps_reachable.manager $$;

-- Whether a caller (scope 'admin' | 'manager' | 'rep' | 'intake' | 'none', and the rep
-- its key speaks for) reaches rep `rep`: the admin every rep, a rep itself, a manager
-- itself and the reps it reaches.
CREATE OR REPLACE FUNCTION lf_caller_reaches(scope text, caller text, rep text)
    RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT CASE scope
        WHEN 'admin' THEN true
        WHEN 'rep' THEN rep IS NOT NULL AND rep = caller
        WHEN 'manager' THEN rep IS NOT NULL AND caller IS NOT NULL AND
            (rep = caller OR rep IN (SELECT lf_reps_reachable(caller)))
        ELSE false END $$;

-- Whether a caller may see a lead owned by `owner` (NULL: not assigned). Unassigned
-- leads are the admin's until the pool says otherwise.
CREATE OR REPLACE FUNCTION lf_caller_sees(scope text, caller text, owner text)
    RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT scope = 'admin' OR (owner IS NOT NULL AND lf_caller_reaches(scope, caller, owner)) $$;

-- api_keys written the old way (no scope) get the scope their columns meant, and
-- is_admin always equals scope = 'admin'.
CREATE OR REPLACE FUNCTION lf_api_keys_scope() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.scope IS NULL THEN
        NEW.scope := CASE WHEN NEW.is_admin THEN 'admin'
                          WHEN NEW.rep_id IS NOT NULL THEN 'rep'
                          ELSE 'intake' END;
    END IF;
    NEW.is_admin := NEW.scope = 'admin';
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS api_keys_scope ON api_keys;
CREATE TRIGGER api_keys_scope BEFORE INSERT OR UPDATE OF scope, is_admin, rep_id
    ON api_keys FOR EACH ROW EXECUTE FUNCTION lf_api_keys_scope();

-- Tells every intake that its key cache is stale: a key made, revoked or changed, a
-- rep deactivated or reactivated (a rep's keys work only while it is active).
-- last_used_at is left out on purpose: intake writes it every few seconds.
CREATE OR REPLACE FUNCTION lf_keys_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('leadflow_keys', '');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS api_keys_changed ON api_keys;
CREATE TRIGGER api_keys_changed
    AFTER INSERT OR DELETE OR UPDATE OF key_hash, scope, channel, rep_id, is_admin,
        allowed_origins, rate_per_minute, revoked_at
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION lf_keys_changed();

DROP TRIGGER IF EXISTS reps_active_changed ON reps;
CREATE TRIGGER reps_active_changed AFTER UPDATE OF active ON reps
    FOR EACH STATEMENT EXECUTE FUNCTION lf_keys_changed();
