/* head_agree.h - the rule the tests and the fuzz target hold lf_event_head to: it never
 * disagrees with jansson's whole parse (common/event_head.c). */
#ifndef LF_TEST_HEAD_AGREE_H
#define LF_TEST_HEAD_AGREE_H

#include <stddef.h>

#include "lf/event_head.h"

/* Reads text[0..len) with lf_event_head (keep as given) and with jansson. Returns NULL
 * when they agree: a verdict of the three, an envelope exactly when LF_HEAD_OK, nothing
 * called malformed from which jansson reads a positive integer seq and a string type,
 * and, when both read it, the same seq, type and lead_id, only keep's type read light,
 * each kept field present in both or neither and equal, a payload object in both or
 * neither holding the kept keys only, and no other field. Otherwise a static text
 * naming the promise broken. */
const char *lf_head_disagreement(const char *text, size_t len,
                                 const lf_head_keep_t *keep);

#endif
