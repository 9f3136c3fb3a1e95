/* rollup.c - analytics rollups.
 *
 * Exactly-once counting comes from the consumer's ack, written in the same
 * transaction as the increment: a redelivered event finds its ack and adds
 * nothing. The day of a lead is its creation day in the sales team's time zone, so
 * a lead created at 07:00 Beijing time counts for that Beijing day. */
#include "rollup.h"

#include <string.h>

#include "lf/event.h"

/* Pipeline rollups: stage.changed counts one entry into the target stage on the day
 * of the move; deal.won / deal.lost count one closed deal and its amount on the day
 * it closed, lost ones per loss reason. Days are Asia/Shanghai days, as above. */
int lf_rollup_on_deal_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_rollup_t *r = arg;
    const json_t *pl = lf_event_payload(env);
    const char *type = lf_event_type(env);
    const char *at = json_string_value(json_object_get(env, "at"));
    if (!type || !at)
        return 0;
    if (strcmp(type, "stage.changed") == 0) {
        const char *to = json_string_value(json_object_get(pl, "to"));
        if (!to)
            return 0;
        const char *p[] = {at, to};
        if (lf_db_cmd(db,
                      "INSERT INTO rollup_stage_daily (day, stage, moves)"
                      " VALUES (($1::timestamptz AT TIME ZONE 'Asia/Shanghai')::date, $2, 1)"
                      " ON CONFLICT (day, stage)"
                      " DO UPDATE SET moves = rollup_stage_daily.moves + 1",
                      2, p) < 0)
            return -1;
    } else if (strcmp(type, "deal.won") == 0 || strcmp(type, "deal.lost") == 0) {
        int won = strcmp(type, "deal.won") == 0;
        const char *reason = json_string_value(json_object_get(pl, "loss_reason"));
        const json_t *a = json_object_get(pl, "amount");
        char amount[64] = "0";
        if (json_is_number(a))
            snprintf(amount, sizeof amount, "%.17g", json_number_value(a));
        const char *p[] = {at, won ? "won" : "lost", won ? "" : (reason ? reason : "other"),
                           amount};
        if (lf_db_cmd(db,
                      "INSERT INTO rollup_outcomes_daily (day, outcome, loss_reason, deals,"
                      " amount) VALUES (($1::timestamptz AT TIME ZONE 'Asia/Shanghai')::date,"
                      " $2, $3, 1, $4::numeric) ON CONFLICT (day, outcome, loss_reason)"
                      " DO UPDATE SET deals = rollup_outcomes_daily.deals + 1,"
                      " amount = rollup_outcomes_daily.amount + EXCLUDED.amount",
                      4, p) < 0)
            return -1;
    } else {
        return 0;
    }
    r->folded++;
    return 0;
}

int lf_rollup_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_rollup_t *r = arg;
    const json_t *pl = lf_event_payload(env);
    const char *type = lf_event_type(env);
    if (type && strcmp(type, "lead.assigned") != 0)
        return lf_rollup_on_deal_event(c, db, env, arg);
    if (!type || strcmp(type, "lead.assigned") != 0)
        return 0;
    const char *channel = json_string_value(json_object_get(pl, "channel"));
    const char *grade = json_string_value(json_object_get(pl, "grade"));
    const char *created = json_string_value(json_object_get(pl, "created_at"));
    if (!channel || !grade || !created)
        return 0;
    const char *p[] = {created, channel, grade};
    if (lf_db_cmd(
            db,
            "INSERT INTO rollup_leads_daily (day, channel, grade, leads)"
            " VALUES (($1::timestamptz AT TIME ZONE 'Asia/Shanghai')::date, $2, $3, 1)"
            " ON CONFLICT (day, channel, grade)"
            " DO UPDATE SET leads = rollup_leads_daily.leads + 1",
            3, p) < 0)
        return -1;
    r->folded++;
    return 0;
}
