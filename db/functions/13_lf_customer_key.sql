-- lf_customer_key: repeatable; first created by 0004_pipeline.sql. Edit here, not in a migration.
-- The customer identity of a lead: the company name (case and spacing folded), else
-- the corporate e-mail domain, else the contact itself (a person buying alone).
CREATE OR REPLACE FUNCTION lf_customer_key(company text, email text, phone text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN nullif(btrim(company), '') IS NOT NULL
            THEN 'company:' || lower(regexp_replace(btrim(company), '\s+', ' ', 'g'))
        WHEN lf_email_domain(email) IS NOT NULL THEN 'domain:' || lf_email_domain(email)
        WHEN email IS NOT NULL THEN 'contact:' || lower(email)
        ELSE 'contact:' || phone END $$;
