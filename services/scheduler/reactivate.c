/* reactivate.c - lost deals offered again (再激活), and a returning customer's new
 * inquiry linked to its lost deal.
 *
 * deal.lost sets one 'reactivate' timer at the time the loss reason's delay ends
 * (config/keepalive.json reactivation.after; reasons without a delay never come back),
 * counted from the moment the deal was lost, in the team's business time when the delay
 * is written so. The timer remembers which loss it belongs to (closed_at): when it
 * fires (lf_keepalive_fire_reactivate, 43_lf_keepalive_reactivate.sql) a deal reopened
 * by hand, lost again or won in the meantime is left alone. A new inquiry from the
 * customer of a lost deal is linked to that deal, which then needs no reactivation, when
 * it is first routed (lead.assigned; the scheduler no longer takes lead.created, main.c).
 */
#include "clocks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/util.h"

static int s_on_lost(lf_timers_t *t, lf_db_t *db, const char *lead_id) {
    const char *p[] = {lead_id};
    PGresult *res =
        lf_db_exec(db,
                   "SELECT loss_reason, extract(epoch FROM closed_at)::bigint,"
                   " team, (SELECT count(*) FROM timers WHERE lead_id = $1"
                   "  AND kind = 'reactivate')"
                   " FROM leads WHERE id = $1 AND closed_at IS NOT NULL"
                   " AND loss_reason IS NOT NULL",
                   1, p);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) { /* reopened or won since: nothing to offer again */
        PQclear(res);
        return 0;
    }
    const lf_duration_t *after = lf_keepalive_reactivation(t->ka, PQgetvalue(res, 0, 0));
    if (!after) {
        PQclear(res);
        return 0;
    }
    int64_t closed = atoll(PQgetvalue(res, 0, 1));
    int64_t due = lf_clock_after(t, PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2),
                                 closed, after);
    char due_s[40], step[16];
    lf_rfc3339(due * 1000, due_s, sizeof due_s);
    snprintf(step, sizeof step, "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    const char *q[] = {lead_id, step, due_s};
    res =
        lf_db_exec(db,
                   "INSERT INTO timers (lead_id, kind, step, due_at, data)"
                   " SELECT l.id, 'reactivate', $2::int, $3::timestamptz,"
                   "  jsonb_build_object('closed_at', l.closed_at, 'loss_reason',"
                   "   l.loss_reason)"
                   " FROM leads l WHERE l.id = $1 ON CONFLICT DO NOTHING"
                   " RETURNING (extract(epoch FROM due_at) * 1000)::bigint || ' ' || id",
                   3, q);
    if (!res)
        return -1;
    if (PQntuples(res) == 1) {
        char *pairs = lf_strdup(PQgetvalue(res, 0, 0));
        lf_timers_index_after_commit(t, pairs);
        free(pairs);
    }
    PQclear(res);
    return 0;
}

int lf_reactivate_on_event(lf_timers_t *t, lf_db_t *db, const json_t *env) {
    const char *type = lf_event_type(env), *lead_id = lf_event_lead(env);
    if (!t->ka || !type || !lead_id)
        return 0;
    if (!strcmp(type, "deal.lost"))
        return s_on_lost(t, db, lead_id);
    if (!strcmp(type, "lead.assigned")) {
        const char *p[] = {lead_id};
        PGresult *res = lf_db_exec_prepared(db, "lf_keepalive_link_lost",
                                            "SELECT lf_keepalive_link_lost($1)", 1, p);
        if (!res)
            return -1;
        if (!PQgetisnull(res, 0, 0))
            lf_info("new inquiry linked to the customer's lost deal lead=%s lost=%s",
                    lead_id, PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return 0;
}
