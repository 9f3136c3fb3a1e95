/* head_agree.c - lf_event_head held against jansson's whole parse, for
 * tests/unit/test_event_head.c and fuzz/fuzz_event_head.c. */
#include "head_agree.h"

#include <jansson.h>
#include <string.h>

/* The fields of list are in both objects or neither, and equal (a null to a null).
 * Returns how many are present, or -1. */
static int s_same_fields(const json_t *head, const json_t *whole,
                         const char *const *list) {
    int present = 0;
    for (; list && *list; list++) {
        const json_t *h = json_object_get(head, *list),
                     *w = json_object_get(whole, *list);
        if (!h != !w || (w && !json_equal(h, w)))
            return -1;
        present += w != NULL;
    }
    return present;
}

static const char *s_compare(const json_t *head, const json_t *whole,
                             const lf_head_keep_t *keep) {
    const json_t *seq = json_object_get(whole, "seq"),
                 *type = json_object_get(whole, "type");
    const json_t *lead = json_object_get(whole, "lead_id");
    if (!json_equal(json_object_get(head, "seq"), seq))
        return "the seq differs from jansson's";
    if (!json_equal(json_object_get(head, "type"), type))
        return "the type differs from jansson's";
    if (json_is_string(lead) ? !json_equal(json_object_get(head, "lead_id"), lead)
                             : json_object_get(head, "lead_id") != NULL)
        return "the lead_id differs from jansson's";
    size_t fields = json_is_string(lead) ? 3 : 2;
    if (keep) {
        if (strcmp(json_string_value(type), keep->type) != 0)
            return "an event of another type than keep's was read light";
        int top = s_same_fields(head, whole, keep->top);
        if (top < 0)
            return "a kept field is not as jansson reads it";
        fields += (size_t)top;
        const json_t *hp = json_object_get(head, "payload");
        const json_t *wp = json_object_get(whole, "payload");
        if (!hp != !wp)
            return "a payload object in one reading and not the other";
        if (hp) {
            int kept = s_same_fields(hp, wp, keep->payload);
            if (kept < 0)
                return "a kept payload field is not as jansson reads it";
            if (json_object_size(hp) != (size_t)kept)
                return "the payload holds keys that were not asked for";
            fields++;
        }
    }
    return json_object_size(head) == fields ? NULL
                                            : "the light envelope holds other fields";
}

const char *lf_head_disagreement(const char *text, size_t len,
                                 const lf_head_keep_t *keep) {
    json_t *head = NULL;
    lf_head_rc rc = lf_event_head(text, len, keep, &head);
    if (rc != LF_HEAD_OK && rc != LF_HEAD_MALFORMED && rc != LF_HEAD_WHOLE) {
        json_decref(head);
        return "a verdict that is none of the three";
    }
    if ((rc == LF_HEAD_OK) != (head != NULL)) {
        json_decref(head);
        return "an envelope without LF_HEAD_OK, or none with it";
    }
    json_t *whole = json_loadb(text, len, 0, NULL);
    const json_t *seq = json_object_get(whole, "seq");
    int ok = json_is_object(whole) && json_is_integer(seq) &&
             json_integer_value(seq) > 0 &&
             json_is_string(json_object_get(whole, "type"));
    const char *why = NULL;
    if (rc == LF_HEAD_MALFORMED && ok)
        why = "called malformed, but jansson reads a positive seq and a string type";
    else if (rc == LF_HEAD_OK && ok)
        why = s_compare(head, whole, keep);
    json_decref(head);
    json_decref(whole);
    return why;
}
