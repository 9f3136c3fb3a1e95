/* fuzz_event_head.c - libFuzzer entry point for the envelope head reader.
 *
 * Every consumer reads the ZeroMQ messages it receives with lf_event_head
 * (common/event_head.c) and falls back to jansson's whole parse for what that reader
 * leaves to it. The two must never disagree, so this target is differential: each input
 * is read by both, with no kept fields and with the scheduler's (an assignment's "at",
 * grade and owner), and it aborts on any disagreement lf_head_disagreement names
 * (tests/support/head_agree.c, the rule the unit tests hold it to too): a text called
 * malformed from which jansson reads a positive seq and a string type, fields that differ
 * from jansson's, a payload holding keys it was not asked for. See fuzz/README.md for the
 * build and run lines. */
#include <stdint.h>
#include <stdlib.h>

#include "lf/event_head.h"

#include "../tests/support/head_agree.h"

static const char *const s_top[] = {"at", NULL};
static const char *const s_payload[] = {"grade", "owner", NULL};
static const lf_head_keep_t s_keep = {"lead.assigned", s_top, s_payload};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    if (lf_head_disagreement(text, size, NULL) ||
        lf_head_disagreement(text, size, &s_keep))
        abort();
    return 0;
}
