/* rollup.c - analytics rollups.
 *
 * Exactly-once counting comes from the consumer's ack, written in the same
 * transaction as the increment: a redelivered event finds its ack and adds
 * nothing. The day of a lead is its creation day in the sales team's time zone, so
 * a lead created at 07:00 Beijing time counts for that Beijing day. */
#include "rollup.h"

#include <string.h>

#include "lf/event.h"

int lf_rollup_on_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_rollup_t *r = arg;
    const json_t *pl = lf_event_payload(env);
    const char *type = lf_event_type(env);
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
