/* jtext.h - JSON text written straight into a growing buffer.
 *
 * For what the router only stores or sends on (the lead.assigned payload and
 * envelope): building a jansson tree for it and then
 * serializing it cost several allocations per value and a UTF-8 decode per character,
 * a good part of the router's work per lead. The caller writes the structure
 * (braces, keys, commas) with lf_jtext_raw and the values with the functions below. */
#ifndef LF_ROUTER_JTEXT_H
#define LF_ROUTER_JTEXT_H

#include <stddef.h>

typedef struct {
    char *buf;  /* owned, NUL-terminated once anything was written */
    size_t len; /* bytes written, without the NUL */
    size_t cap; /* bytes allocated */
} lf_jtext_t;

/* Appends `s` as it is (JSON syntax the caller vouches for). */
void lf_jtext_raw(lf_jtext_t *t, const char *s);
/* Appends `s` as a JSON string (quoted; '"', '\' and control characters escaped; other
 * bytes, UTF-8 included, as they are), or null when s is NULL. */
void lf_jtext_str(lf_jtext_t *t, const char *s);
/* Appends an integer. */
void lf_jtext_int(lf_jtext_t *t, long long v);
/* The text ("" when nothing was written). Borrowed: valid until the next call. */
const char *lf_jtext_get(lf_jtext_t *t);
/* Empties the buffer, keeping its memory for reuse. */
void lf_jtext_reset(lf_jtext_t *t);
/* Frees the buffer; accepts a zeroed lf_jtext_t. */
void lf_jtext_free(lf_jtext_t *t);

#endif
