/* batch.h - the router's set-based path: a consumer batch of lead events decided in
 * memory and written with one statement per table. */
#ifndef LF_ROUTER_BATCH_H
#define LF_ROUTER_BATCH_H

#include <jansson.h>
#include <stddef.h>

#include "lf/consumer.h"
#include "lf/db.h"

/* lf_consumer_set_batch_fn handler (arg: the lf_router_ctx_t). Under the locks of
 * lf_route_on_begin, in the batch's one transaction (the consumer has inserted all of
 * its acks with one statement): one statement reads every lead of the batch, the
 * decisions are made in memory in seq order, and one statement writes them all (leads,
 * reps counts with the capacity guard, assignments, their explanation, timeline,
 * notifications and lead.assigned events). An event that needs the lead as the earlier
 * decisions left it (a re-grade, a reassignment, a second event for a lead of the same
 * batch) is handled by lf_route_event after the decisions before it were written.
 * Returns 0, or -1 on a failure: the cached pool and the batch's counts are dropped and
 * the consumer rolls back and handles the events one by one (lf_route_event), so a
 * poison event is parked alone. */
int lf_route_batch(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                   void *arg);

#endif
