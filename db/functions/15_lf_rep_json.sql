-- lf_rep_json: repeatable; first created by 0001_init.sql. Edit here, not in a migration.
-- A rep as the assignment pool reads it (nulls left out: absent means "any").
CREATE OR REPLACE FUNCTION lf_rep_json(r reps) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT jsonb_strip_nulls(jsonb_build_object(
        'id', r.id, 'name', r.name, 'team', r.team, 'manager', r.manager,
        'skills', to_jsonb(r.skills), 'regions', to_jsonb(r.regions),
        'grades', to_jsonb(r.grades), 'capacity', r.capacity, 'weight', r.weight,
        'active', r.active, 'timezone', r.timezone, 'work_hours', r.work_hours,
        'out_of_office', r.out_of_office, 'ignore_shift', r.ignore_shift,
        'open_count', r.open_count, 'assigned_total', r.assigned_total)) $$;
