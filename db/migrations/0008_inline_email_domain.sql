-- 0008_inline_email_domain: lf_email_domain() without a FROM clause.
--
-- Why: PostgreSQL inlines a LANGUAGE sql function into the calling query only when
-- its body is a bare SELECT of one expression. The 0004 version selected FROM a
-- sub-select, so every call went through the SQL-function executor, which parses
-- and plans the body again for each statement that calls it. perf on the intake
-- benchmark (bench/intake.sh) showed that path (fmgr_sql, base_yyparse) at about
-- 14% of PostgreSQL's CPU, through lf_customer_key() in the group-commit insert.
-- Same answers as before: NULL for no domain, an empty one or a webmail domain.

CREATE OR REPLACE FUNCTION lf_email_domain(email text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN lower(split_part(email, '@', 2)) IN ('', 'qq.com', '163.com',
        '126.com', 'sina.com', 'sohu.com', 'yeah.net', 'foxmail.com', 'aliyun.com',
        '139.com', 'gmail.com', 'outlook.com', 'hotmail.com', 'yahoo.com', 'icloud.com',
        'live.com') THEN NULL ELSE lower(split_part(email, '@', 2)) END $$;

-- The same for the event envelope built for every outbox row: the bodies call
-- to_char() and json_build_object(), which PostgreSQL rates STABLE, so functions
-- declared IMMUTABLE around them could never be inlined. Declared for what they are,
-- they are expanded into the insert's own plan.
ALTER FUNCTION lf_rfc3339(timestamptz) STABLE;
ALTER FUNCTION lf_envelope(bigint, uuid, text, text, timestamptz, integer, jsonb) STABLE;
