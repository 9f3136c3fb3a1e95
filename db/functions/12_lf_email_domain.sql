-- lf_email_domain: repeatable; first created by 0008_inline_email_domain.sql. Edit here, not in a migration.
CREATE OR REPLACE FUNCTION lf_email_domain(email text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN lower(split_part(email, '@', 2)) IN ('', 'qq.com', '163.com',
        '126.com', 'sina.com', 'sohu.com', 'yeah.net', 'foxmail.com', 'aliyun.com',
        '139.com', 'gmail.com', 'outlook.com', 'hotmail.com', 'yahoo.com', 'icloud.com',
        'live.com') THEN NULL ELSE lower(split_part(email, '@', 2)) END $$;
