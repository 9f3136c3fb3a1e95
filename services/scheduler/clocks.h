/* clocks.h - the keep-alive clocks of the scheduler
 * (docs/pipeline.md#keeping-deals-alive): when a duration of config/keepalive.json ends
 * for a lead of a team (clock.c), the stale-deal clock armed and stopped from events
 * (stale.c), the follow-ups and their escalation (follow_up.c), the reactivation of lost
 * deals (reactivate.c) and the team digests (digest.c). Firing is in PostgreSQL
 * (db/functions/42_lf_keepalive.sql), with the other timers of a claimed batch. */
#ifndef LF_SCHEDULER_CLOCKS_H
#define LF_SCHEDULER_CLOCKS_H

#include <jansson.h>
#include <stdint.h>

#include "lf/db.h"
#include "lf/keepalive.h"
#include "timers.h"

/* The instant `d` after `t` (seconds since the epoch) for a lead of `team` (may be
 * NULL): in the team's business calendar when the duration is written in business
 * time and the configuration counts business time, else wall-clock. */
int64_t lf_clock_after(const lf_timers_t *t, const char *team, int64_t at,
                       const lf_duration_t *d);

/* The first-contact SLA of the lead of `env` (lead.assigned / lead.reassigned) for
 * the owner's round (`step`: 10 * reassignments): its reminder first_contact_seconds
 * of config/sla.json after the assignment, its escalation escalate_after_seconds after
 * that, its reassignment reassign_after_seconds after that (when the grade has one),
 * counted in the lead's team calendar unless keepalive.json says "clock": "wall". The
 * reminder's timer carries the later deadlines (data: escalate_at, reassign_at) for
 * lf_fire_timers() to give the next steps, so each deadline is computed here once; the
 * reminder's deadline is stored for the SLA reports in lead_first_contact (one narrow
 * row per lead; leads.first_contact_due_at until 0047). Runs in the consumer's
 * transaction. Returns 0, or -1 on a database error. */
int lf_clock_sla_arm(lf_timers_t *t, lf_db_t *db, const json_t *env, const char *grade,
                     int step);

/* lf_clock_sla_arm for n events at once (envs[i] with grades[i] and steps[i]), in
 * one statement whatever n, inside a consumer batch: their leads' teams come from what
 * lf_timers_on_begin read as it locked them (t->locked), then every deadline and every
 * reminder timer in one statement. Same
 * effect as lf_clock_sla_arm on each event in order. idle (n entries, or NULL) tells for
 * each event whether, as the lead was read under that lock, its stale clock neither runs
 * nor would start (lf_stale_on_event would change nothing). Runs in the consumer's
 * transaction. Returns 0, or -1 on a database error. */
int lf_clock_sla_arm_batch(lf_timers_t *t, lf_db_t *db, const json_t *const *envs,
                           const char *const *grades, const int *steps, size_t n,
                           unsigned char *idle);

/* Seconds since the epoch of an RFC 3339 UTC time as leadflow writes them
 * ("2026-12-01T14:27:18.123Z"), with milliseconds in *ms when ms != NULL. Returns -1
 * when it is not one. */
int64_t lf_clock_parse(const char *rfc3339, int *ms);

/* Consumer step for the events that start, restart or stop a stale clock:
 * lead.assigned, lead.reassigned, stage.changed, activity.logged of a type that
 * restarts the clock, and stale.restarted (a timer that found a restart no event had
 * armed from: the clock starts at payload.since). Runs in the consumer's transaction;
 * indexes new timers in Redis. Returns 0, or -1 on a database error. */
int lf_stale_on_event(lf_timers_t *t, lf_db_t *db, const json_t *env);

/* Consumer step for activity.logged with a next_action_at: the follow-up reminder
 * timer at that time and, follow_up.escalate_after later in the lead's team calendar,
 * the overdue escalation to the owner's manager (follow_up.c). Runs in the consumer's
 * transaction. Returns 0, or -1 on a database error. */
int lf_follow_up_on_event(lf_timers_t *t, lf_db_t *db, const json_t *env);

/* Consumer step for deal.lost (sets the reactivation timer when the loss reason comes
 * back) and lead.assigned (links a returning customer's new inquiry to its lost deal; a
 * lead already linked is left alone, lf_keepalive_link_lost()).
 * Returns 0, or -1 on a database error. */
int lf_reactivate_on_event(lf_timers_t *t, lf_db_t *db, const json_t *env);

/* The digest schedules: one pending digest timer per team. */
lf_digests_t *lf_digests_new(const char *config_dir);
void lf_digests_destroy(lf_digests_t **self_p);
/* At most every 30 s: gives each team without one its next digest timer. */
void lf_digests_tick(lf_timers_t *t, lf_digests_t *d);

#endif
