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

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/* The three deadlines of the first-contact SLA of `env` (counted from its "at", else
 * from now) for a lead of `team` (NULL: the default calendar), as RFC 3339 texts in
 * due; due_p[i] points at due[i], or is NULL when the grade has no such step. */
static void s_sla_dues(const lf_timers_t *t, const char *team, const json_t *env,
                       const char *grade, char due[3][40], const char *due_p[3]) {
    int ms = 0;
    int64_t at = lf_clock_parse(json_string_value(json_object_get(env, "at")), &ms);
    if (at < 0) { /* an envelope without its time: count from now */
        int64_t now = lf_now_ms();
        at = now / 1000;
        ms = (int)(now % 1000);
    }
    const lf_bizcal_t *cal = s_cal(t, team);
    long secs[3] = {s_sla(t->sla, "first_contact_seconds", grade, 3600),
                    s_sla(t->sla, "escalate_after_seconds", grade, 3600),
                    s_sla(t->sla, "reassign_after_seconds", grade, -1)};
    due_p[0] = due_p[1] = due_p[2] = NULL;
    int64_t d = at;
    for (int i = 0; i < 3 && secs[i] >= 0; i++) {
        int64_t next = cal ? lf_bizcal_add_seconds(cal, d, secs[i]) : -1;
        d = next >= 0 ? next : d + secs[i];
        /* Wall-clock deadlines keep the assignment's milliseconds. */
        lf_rfc3339(d * 1000 + (cal ? 0 : ms), due[i], sizeof due[i]);
        due_p[i] = due[i];
    }
}

/* The deadline of the current owner's round goes into lead_first_contact (0047), one
 * narrow row per lead replaced at every clock, which the SLA reports read
 * (v_lead_outcomes). It used to be leads.first_contact_due_at: a second version of the
 * wide lead row per assignment, in the whole stack mostly a non-HOT update with an
 * entry in each of its indexes, the largest part of the scheduler's PostgreSQL CPU per
 * lead (docs/benchmarks.md). */
int lf_clock_sla_arm(lf_timers_t *t, lf_db_t *db, const json_t *env, const char *grade,
                     int step) {
    const char *lead_id = lf_event_lead(env);
    const char *p[] = {lead_id};
    PGresult *res = lf_db_exec_prepared(db, "lf_sla_team",
                                        "SELECT team FROM leads WHERE id = $1", 1, p);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) { /* no such lead: nothing to arm */
        PQclear(res);
        return 0;
    }
    char team[128] = "";
    int has_team = !PQgetisnull(res, 0, 0);
    if (has_team)
        lf_strlcpy(team, PQgetvalue(res, 0, 0), sizeof team);
    PQclear(res);
    char due[3][40], step_s[16];
    const char *due_p[3];
    s_sla_dues(t, has_team ? team : NULL, env, grade, due, due_p);
    snprintf(step_s, sizeof step_s, "%d", step);
    const char *q[] = {lead_id, step_s, due_p[0], due_p[1], due_p[2]};
    res = lf_db_exec_prepared(
        db, "lf_sla_arm",
        "WITH l AS (INSERT INTO lead_first_contact (lead_id, due_at)"
        "  VALUES ($1, $3::timestamptz)"
        "  ON CONFLICT (lead_id) DO UPDATE SET due_at = EXCLUDED.due_at),"
        " n AS (INSERT INTO timers (lead_id, kind, step, due_at, data)"
        "  VALUES ($1, 'sla_first_contact', $2::int, $3::timestamptz,"
        "   jsonb_strip_nulls(jsonb_build_object('escalate_at', $4::timestamptz,"
        "    'reassign_at', $5::timestamptz)))"
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

/* A growing text, for the array literals of lf_clock_sla_arm_batch. */
typedef struct {
    char *s;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const char *text) {
    size_t n = strlen(text);
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = lf_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, text, n + 1);
    b->len += n;
}

/* Appends one element (NULL: SQL NULL) to an array literal being built. The values
 * are uuids, RFC 3339 times and integers: nothing that needs quoting. */
static void s_elem(s_buf_t *b, const char *v, int first) {
    s_put(b, first ? "{" : ",");
    s_put(b, v ? v : "NULL");
}

static int s_cmp_str(const void *a, const void *b) {
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* The statement of lf_clock_sla_arm_batch: the per-event statement of lf_clock_sla_arm
 * over arrays (one row per event of a lead that exists, n its position). A lead that
 * comes twice keeps the deadline of its last event and the timer of its first one per
 * step, as events applied one by one leave them. */
static const char *const s_arm_batch_sql =
    "WITH u AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[],"
    "  $4::timestamptz[], $5::timestamptz[]) WITH ORDINALITY"
    "  AS u(lead_id, step, due, esc, rea, n)),"
    " l AS (INSERT INTO lead_first_contact (lead_id, due_at)"
    "  SELECT DISTINCT ON (lead_id) lead_id, due FROM u ORDER BY lead_id, n DESC"
    "  ON CONFLICT (lead_id) DO UPDATE SET due_at = EXCLUDED.due_at),"
    " x AS (INSERT INTO timers (lead_id, kind, step, due_at, data)"
    "  SELECT u.lead_id, 'sla_first_contact', u.step, u.due,"
    "   jsonb_strip_nulls(jsonb_build_object('escalate_at', u.esc,"
    "    'reassign_at', u.rea)) FROM u"
    "  ORDER BY u.n ON CONFLICT DO NOTHING RETURNING id, due_at)"
    " SELECT coalesce(string_agg((extract(epoch FROM due_at) * 1000)::bigint"
    "  || ' ' || id, ' '), '') FROM x";

int lf_clock_sla_arm_batch(lf_timers_t *t, lf_db_t *db, const json_t *const *envs,
                           const char *const *grades, const int *steps, size_t n,
                           unsigned char *idle) {
    if (n == 0)
        return 0;
    int rc = -1;
    size_t armed = 0;
    s_buf_t st = {0}, due[3] = {{0}, {0}, {0}}, arm = {0};
    /* The teams, for the calendars, and what the stale clock reads: as
     * lf_timers_on_begin read them when it locked the batch's leads, all at once in id
     * order (docs/reliability.md), before anything of the batch wrote them. */
    const PGresult *locked = t->locked;
    PGresult *res = NULL;
    int rows = locked ? PQntuples(locked) : 0;
    /* Row r's id and its row number, side by side, sorted by id for bsearch. */
    const char **found = lf_calloc((size_t)rows * 2 + 2, sizeof *found);
    for (int r = 0; r < rows; r++) {
        found[2 * r] = PQgetvalue(locked, r, 0);
        found[2 * r + 1] = (const char *)(intptr_t)r;
    }
    for (size_t i = 0; i < n; i++) {
        const char *lead_id = lf_event_lead(envs[i]);
        if (!lf_uuid_valid(lead_id)) {
            /* The lock left it out: this batch fails, and the consumer applies its
             * events one by one. */
            lf_strlcpy(db->errstr, "lead id is not a uuid", sizeof db->errstr);
            free(found);
            goto out;
        }
        const char **hit =
            bsearch(&lead_id, found, (size_t)rows, 2 * sizeof *found, s_cmp_str);
        int r = hit ? (int)(intptr_t)hit[1] : -1;
        const char *team =
            r >= 0 && !PQgetisnull(locked, r, 1) ? PQgetvalue(locked, r, 1) : NULL;
        if (idle) {
            /* What lf_stale_on_event would find: no lead, or a clock that neither runs
             * (stale_since NULL) nor starts (no threshold for an open, owned deal in
             * this stage and grade) - nothing to do. */
            int owned = r >= 0 && PQgetvalue(locked, r, 4)[0] == 't';
            idle[i] = r < 0 || !t->ka ||
                      (PQgetvalue(locked, r, 5)[0] == 't' &&
                       !(owned && lf_keepalive_stale(t->ka, PQgetvalue(locked, r, 2),
                                                     PQgetisnull(locked, r, 3)
                                                         ? NULL
                                                         : PQgetvalue(locked, r, 3))));
        }
        if (r < 0)
            continue; /* no such lead: nothing to arm, as one by one */
        char d[3][40], step_s[16];
        const char *d_p[3];
        s_sla_dues(t, team, envs[i], grades[i], d, d_p);
        snprintf(step_s, sizeof step_s, "%d", steps[i]);
        s_elem(&arm, lead_id, armed == 0);
        s_elem(&st, step_s, armed == 0);
        for (int k = 0; k < 3; k++)
            s_elem(&due[k], d_p[k], armed == 0);
        armed++;
    }
    free(found);
    if (armed == 0) {
        rc = 0;
        goto out;
    }
    s_put(&arm, "}");
    s_put(&st, "}");
    for (int k = 0; k < 3; k++)
        s_put(&due[k], "}");
    const char *q[] = {arm.s, st.s, due[0].s, due[1].s, due[2].s};
    res = lf_db_exec_prepared(db, "lf_clock_sla_arm_batch", s_arm_batch_sql, 5, q);
    if (!res)
        goto out;
    lf_timers_index_after_commit(t, PQgetvalue(res, 0, 0));
    PQclear(res);
    rc = 0;
out:
    free(arm.s);
    free(st.s);
    for (int k = 0; k < 3; k++)
        free(due[k].s);
    return rc;
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
