/* bizcal.h - a team's business calendar: "N business hours / days after t".
 *
 * A calendar is a time zone, the working days of the week, the working hours of a
 * working day (one or more windows, e.g. 09:00-12:00 and 13:30-18:00), and per year the
 * public holidays and the make-up working days (调休: a Saturday or Sunday that is a
 * working day) from files an operator can update. Every clock of the product that
 * counts business time (pool SLA, first-contact SLA, keep-alive) goes through
 * lf_bizcal_add_seconds() / lf_bizcal_add_days().
 *
 * Configuration (a team's "calendar" in config/routing.json):
 *   {"timezone": "Asia/Shanghai",
 *    "work_days": ["mon", "tue", "wed", "thu", "fri"],
 *    "hours": [["09:00", "12:00"], ["13:30", "18:00"]],
 *    "holidays": "CN"}
 * "holidays" names a set of year files <dir>/<set>-<year>.json (e.g. CN-2026.json):
 *   {"year": 2026, "holidays": [{"name": "春节", "from": "2026-02-15", "to":
 * "2026-02-23"}], "workdays": [{"date": "2026-02-14", "for": "春节"}]} A year without a
 * file counts weekends only (lf_bizcal_check says so).
 *
 * A calendar is read-only once built: any number of threads may use it. Instants are
 * seconds since the epoch (UTC). */
#ifndef LF_BIZCAL_H
#define LF_BIZCAL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct lf_bizcal lf_bizcal_t;

/* Builds a calendar from its configuration (NULL = the defaults: Asia/Shanghai,
 * Monday to Friday, 09:00-18:00, no holiday files) and the folder of year files.
 * Borrowed: cfg. Returns NULL with the key or file and the rule it breaks in `err`.
 * Caller owns the result (lf_bizcal_destroy). */
lf_bizcal_t *lf_bizcal_new(const json_t *cfg, const char *dir, char *err, size_t errsz);

/* Frees the calendar; accepts NULL and *self_p == NULL, sets *self_p to NULL. */
void lf_bizcal_destroy(lf_bizcal_t **self_p);

/* 0 when the holiday files of the year of `now` and of the next year (in the calendar's
 * zone) are loaded or the calendar uses none; 1 otherwise, with a one-line warning
 * naming the missing file in `warn` (those years count weekends only). */
int lf_bizcal_check(const lf_bizcal_t *cal, int64_t now, char *warn, size_t warnsz);

/* 1 when the local date y-m-d is a working day (a make-up day, or a working weekday
 * that is not a holiday), else 0. */
int lf_bizcal_is_working_day(const lf_bizcal_t *cal, int y, int m, int d);

/* 1 when t falls within working hours of a working day, else 0. */
int lf_bizcal_is_open(const lf_bizcal_t *cal, int64_t t);

/* t itself when it is within working hours, else the start of the next working window.
 * Returns -1 when there is none within three years (a calendar without working time). */
int64_t lf_bizcal_next_open(const lf_bizcal_t *cal, int64_t t);

/* The instant `secs` business seconds after t (use hours * 3600): time outside working
 * hours does not count. An instant outside working hours counts from the next window;
 * an amount that ends exactly at the end of a window ends there (18:00, not 09:00 the
 * next morning). secs < 0 counts as 0. Returns -1 as lf_bizcal_next_open does. */
int64_t lf_bizcal_add_seconds(const lf_bizcal_t *cal, int64_t t, int64_t secs);

/* The instant `days` working days after t: the same clock time on the days-th working
 * day after t's date, moved into working hours (to the next window when that clock time
 * is outside them). An instant outside working hours first moves to the next window.
 * days < 0 counts as 0. Returns -1 as lf_bizcal_next_open does. */
int64_t lf_bizcal_add_days(const lf_bizcal_t *cal, int64_t t, int days);

/* The instant the local day of t began (midnight in the calendar's zone). */
int64_t lf_bizcal_day_start(const lf_bizcal_t *cal, int64_t t);

/* Business seconds between a and b (0 when b <= a). */
int64_t lf_bizcal_seconds_between(const lf_bizcal_t *cal, int64_t a, int64_t b);

#endif
