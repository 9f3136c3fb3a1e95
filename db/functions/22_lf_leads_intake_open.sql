-- lf_leads_intake_open: repeatable; first created by 0043_intake_open_contacts.sql. Edit here, not in a migration.
-- A lead that is won or lost no longer holds its phone and e-mail for intake: the next
-- inquiry from that person is a new lead (0043 explains the mark). A reopened deal stays
-- unmarked. The WHEN clause keeps every other update of leads free of this trigger.
CREATE OR REPLACE FUNCTION lf_leads_intake_open() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.intake_open := NULL;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS leads_intake_open ON leads;
CREATE TRIGGER leads_intake_open BEFORE UPDATE OF stage ON leads
    FOR EACH ROW WHEN (NEW.intake_open AND NEW.stage IN ('won', 'lost'))
    EXECUTE FUNCTION lf_leads_intake_open();
