/* pgarray.h - PostgreSQL array literals built in C.
 *
 * A batch goes to the server as one parameter per column - unnest($1::text[],
 * $2::int[], ...) - instead of one statement per row, or a JSON document the server
 * would parse field by field. Every text element is written double-quoted with '"' and
 * '\' escaped, which is the array input syntax for any text (empty strings, "NULL",
 * commas, braces, JSON); integers are written bare, NULL as NULL. */
#ifndef LF_PGARRAY_H
#define LF_PGARRAY_H

#include <stddef.h>

typedef struct {
    char *buf;  /* "{...": owned, NUL-terminated */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    size_t n;   /* elements added */
} lf_pgarray_t;

/* Starts an empty array literal ("{"). */
void lf_pgarray_init(lf_pgarray_t *a);
/* Appends one element: `s` quoted, or SQL NULL when s is NULL. Borrowed: s. */
void lf_pgarray_add(lf_pgarray_t *a, const char *s);
/* Appends an integer element (unquoted digits). */
void lf_pgarray_add_int(lf_pgarray_t *a, long long v);
/* Closes the literal ("}") and returns it. Borrowed: valid until lf_pgarray_free; add
 * nothing after it. */
const char *lf_pgarray_end(lf_pgarray_t *a);
/* Frees the buffer and empties `a`; accepts an array never initialised (zeroed). */
void lf_pgarray_free(lf_pgarray_t *a);

#endif
