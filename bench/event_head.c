/* event_head - what reading an envelope costs a consumer, per envelope: jansson's whole
 * parse and free (what every consumer did before), lf_event_head's light envelope
 * (the router, analytics and the scheduler's effects), and lf_event_head keeping the
 * scheduler's fields of an assignment. The envelopes are the two the stack publishes
 * per lead: intake's lead.created and the router's lead.assigned, as they write them.
 *
 *   build/bench/event_head [N=1000000] [RUNS=5]
 *
 * Prints, for each envelope and reader, the median of RUNS runs of N reads (min - max)
 * in nanoseconds per envelope. Not part of make bench. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/event.h"
#include "lf/event_head.h"

static const char *const s_created =
    "{\"v\":1,\"seq\":2345678,\"event_id\":\"5b0c3b2e-7d1e-4abc-8def-0123456789ab\","
    "\"type\":\"lead.created\",\"lead_id\":\"0190c3b2-7d1e-7abc-8def-0123456789ab\","
    "\"at\":\"2026-12-03T07:41:05.100000Z\",\"payload\":{\"channel\":\"api\"}}";

static const char *const s_assigned =
    "{\"v\":1,\"seq\":2345679,\"event_id\":\"6c0c3b2e-7d1e-4abc-8def-0123456789ab\","
    "\"type\":\"lead.assigned\",\"lead_id\":\"0190c3b2-7d1e-7abc-8def-0123456789ab\","
    "\"at\":\"2026-12-03T07:41:05.123456Z\",\"payload\":{\"grade\":\"B\",\"score\":62,"
    "\"owner\":\"rep-017\",\"queue\":null,\"reason\":\"skills+territory+capacity\","
    "\"channel\":\"api\",\"created_at\":\"2026-12-03T07:41:05.100000Z\",\"team\":"
    "\"north\",\"pool_reason\":null}}";

static const char *const s_top[] = {"at", NULL};
static const char *const s_payload[] = {"grade", "owner", NULL};
static const lf_head_keep_t s_keep = {"lead.assigned", s_top, s_payload};

enum { S_WHOLE, S_HEAD, S_KEEP };

static double s_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ns per read of text by reader `how`, over n reads. */
static double s_run(const char *text, int how, long n) {
    size_t len = strlen(text);
    long long sum = 0;
    double t0 = s_now();
    for (long i = 0; i < n; i++) {
        json_t *env = NULL;
        if (how == S_WHOLE)
            env = json_loadb(text, len, 0, NULL);
        else
            lf_event_head(text, len, how == S_KEEP ? &s_keep : NULL, &env);
        sum += lf_event_seq(env);
        json_decref(env);
    }
    double ns = (s_now() - t0) / (double)n * 1e9;
    if (sum <= 0) { /* every read must have found the seq */
        fprintf(stderr, "event_head: a reader lost the seq\n");
        exit(1);
    }
    return ns;
}

static int s_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 1 || runs < 1 || runs > 99) {
        fprintf(stderr, "usage: event_head [N>0] [RUNS 1-99]\n");
        return 2;
    }
    const struct {
        const char *name, *text;
        int how;
    } c[] = {
        {"lead.created, jansson whole", s_created, S_WHOLE},
        {"lead.created, head", s_created, S_HEAD},
        {"lead.assigned, jansson whole", s_assigned, S_WHOLE},
        {"lead.assigned, head", s_assigned, S_HEAD},
        {"lead.assigned, head + scheduler's fields", s_assigned, S_KEEP},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        double t[99];
        for (int r = 0; r < runs; r++)
            t[r] = s_run(c[k].text, c[k].how, n);
        qsort(t, (size_t)runs, sizeof t[0], s_cmp);
        printf(
            "event_head %-42s %4zu bytes: %7.0f ns per envelope (%d runs of %ld: %.0f - "
            "%.0f)\n",
            c[k].name, strlen(c[k].text), t[runs / 2], runs, n, t[0], t[runs - 1]);
    }
    return 0;
}
