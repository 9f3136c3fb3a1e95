/* batch_arrays.h - a batch of lead rows as one PostgreSQL array literal per column.
 *
 * The group committer sends a batch to lf_intake_commit() as typed arrays (text[],
 * numeric[], boolean[], jsonb[]: position i of every array is lead i), which PostgreSQL
 * reads with unnest() in one statement, instead of one jsonb document that PL/pgSQL
 * would take apart lead by lead. The literals are built here from the rows that
 * lf_lead_row() made, in the text format of array_in(): every element double-quoted
 * with `"` and `\` escaped, SQL NULL as an unquoted NULL. */
#ifndef LF_INTAKE_BATCH_ARRAYS_H
#define LF_INTAKE_BATCH_ARRAYS_H

#include <jansson.h>
#include <stddef.h>

/* Columns in the order of lf_intake_commit's parameters. The last, p_event_id, is not
 * taken from the row: each lead added puts a new random UUID there, and the batch's
 * lead.created events take these ids in turn, so that PostgreSQL draws none for them. */
#define LF_BATCH_COLUMNS 27

typedef struct lf_batch_arrays lf_batch_arrays_t;

/* Creates empty arrays. Never NULL (out of memory aborts). Caller owns the result. */
lf_batch_arrays_t *lf_batch_arrays_new(void);
void lf_batch_arrays_destroy(lf_batch_arrays_t **self_p);
/* Empties every array, keeping the memory for the next batch. */
void lf_batch_arrays_reset(lf_batch_arrays_t *self);
/* Appends one lead. Borrowed `row`: the leads row as a JSON object (lf_lead_row); a
 * missing key or JSON null is SQL NULL. */
void lf_batch_arrays_add(lf_batch_arrays_t *self, const json_t *row);
/* The LF_BATCH_COLUMNS literals, for PQexecParams. Borrowed: valid until the next
 * add, reset or destroy. */
const char *const *lf_batch_arrays_params(lf_batch_arrays_t *self);
/* Bytes held by the literals now (for the committer's memory bound and tests). */
size_t lf_batch_arrays_bytes(const lf_batch_arrays_t *self);

#endif
