/* util.h - small things every leadflow service needs: allocation that aborts on
 * out-of-memory, clocks, identifiers and string helpers. */
#ifndef LF_UTIL_H
#define LF_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Allocation never returns NULL: out of memory aborts with file:line, as redis'
 * zmalloc does. A service that cannot allocate cannot keep its promises anyway. */
#define lf_malloc(n) lf_malloc_at((n), __FILE__, __LINE__)
#define lf_calloc(c, n) lf_calloc_at((c), (n), __FILE__, __LINE__)
#define lf_realloc(p, n) lf_realloc_at((p), (n), __FILE__, __LINE__)
#define lf_strdup(s) lf_strdup_at((s), __FILE__, __LINE__)
void *lf_malloc_at(size_t n, const char *file, int line);
void *lf_calloc_at(size_t count, size_t n, const char *file, int line);
void *lf_realloc_at(void *p, size_t n, const char *file, int line);
char *lf_strdup_at(const char *s, const char *file, int line);

/* Wall clock in milliseconds since the epoch. */
int64_t lf_now_ms(void);
/* Monotonic clock in milliseconds, for timeouts and intervals. */
int64_t lf_mono_ms(void);

/* Writes a new UUIDv7 (time-ordered, RFC 9562) as 36 characters plus NUL into out.
 * Time ordering keeps the leads primary key index append-mostly. */
void lf_uuid7(char out[37]);
/* Writes a new random UUID (version 4, RFC 9562: 122 random bits), as gen_random_uuid()
 * makes them, as 36 characters plus NUL into out. For ids that need no order (event
 * ids): drawn here, not by PostgreSQL, whose gen_random_uuid() costs a backend several
 * microseconds a call through OpenSSL 3's generator (docs/benchmarks.md). */
void lf_uuid4(char out[37]);
/* A PostgreSQL uuid[] literal of n new lf_uuid4 ids ("{}" for none), to be freed:
 * the event ids of a batch a SQL function writes. */
char *lf_uuid4_array(size_t n);

/* 1 when s is a UUID in its canonical 8-4-4-4-12 hexadecimal form (either case), as
 * lead ids are: a lead id column is uuid, so anything else names no lead and must not
 * reach a query (PostgreSQL would refuse it with an error, not an empty answer). */
int lf_uuid_valid(const char *s);

/* Writes v in decimal into out (at least 21 bytes: sign, 19 digits, NUL) and returns
 * its length; without snprintf, for the batch writers' hot loops. */
size_t lf_itoa(long long v, char *out);

/* 1 when s has the shape of an RFC 3339 time with seconds and an offset
 * (2026-05-01T09:30:00+08:00, 2026-05-01T01:30:00.250Z), 0 otherwise. Only the shape:
 * PostgreSQL still judges the values; text of any other shape never reaches a cast,
 * whose error would quote it (a phone number typed into a date field) in its log. */
int lf_rfc3339_shape(const char *s);

/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void lf_rfc3339(int64_t ms, char *out, size_t outsz);

/* Copies src into dst (size dstsz), always NUL-terminating. Returns strlen(src). */
size_t lf_strlcpy(char *dst, const char *src, size_t dstsz);

/* Reads a whole file. Returns a NUL-terminated buffer (caller owns) and its length in
 * *len, or NULL when the file cannot be read. */
char *lf_read_file(const char *path, size_t *len);

/* Joins dir and name into out. Returns 0, or -1 when it does not fit. */
int lf_path_join(char *out, size_t outsz, const char *dir, const char *name);

#endif
