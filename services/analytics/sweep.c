/* sweep.c - the analytics consumer's sweep, acknowledgement and fold in one statement.
 *
 * The consumer framework (lf/consumer.h) sweeps in three statements: the window of
 * unacknowledged events, the insert of their acks (reading each event again to check
 * it lies above the cursor) and the fold (reading each event a third time, by seq).
 * For a backlog - analytics after an outage, or a burst - that is most of the work:
 * measured per event, 5.5 us window, 8.7 us acks, 16.4 us fold (bench/analytics.sh's
 * events, loaded machine). lf_analytics_sweep() does the three in one call on the rows
 * it read once, with the framework's guarantees (its header says how). The ZeroMQ
 * path, the cursor's advance and the pruning of acks stay the framework's: the acks
 * are the same rows. */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>

#include "lf/log.h"

int lf_sweep_run(void *arg, int limit) {
    lf_sweep_t *s = arg;
    char lim[16], from[24];
    snprintf(lim, sizeof lim, "%d", limit);
    int total = 0;
    for (int skipped = 0;; skipped++) {
        snprintf(from, sizeof from, "%lld", s->from);
        const char *p[] = {"analytics", s->types, from, lim};
        PGresult *res = lf_db_exec_prepared(
            s->db, "lf_analytics_sweep",
            "SELECT window_n, window_end, folded FROM lf_analytics_sweep($1, $2::text[],"
            " $3::bigint, $4::int)",
            4, p);
        if (!res) {
            /* The SQLSTATE only: PostgreSQL's message may quote an event's data. */
            lf_warn("analytics sweep failed, sweeping through the consumer: sqlstate=%s",
                    lf_db_sqlstate(s->db));
            s->from = 0;
            int n = lf_consumer_sweep(s->consumer, limit);
            return n < 0 ? -1 : total + n;
        }
        long window = atol(PQgetvalue(res, 0, 0));
        long long end = PQgetisnull(res, 0, 1) ? 0 : atoll(PQgetvalue(res, 0, 1));
        int folded = atoi(PQgetvalue(res, 0, 2));
        PQclear(res);
        total += folded;
        s->rollup->folded += folded;
        if (folded > 0)
            s->rollup->batches++;
        if (window < limit) {
            s->from = 0; /* the backlog is done: next time from the cursor again */
            return total;
        }
        s->from = end;
        if (folded > 0 || skipped >= 20)
            return total;
    }
}
