-- lf_reps_touch: repeatable; first created by 0003_router.sql. Edit here, not in a migration.
CREATE OR REPLACE FUNCTION lf_reps_touch() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    IF (NEW.name, NEW.team, NEW.manager, NEW.skills, NEW.regions, NEW.grades,
        NEW.capacity, NEW.weight, NEW.active, NEW.timezone, NEW.work_hours,
        NEW.out_of_office, NEW.ignore_shift)
       IS DISTINCT FROM
       (OLD.name, OLD.team, OLD.manager, OLD.skills, OLD.regions, OLD.grades,
        OLD.capacity, OLD.weight, OLD.active, OLD.timezone, OLD.work_hours,
        OLD.out_of_office, OLD.ignore_shift) THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END $$;
