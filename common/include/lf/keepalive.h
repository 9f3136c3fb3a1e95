/* keepalive.h - the keep-alive settings (config/keepalive.json): stale-deal thresholds,
 * the warn/recycle ladder, which activities restart the clock, reactivation delays per
 * loss reason and the digest schedules; plus the two small languages they are written
 * in: durations ("3d", "90s", "10 business days") and cron-like schedules
 * ("0 9 * * mon").
 *
 * Built once at start and read-only afterwards: any number of threads may read it. */
#ifndef LF_KEEPALIVE_H
#define LF_KEEPALIVE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lf/pipeline.h"

/* A length of time as configured. Wall-clock durations are exact seconds; business
 * durations count in the lead's team calendar: whole working days ("10 business
 * days") or working seconds ("4 business hours"). */
typedef struct {
    int64_t secs; /* wall clock: the length; business seconds: the working seconds;
                     business days: days * 86400 (what a wall-clock fallback uses) */
    int days;     /* business days: how many (0 otherwise) */
    int business; /* 1: counts in the team's business calendar */
} lf_duration_t;

/* Parses a duration: a positive whole number, optional spaces, the optional word
 * "business" and a unit: s sec secs second seconds 秒 | m min mins minute minutes 分钟 |
 * h hr hrs hour hours 小时 | d day days 天 | w week weeks 周 (weeks only wall clock). At
 * most ten years. Returns 0, or -1 with the reason in err. */
int lf_duration_parse(const char *text, lf_duration_t *out, char *err, size_t errsz);

/* A cron-like schedule: minute hour day-of-month month day-of-week, each a '*', a
 * number, a range a-b, a step ("every 15": star slash 15, or a-b slash n), or a comma
 * list of those; days of the week 0-7 (0 and 7 are Sunday) or mon..sun; months 1-12 or
 * jan..dec. As in cron, when both day fields are restricted a day matching either one
 * counts. */
typedef struct {
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h: hour h (0-23) */
    uint32_t mdays;   /* bit d: day of month d (1-31) */
    uint16_t months;  /* bit m: month m (1-12) */
    uint8_t wdays;    /* bit w: day of week w (0 = Sunday .. 6) */
    uint8_t mday_any; /* the day-of-month field was '*' */
    uint8_t wday_any; /* the day-of-week field was '*' */
} lf_cron_t;

/* Returns 0, or -1 with the field at fault in err. */
int lf_cron_parse(const char *text, lf_cron_t *out, char *err, size_t errsz);

/* The first matching minute strictly after `local` (seconds since 1970-01-01 00:00
 * in the schedule's own zone, i.e. local wall-clock time), in the same terms; -1 when
 * none within eight years (e.g. "0 0 31 2 *"). */
int64_t lf_cron_next(const lf_cron_t *cron, int64_t local);

/* Which clock a setting counts in. */
typedef enum { LF_CLOCK_BUSINESS, LF_CLOCK_WALL } lf_clock_t;

typedef struct lf_keepalive lf_keepalive_t;

/* Builds the settings from the parsed file (borrowed). pipeline (borrowed, may be
 * NULL) is used to check stage ids (open stages only) and loss reasons. Returns NULL
 * with the key at fault in err. Caller owns the result (lf_keepalive_destroy). */
lf_keepalive_t *lf_keepalive_from_json(const json_t *cfg, const lf_pipeline_t *pipeline,
                                       char *err, size_t errsz);
/* Reads and builds path; a missing file gives the defaults (nothing is watched, no
 * reactivation, Monday 09:00 digests). */
lf_keepalive_t *lf_keepalive_load(const char *path, const lf_pipeline_t *pipeline,
                                  char *err, size_t errsz);
/* Frees; accepts NULL and *self_p == NULL, sets *self_p to NULL. */
void lf_keepalive_destroy(lf_keepalive_t **self_p);

/* Whether the first-contact SLA, follow-ups and stale thresholds count in business
 * time (the default) or wall-clock time ("clock": "wall" turns every business duration
 * into the same length of wall-clock time). */
lf_clock_t lf_keepalive_clock(const lf_keepalive_t *ka);

/* The stale threshold of a deal in `stage` with `grade` (may be NULL): the grade's own
 * when set, else the stage's; NULL when deals in that stage are not watched. Borrowed. */
const lf_duration_t *lf_keepalive_stale(const lf_keepalive_t *ka, const char *stage,
                                        const char *grade);
/* After the owner's warning, how long until the manager's; after that, how long until
 * the deal is recycled; how long the previous owner may not get it back. Borrowed. */
const lf_duration_t *lf_keepalive_warn_manager_after(const lf_keepalive_t *ka);
const lf_duration_t *lf_keepalive_recycle_after(const lf_keepalive_t *ka);
const lf_duration_t *lf_keepalive_cooldown(const lf_keepalive_t *ka);
/* The activity types that restart the stale clock, as a borrowed NULL-terminated
 * array (they also mark a follow-up as done). */
const char *const *lf_keepalive_restart_types(const lf_keepalive_t *ka);
/* After an activity's next_action_at, how long until a follow-up that is still not
 * done is escalated to the owner's manager (follow_up.escalate_after: the grade's own
 * when set, else the default, 1 business day unless configured); NULL when follow-ups
 * are never escalated ("never"). Borrowed. */
const lf_duration_t *lf_keepalive_follow_up_escalation(const lf_keepalive_t *ka,
                                                       const char *grade);
/* 1 when an activity of this type restarts the stale clock, else 0. */
int lf_keepalive_restarts(const lf_keepalive_t *ka, const char *activity_type);

/* How long after a deal was lost for `loss_reason` it is offered again; NULL when that
 * reason never comes back. Borrowed. */
const lf_duration_t *lf_keepalive_reactivation(const lf_keepalive_t *ka,
                                               const char *loss_reason);

/* The digest schedule of a team (its own, else the default; "0 9 * * mon" unless set),
 * and the configured recipient (NULL: the team's manager). Borrowed. */
const lf_cron_t *lf_keepalive_digest(const lf_keepalive_t *ka, const char *team,
                                     const char **to);
/* The team ids the digest section lists by name (for a digest of a team that has no
 * rep yet), as a borrowed NULL-terminated array. */
const char *const *lf_keepalive_digest_teams(const lf_keepalive_t *ka);
/* 0 when digests are off ("digest": {"enabled": false}). */
int lf_keepalive_digest_enabled(const lf_keepalive_t *ka);

#endif
