/* stale.c - the stale-deal clock (停滞商机): arming, restarting and stopping it from
 * the events that say a deal moved.
 *
 * A deal in a watched stage (config/keepalive.json stale.thresholds) has one running
 * clock, started by the last of: its assignment to its owner, its last stage move, its
 * last activity of a type that restarts the clock (a call or a visit does, a note need
 * not). Arming computes the whole ladder at once, in the team's business time: warn the
 * owner at the threshold, the manager warn_manager_after later, recycle recycle_after
 * after that. Three timers are written with the new generation of the lead's clock
 * (leads.stale_gen) in one statement, lf_keepalive_arm(); a restart bumps the
 * generation and cancels them, so a timer of an older generation that still comes
 * due (from Redis, the sweep, a second scheduler) finds nothing to do. Events can
 * arrive out of order (intake's activity after the router's reassignment): an event
 * older than the running clock changes nothing. A timer that finds its clock restarted
 * by an event the scheduler never armed from (parked, say) writes 'stale.restarted',
 * which arms the clock here from that restart. */
#include "clocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

/* Does this event (re)start or stop the clock? */
static int s_relevant(const lf_keepalive_t *ka, const char *type, const json_t *pl) {
    if (!strcmp(type, "stale.restarted"))
        return 1;
    if (!strcmp(type, "activity.logged"))
        return lf_keepalive_restarts(ka,
                                     json_string_value(json_object_get(pl, "activity")));
    return !strcmp(type, "lead.assigned") || !strcmp(type, "lead.reassigned") ||
           !strcmp(type, "stage.changed") || !strcmp(type, "lead.claimed");
}

int lf_stale_on_event(lf_timers_t *t, lf_db_t *db, const json_t *env) {
    const char *type = lf_event_type(env), *lead_id = lf_event_lead(env);
    const char *at_s = json_string_value(json_object_get(env, "at"));
    if (!t->ka || !type || !lead_id || !s_relevant(t->ka, type, lf_event_payload(env)))
        return 0;
    /* A stale timer that found a restart on the timeline which no consumed event had
     * armed from (42_lf_keepalive.sql): the clock starts at that restart, as its own
     * event would have started it. */
    if (!strcmp(type, "stale.restarted"))
        at_s = json_string_value(json_object_get(lf_event_payload(env), "since"));
    int ms = 0;
    int64_t at = lf_clock_parse(at_s, &ms);
    if (at < 0) {
        lf_warn("stale clock: event without a time lead=%s type=%s", lead_id, type);
        return 0;
    }
    const char *p[] = {lead_id};
    PGresult *res =
        lf_db_exec_prepared(db, "lf_stale_lead",
                            "SELECT l.stage, l.grade, l.owner, l.closed_at IS NULL,"
                            " l.team FROM leads l WHERE l.id = $1",
                            1, p);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 0;
    }
    const char *stage = PQgetvalue(res, 0, 0);
    const char *grade = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
    const char *owner = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2);
    int open = PQgetvalue(res, 0, 3)[0] == 't';
    /* The lead's team (NULL: the default calendar), never the owner's team. */
    const char *team = PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4);
    const lf_duration_t *th =
        open && owner ? lf_keepalive_stale(t->ka, stage, grade) : NULL;
    char due[3][40];
    const char *due_p[3] = {NULL, NULL, NULL};
    if (th) {
        int64_t d0 = lf_clock_after(t, team, at, th);
        int64_t d1 = lf_clock_after(t, team, d0, lf_keepalive_warn_manager_after(t->ka));
        int64_t d2 = lf_clock_after(t, team, d1, lf_keepalive_recycle_after(t->ka));
        int64_t d[3] = {d0, d1, d2};
        for (int i = 0; i < 3; i++) {
            lf_rfc3339((d[i] < 0 ? at : d[i]) * 1000 + ms, due[i], sizeof due[i]);
            due_p[i] = due[i];
        }
    }
    /* The cool-down of a recycle, the team's manager (who hears of a stale deal whose
     * owner has no manager of their own) and the activity types that restart the
     * clock: firing skips a timer whose deal has one on its timeline since the clock
     * started, an event the scheduler has not consumed yet (42_lf_keepalive.sql). */
    json_t *dj =
        json_pack("{s:I}", "cooldown_s", (json_int_t)lf_keepalive_cooldown(t->ka)->secs);
    json_t *rs = json_array();
    const char *const *rt = lf_keepalive_restart_types(t->ka);
    for (size_t i = 0; rt && rt[i]; i++)
        json_array_append_new(rs, json_string(rt[i]));
    json_object_set_new(dj, "restart_on", rs);
    const char *mgr = t->teams ? lf_teams_get(t->teams, team)->manager : NULL;
    if (mgr)
        json_object_set_new(dj, "team_manager", json_string(mgr));
    char *data = json_dumps(dj, JSON_COMPACT);
    json_decref(dj);
    const char *q[] = {lead_id, at_s, owner, due_p[0], due_p[1], due_p[2], data};
    PGresult *r = lf_db_exec_prepared(
        db, "lf_keepalive_arm",
        "SELECT lf_keepalive_arm($1, $2::timestamptz, $3,"
        " $4::timestamptz, $5::timestamptz, $6::timestamptz, $7::jsonb)",
        7, q);
    free(data);
    PQclear(res);
    if (!r)
        return -1;
    char *pairs = lf_strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    lf_timers_index_after_commit(t, pairs);
    free(pairs);
    return 0;
}
