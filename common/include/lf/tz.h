/* tz.h - time zones as tables of UTC offsets, without tzset() or TZ.
 *
 * A zone is read once (an IANA name from the TZif files under $TZDIR or
 * /usr/share/zoneinfo, or a fixed offset such as "+08:00", "-0530", "UTC") and is then
 * read-only: lookups are a binary search over its transitions, safe from any thread.
 * Used by the router's shifts and by the business calendar (bizcal.h). */
#ifndef LF_TZ_H
#define LF_TZ_H

#include <stddef.h>
#include <stdint.h>

typedef struct lf_tz lf_tz_t;

/* Loads a zone by IANA name or fixed offset. Returns NULL with the reason in `err` for
 * an unknown name, a name that tries to leave the zoneinfo folder, or a bad file.
 * Caller owns the result (lf_tz_destroy). */
lf_tz_t *lf_tz_load(const char *name, char *err, size_t errsz);

/* Frees the zone; accepts NULL and *self_p == NULL, sets *self_p to NULL. */
void lf_tz_destroy(lf_tz_t **self_p);

/* The name the zone was loaded with. Borrowed: valid until the zone is destroyed. */
const char *lf_tz_name(const lf_tz_t *tz);

/* The UTC offset in seconds in effect at instant t (seconds since the epoch). */
int32_t lf_tz_offset(const lf_tz_t *tz, int64_t t);

/* The instant whose local wall-clock time, counted as seconds since 1970-01-01 00:00
 * local, is `local`. A local time skipped by a forward DST jump maps to the same
 * distance after the jump; one repeated by a backward jump maps to its first
 * occurrence. */
int64_t lf_tz_from_local(const lf_tz_t *tz, int64_t local);

#endif
