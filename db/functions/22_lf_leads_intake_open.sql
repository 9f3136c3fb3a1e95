-- lf_leads_intake_open: repeatable; first created by 0043_intake_open_contacts.sql. Edit here, not in a migration.
-- A lead that is won or lost no longer holds its phone and e-mail for intake: the next
-- inquiry from that person is a new lead (0043 explains the mark). A reopened deal stays
-- unmarked. The WHEN clause keeps every other update of leads free of this trigger.
-- The mark becomes false, not NULL: a lead intake made keeps intake_open set (true while
-- it holds its phone and e-mail, false after), which is how the API's timeline knows to
-- show the 'created' entry that intake no longer stores (21_lf_intake_commit.sql).
-- Every index and lookup tests `intake_open` or `intake_open IS NOT TRUE`, for which
-- false and NULL are the same. Leads closed before 2026-12-02 were set to NULL; they
-- have their stored 'created' entry.
CREATE OR REPLACE FUNCTION lf_leads_intake_open() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.intake_open := false;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS leads_intake_open ON leads;
CREATE TRIGGER leads_intake_open BEFORE UPDATE OF stage ON leads
    FOR EACH ROW WHEN (NEW.intake_open AND NEW.stage IN ('won', 'lost'))
    EXECUTE FUNCTION lf_leads_intake_open();
