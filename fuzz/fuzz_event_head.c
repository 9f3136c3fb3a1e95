/* fuzz_event_head.c - libFuzzer entry point for the envelope head reader.
 *
 * Every consumer reads the ZeroMQ messages it receives with lf_event_head
 * (common/event_head.c) and falls back to jansson's whole parse for what that reader
 * leaves to it. The two must never disagree, so this target is differential: each input
 * is read by both, with no kept fields and with the scheduler's (an assignment's "at",
 * grade and owner), and it aborts when the head reader calls malformed a text from which
 * jansson reads a positive seq and a string type, or returns fields that differ from
 * jansson's (a value, a key present in one and not the other, a payload holding keys it
 * was not asked for). See fuzz/README.md for the build and run lines. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lf/event_head.h"

#define S_CHECK(cond)                                                                    \
    do {                                                                                 \
        if (!(cond))                                                                     \
            abort();                                                                     \
    } while (0)

static const char *const s_top[] = {"at", NULL};
static const char *const s_payload[] = {"grade", "owner", NULL};
static const lf_head_keep_t s_keep = {"lead.assigned", s_top, s_payload};

/* head[key] is what whole[key] is: both absent, or equal (a null to a null). */
static void s_same(const json_t *head, const json_t *whole, const char *key) {
    const json_t *h = json_object_get(head, key), *w = json_object_get(whole, key);
    S_CHECK(!h == !w);
    S_CHECK(!w || json_equal(h, w));
}

static void s_differ(const char *text, size_t len, const lf_head_keep_t *keep) {
    json_t *head = NULL;
    lf_head_rc rc = lf_event_head(text, len, keep, &head);
    S_CHECK(rc == LF_HEAD_OK || rc == LF_HEAD_MALFORMED || rc == LF_HEAD_WHOLE);
    S_CHECK((rc == LF_HEAD_OK) == (head != NULL));
    json_t *whole = json_loadb(text, len, 0, NULL);
    const json_t *seq = json_object_get(whole, "seq");
    const json_t *type = json_object_get(whole, "type");
    int ok = json_is_object(whole) && json_is_integer(seq) &&
             json_integer_value(seq) > 0 && json_is_string(type);
    if (rc == LF_HEAD_MALFORMED)
        S_CHECK(!ok);
    if (rc == LF_HEAD_OK && ok) {
        size_t n = 2;
        s_same(head, whole, "seq");
        s_same(head, whole, "type");
        const json_t *lead = json_object_get(whole, "lead_id");
        if (json_is_string(lead)) {
            s_same(head, whole, "lead_id");
            n++;
        } else {
            S_CHECK(!json_object_get(head, "lead_id"));
        }
        if (keep) {
            S_CHECK(!strcmp(json_string_value(type), keep->type));
            for (const char *const *k = keep->top; *k; k++) {
                s_same(head, whole, *k);
                n += json_object_get(whole, *k) != NULL;
            }
            const json_t *hp = json_object_get(head, "payload");
            const json_t *wp = json_object_get(whole, "payload");
            S_CHECK(!hp == !wp);
            if (hp) {
                size_t kept = 0;
                for (const char *const *k = keep->payload; *k; k++) {
                    s_same(hp, wp, *k);
                    kept += json_object_get(wp, *k) != NULL;
                }
                S_CHECK(json_object_size(hp) == kept);
                n++;
            }
        }
        S_CHECK(json_object_size(head) == n);
    }
    json_decref(head);
    json_decref(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    s_differ(text, size, NULL);
    s_differ(text, size, &s_keep);
    return 0;
}
