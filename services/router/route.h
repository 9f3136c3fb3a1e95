/* route.h - grading and assignment of one lead against PostgreSQL. */
#ifndef LF_ROUTER_ROUTE_H
#define LF_ROUTER_ROUTE_H

#include <jansson.h>

#include "assign.h"
#include "lf/consumer.h"
#include "lf/db.h"
#include "scorecard.h"

typedef struct {
    lf_scorecard_t *scorecard; /* borrowed */
    json_t *routing;           /* borrowed: config/routing.json */
    long routed;               /* leads graded and assigned by this process */
} lf_router_ctx_t;

/* Consumer callback for lead.created (and later re-grade events): grades the lead,
 * assigns it under the routing lock and records grade, owner, reason, candidates,
 * timeline entries and a lead.assigned event, all in the consumer's transaction.
 * A lead that already has an assignment is left alone (idempotent). Returns 0, or
 * -1 on a database error. */
int lf_route_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);

#endif
