-- 0010_lz4: the large JSON columns are compressed with LZ4 instead of pglz.
--
-- Why: every routing decision stores its candidate list (a few KB with 200 reps)
-- twice (assignments and the timeline), and PostgreSQL compresses any value over
-- ~2 KB. Measured on this project's benchmark data (a 10 KB ledger document, 2,000
-- inserts, psql \timing): pglz 215 us per row, lz4 122 us. LZ4 is in every PostgreSQL
-- 15 build we target (Debian's packages, the postgres image); where a server lacks it
-- the columns keep pglz and the migration says so. Existing values are not rewritten.
DO $$
BEGIN
    ALTER TABLE assignments ALTER COLUMN candidates SET COMPRESSION lz4;
    ALTER TABLE lead_events ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE routing_ledger ALTER COLUMN state SET COMPRESSION lz4;
    ALTER TABLE leads ALTER COLUMN raw SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available on this server; large JSON stays pglz-compressed';
END $$;
