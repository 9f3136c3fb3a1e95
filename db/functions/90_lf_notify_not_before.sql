-- lf_notify_not_before: repeatable (notifications, 0030_notify.sql).
-- Quiet hours: the earliest moment at or after t inside the rep's working hours
-- (work_hours {"mon": ["09:00", "18:00"], ...} in the rep's time zone, an IANA name or
-- an offset such as +08:00; a window whose end is before its start runs past
-- midnight). A rep without work_hours is never quiet: t itself.
CREATE OR REPLACE FUNCTION lf_notify_not_before(tz text, wh jsonb, t timestamptz)
    RETURNS timestamptz
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    m text[];
    off interval;
    loc timestamp;
    best timestamp;
    d date;
    w jsonb;
    ws timestamp;
    we timestamp;
BEGIN
    IF wh IS NULL OR jsonb_typeof(wh) <> 'object' OR wh = '{}'::jsonb THEN
        RETURN t;
    END IF;
    m := regexp_match(coalesce(tz, ''), '^(?:UTC)?([+-])([0-9]{1,2}):?([0-9]{2})?$');
    IF m IS NOT NULL THEN
        off := make_interval(hours => m[2]::int, mins => coalesce(m[3], '0')::int);
        IF m[1] = '-' THEN off := -off; END IF;
    ELSIF tz IS NULL OR tz IN ('UTC', 'Z', 'GMT', 'Etc/UTC') THEN
        off := interval '0';
    END IF;
    BEGIN
        loc := CASE WHEN off IS NOT NULL THEN (t AT TIME ZONE 'UTC') + off
                    ELSE t AT TIME ZONE tz END;
    EXCEPTION WHEN others THEN
        RETURN t; -- a zone PostgreSQL does not know: never hold a message back
    END;
    FOR i IN -1..7 LOOP
        d := loc::date + i;
        w := wh -> (ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])
                   [extract(dow FROM d)::int + 1];
        CONTINUE WHEN w IS NULL OR jsonb_typeof(w) <> 'array'
                      OR jsonb_array_length(w) <> 2;
        ws := d + (w ->> 0)::interval;
        we := d + (w ->> 1)::interval;
        IF we <= ws THEN
            we := we + interval '1 day';
        END IF;
        IF loc >= ws AND loc < we THEN
            RETURN t;
        END IF;
        IF ws > loc AND (best IS NULL OR ws < best) THEN
            best := ws;
        END IF;
    END LOOP;
    IF best IS NULL THEN
        RETURN t;
    END IF;
    RETURN CASE WHEN off IS NOT NULL THEN (best - off) AT TIME ZONE 'UTC'
                ELSE best AT TIME ZONE tz END;
END $$;

-- The earliest moment at or after t inside open (a team's working time from its
-- business calendar, as the scheduler wrote it to notify_teams.open_hours). NULL open,
-- or nothing open ahead in it: t itself (a message is never held back for good).
CREATE OR REPLACE FUNCTION lf_notify_next_open(open tstzmultirange, t timestamptz)
    RETURNS timestamptz
    LANGUAGE sql STABLE
    AS $$ SELECT CASE WHEN open IS NULL OR open @> t THEN t
                      ELSE coalesce((SELECT min(lower(r)) FROM unnest(open) r
                                      WHERE lower(r) > t), t) END $$;
