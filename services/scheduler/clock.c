/* clock.c - when a deadline falls: the first-contact SLA and the keep-alive durations.
 *
 * Every such deadline is computed here, once, when its timer is set, and stored with
 * the timer (and on the lead): a report later judges against the deadline that applied,
 * whatever the configuration says by then, and PostgreSQL never has to know a business
 * calendar. A duration written in business time ("10 business days") and the
 * first-contact SLA count in the lead's team calendar (lf_bizcal, config/routing.json);
 * "clock": "wall" in config/keepalive.json, or a duration written without "business",
 * counts wall-clock time. */
#include "clocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/bizcal.h"
#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

static const lf_bizcal_t *s_cal(const lf_timers_t *t, const char *team) {
    if (!t->teams || (t->ka && lf_keepalive_clock(t->ka) == LF_CLOCK_WALL))
        return NULL;
    return lf_teams_get(t->teams, team)->calendar;
}

int64_t lf_clock_after(const lf_timers_t *t, const char *team, int64_t at,
                       const lf_duration_t *d) {
    if (!d)
        return -1;
    const lf_bizcal_t *cal = d->business ? s_cal(t, team) : NULL;
    if (!cal)
        return at + d->secs;
    int64_t r = d->days ? lf_bizcal_add_days(cal, at, d->days)
                        : lf_bizcal_add_seconds(cal, at, d->secs);
    return r < 0 ? at + d->secs : r; /* a calendar without working time */
}

static long s_sla(const json_t *sla, const char *key, const char *grade, long def) {
    const json_t *v = json_object_get(json_object_get(sla, key), grade);
    return json_is_integer(v) ? (long)json_integer_value(v) : def;
}

int lf_clock_sla_arm(lf_timers_t *t, lf_db_t *db, const json_t *env, const char *grade,
                     int step) {
    const char *lead_id = lf_event_lead(env);
    int ms = 0;
    int64_t at = lf_clock_parse(json_string_value(json_object_get(env, "at")), &ms);
    if (at < 0) { /* an envelope without its time: count from now */
        int64_t now = lf_now_ms();
        at = now / 1000;
        ms = (int)(now % 1000);
    }
    const char *p[] = {lead_id};
    PGresult *res = lf_db_exec_prepared(db, "lf_sla_team",
                                        "SELECT team FROM leads WHERE id = $1", 1, p);
    if (!res)
        return -1;
    char team[128] = "";
    int has_team = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    if (has_team)
        lf_strlcpy(team, PQgetvalue(res, 0, 0), sizeof team);
    PQclear(res);
    const lf_bizcal_t *cal = s_cal(t, has_team ? team : NULL);
    long secs[3] = {s_sla(t->sla, "first_contact_seconds", grade, 3600),
                    s_sla(t->sla, "escalate_after_seconds", grade, 3600),
                    s_sla(t->sla, "reassign_after_seconds", grade, -1)};
    char due[3][40], step_s[16];
    const char *due_p[3] = {NULL, NULL, NULL};
    int64_t d = at;
    for (int i = 0; i < 3 && secs[i] >= 0; i++) {
        int64_t next = cal ? lf_bizcal_add_seconds(cal, d, secs[i]) : -1;
        d = next >= 0 ? next : d + secs[i];
        /* Wall-clock deadlines keep the assignment's milliseconds. */
        lf_rfc3339(d * 1000 + (cal ? 0 : ms), due[i], sizeof due[i]);
        due_p[i] = due[i];
    }
    snprintf(step_s, sizeof step_s, "%d", step);
    const char *q[] = {lead_id, step_s, due_p[0], due_p[1], due_p[2]};
    res = lf_db_exec_prepared(
        db, "lf_sla_arm",
        "WITH l AS (UPDATE leads SET first_contact_due_at = $3::timestamptz"
        "  WHERE id = $1 RETURNING id),"
        " n AS (INSERT INTO timers (lead_id, kind, step, due_at, data)"
        "  SELECT l.id, 'sla_first_contact', $2::int, $3::timestamptz,"
        "   jsonb_strip_nulls(jsonb_build_object('escalate_at', $4::timestamptz,"
        "    'reassign_at', $5::timestamptz)) FROM l"
        "  ON CONFLICT DO NOTHING RETURNING id, due_at)"
        " SELECT coalesce(string_agg((extract(epoch FROM due_at) * 1000)::bigint"
        "  || ' ' || id, ' '), '') FROM n",
        5, q);
    if (!res)
        return -1;
    char *pairs = lf_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    lf_timers_index_after_commit(t, pairs);
    free(pairs);
    return 0;
}

int64_t lf_clock_parse(const char *s, int *ms) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int frac = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    const char *p = s + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
        while (digits > 0 && digits < 3)
            frac *= 10, digits++;
    }
    if (strcmp(p, "Z"))
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (ms)
        *ms = frac;
    return (int64_t)timegm(&tm);
}
