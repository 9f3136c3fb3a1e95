/* follow_up.c - the follow-up clock (跟进推进): an activity's next_action_at reminds the
 * owner at that time, and a follow-up that stays overdue goes up to the owner's manager.
 *
 * When intake logs an activity with a next_action_at, the scheduler sets two timers in
 * the consumer's transaction, keyed by the activity's number on the lead (step = seq,
 * so a redelivered event sets nothing twice): 'follow_up' at next_action_at (the
 * instant the rep chose: it reminds the owner, lf_fire_timers) and
 * 'follow_up_overdue' follow_up.escalate_after later (config/keepalive.json), counted
 * in the lead's team business calendar unless the setting says wall-clock. Both
 * deadlines are computed here, once, and stored on the timers (the reminder's data
 * carries escalate_at), so a report judges against the deadline that applied when the
 * follow-up was set, in the lead's team, whatever the configuration or the owner's team
 * says later. The overdue timer remembers whose follow-up it is (rep_id: the owner when
 * it was set), the activity types that count as doing it (stale.restart_on, a note
 * does not) and the team's manager (the fallback recipient when the owner has no
 * manager); firing is in PostgreSQL (lf_keepalive_fire_follow_up,
 * 45_lf_keepalive_follow_up.sql). */
#include "clocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

/* The escalation data of the overdue timer: {"done_by": [...], "team_manager": "..."}.
 * Caller frees. */
static char *s_overdue_data(const lf_timers_t *t, const char *team) {
    json_t *d = json_object(), *types = json_array();
    const char *const *rt = t->ka ? lf_keepalive_restart_types(t->ka) : NULL;
    for (size_t i = 0; rt && rt[i]; i++)
        json_array_append_new(types, json_string(rt[i]));
    json_object_set_new(d, "done_by", types);
    const char *mgr = t->teams ? lf_teams_get(t->teams, team)->manager : NULL;
    if (mgr)
        json_object_set_new(d, "team_manager", json_string(mgr));
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    return s;
}

int lf_follow_up_on_event(lf_timers_t *t, lf_db_t *db, const json_t *env) {
    const char *type = lf_event_type(env), *lead_id = lf_event_lead(env);
    if (!type || strcmp(type, "activity.logged") || !lead_id)
        return 0;
    const json_t *pl = lf_event_payload(env);
    const char *due = json_string_value(json_object_get(pl, "next_action_at"));
    json_int_t seq = json_integer_value(json_object_get(pl, "seq"));
    if (!due || seq <= 0 || seq > 2000000000)
        return 0;
    /* Intake only ever writes RFC 3339 here; other text is refused before it reaches
     * the cast below, whose error would quote it in PostgreSQL's log (the event is
     * parked: lf/consumer.h). */
    if (!lf_rfc3339_shape(due))
        return -1;
    char step[24];
    snprintf(step, sizeof step, "%lld", (long long)seq);
    /* The lead's team and grade, and the follow-up's time in ms since the epoch
     * (next_action_at may carry any offset). */
    const char *p[] = {lead_id, due};
    PGresult *res =
        lf_db_exec(db,
                   "SELECT team, grade,"
                   " floor(extract(epoch FROM $2::timestamptz) * 1000)::bigint"
                   " FROM leads WHERE id = $1 AND closed_at IS NULL",
                   2, p);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) { /* closed (or unknown): no follow-up any more */
        PQclear(res);
        return 0;
    }
    char team[128] = "", grade[8] = "";
    int has_team = !PQgetisnull(res, 0, 0);
    if (has_team)
        lf_strlcpy(team, PQgetvalue(res, 0, 0), sizeof team);
    if (!PQgetisnull(res, 0, 1))
        lf_strlcpy(grade, PQgetvalue(res, 0, 1), sizeof grade);
    int64_t due_ms = atoll(PQgetvalue(res, 0, 2));
    PQclear(res);
    const lf_duration_t *esc =
        t->ka ? lf_keepalive_follow_up_escalation(t->ka, grade[0] ? grade : NULL) : NULL;
    char esc_at[40];
    const char *esc_p = NULL;
    char *data = NULL;
    if (esc) {
        int64_t secs = due_ms / 1000 - (due_ms % 1000 < 0);
        int64_t ms = due_ms - secs * 1000;
        int64_t e = lf_clock_after(t, has_team ? team : NULL, secs, esc);
        /* Business deadlines fall on the calendar's whole seconds; wall-clock ones keep
         * the follow-up's milliseconds. */
        int business = e != secs + esc->secs;
        lf_rfc3339(e * 1000 + (business ? 0 : ms), esc_at, sizeof esc_at);
        esc_p = esc_at;
        data = s_overdue_data(t, has_team ? team : NULL);
    }
    const char *q[] = {lead_id, step, due, esc_p, data};
    res = lf_db_exec(
        db,
        "WITH l AS (SELECT id, owner FROM leads WHERE id = $1),"
        " n AS (INSERT INTO timers (lead_id, kind, step, due_at, rep_id, data)"
        "  SELECT l.id, 'follow_up', $2::int, $3::timestamptz, l.owner,"
        "   jsonb_strip_nulls(jsonb_build_object('escalate_at', $4::timestamptz)) FROM l"
        "  UNION ALL"
        "  SELECT l.id, 'follow_up_overdue', $2::int, $4::timestamptz, l.owner, $5::jsonb"
        "   FROM l WHERE $4::timestamptz IS NOT NULL AND l.owner IS NOT NULL"
        "  ON CONFLICT DO NOTHING RETURNING id, due_at)"
        " SELECT coalesce(string_agg((extract(epoch FROM due_at) * 1000)::bigint"
        "  || ' ' || id, ' '), '') FROM n",
        5, q);
    free(data);
    if (!res)
        return -1;
    lf_timers_index_after_commit(t, PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}
