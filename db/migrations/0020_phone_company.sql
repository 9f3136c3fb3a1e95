-- 0020_phone_company: what libphonenumber says about a lead's phone, the flags a channel
-- may set on it, and the company key used to recognise known customers (issue 15).
--
-- phone_type and phone_country come from intake (common/phone.c); flags is a JSON list
-- ("phone_unverified" when a channel keeps a number that is not valid); company_key is
-- computed by intake (common/company.c, ICU for traditional Chinese), '' when a company
-- has no key. The company as typed stays in `company`. Existing leads get their
-- company_key from leadflow-migrate, which computes it in C after the migrations.
-- Adding columns with constant defaults does not rewrite the table (PostgreSQL 11+).
ALTER TABLE leads
    ADD COLUMN phone_type    text
        CHECK (phone_type IN ('mobile', 'fixed_line', 'toll_free', 'voip', 'unknown')),
    ADD COLUMN phone_country text,
    ADD COLUMN flags         jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN company_key   text;
