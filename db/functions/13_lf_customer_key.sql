-- lf_customer_key: repeatable; first created by 0004_pipeline.sql. Edit here, not in a migration.
-- The customer identity of a lead: its company key (leads.company_key, computed by intake:
-- full/half width, case, punctuation, legal forms, places and branches folded, traditional
-- Chinese simplified), else the corporate e-mail domain, else the contact itself (a person
-- buying alone). `company` is the company KEY, never the company as typed (the parameter
-- keeps its old name: PostgreSQL cannot rename it in place).
CREATE OR REPLACE FUNCTION lf_customer_key(company text, email text, phone text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN nullif(company, '') IS NOT NULL THEN 'company:' || company
        WHEN lf_email_domain(email) IS NOT NULL THEN 'domain:' || lf_email_domain(email)
        WHEN email IS NOT NULL THEN 'contact:' || lower(email)
        ELSE 'contact:' || phone END $$;
