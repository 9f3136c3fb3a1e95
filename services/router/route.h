/* route.h - grading, assignment, re-grading and reassignment of leads against
 * PostgreSQL. */
#ifndef LF_ROUTER_ROUTE_H
#define LF_ROUTER_ROUTE_H

#include <jansson.h>

#include "assign.h"
#include "lf/consumer.h"
#include "lf/db.h"
#include "lf/teams.h"
#include "scorecard.h"

typedef struct {
    lf_scorecard_t *scorecard; /* borrowed */
    json_t *routing;           /* borrowed: config/routing.json */
    const lf_teams_t *teams;   /* borrowed: the teams of routing.json (NULL = none) */
    void *pub;                 /* borrowed PUB socket for the pool tick's events */
    lf_db_t *db;               /* borrowed: the connection the pool tick uses */
    json_t *tick_pub;          /* owned: events of the open pool tick */
    long pooled_routed;        /* pool leads routed again by the tick */
    long pool_escalated;       /* pool leads escalated to a manager */
    long routed;               /* leads graded and assigned by this process */
    long regraded;             /* leads re-graded after their facts changed */
    long reassigned;           /* leads handed to another rep or the queue */
    long rebuilds;             /* times the cached pool was rebuilt from the reps table */
    /* Decisions of the open batch: they count once the batch commits. */
    long pending_routed, pending_regraded, pending_reassigned;
    /* The cached pool and the state of the database it matches. */
    lf_pool_t *pool;        /* owned; NULL until first needed or after a failure */
    long long reps_n;       /* count(*) of reps when the pool was (re)built */
    long long reps_version; /* sum(reps.version) the pool reflects */
    char instance[24];      /* random id of this process, for ledger tokens */
    unsigned long writes;   /* ledger writes by this process */
    char token[48];         /* the writer token of our last committed ledger write */
    char pending_token[48]; /* the token written by the open batch, until it commits */
    int ledger_dirty;       /* the open batch made decisions the ledger lacks */
    int batch_locked; /* the open batch holds the routing lock (lf_route_on_begin) */
    /* Hot statements prepared on the current connection (see route.c). */
    const void *prep_conn; /* the PGconn they were prepared on */
    int prep_pid;          /* and its backend pid (a new PGconn may reuse the address) */
    unsigned prepared;     /* bit per prepared statement */
    /* The batch path's statements (batch.c), built for the type of leads.id. */
    char id_type[16];   /* "text" or "uuid", "" until read */
    char *batch_sql[2]; /* owned: the prelude and the write statement */
} lf_router_ctx_t;

/* Maps the lead's typed region and industry to vocabulary ids in place ("region" /
 * "industry" become the ids, "region_raw" / "industry_raw" get what was typed; text the
 * vocabulary does not know stays as typed) and returns the lead's team by the team
 * rules: borrowed from `teams`, NULL = no team (the whole pool). teams NULL: no mapping,
 * no team. */
const char *lf_route_map_lead(const lf_teams_t *teams, json_t *lead);

/* Prepares the context's cache (scorecard and routing must be set). */
void lf_router_ctx_init(lf_router_ctx_t *ctx);
/* Frees the cached pool. */
void lf_router_ctx_fini(lf_router_ctx_t *ctx);

/* Consumer callback, all in the consumer's transaction under the routing lock:
 * - lead.created: grades the lead, assigns it and records grade, owner, reason,
 *   candidates, timeline entries and a lead.assigned event. A lead that already has
 *   an assignment is left alone (idempotent).
 * - lead.updated, lead.merged: re-grades an assigned lead (its owner stays); a lead
 *   not assigned yet is routed as if new.
 * - lead.reassign ({"reason", "exclude": [rep ids]}): hands an open lead to another
 *   rep, excluding every previous owner, or to the fallback queue; publishes
 *   lead.reassigned.
 * Returns 0, or -1 on a database error. */
int lf_route_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg);

/* lf_consumer_on_begin hook: takes the routing lock, then every lead of the batch in
 * id order, before anything else of the batch (route.c says why). Returns 0 or -1. */
int lf_route_on_begin(void *arg, lf_db_t *db, json_t *const *envs, size_t n);

/* Builds a pool from rep objects, leaving out (and logging) any rep the pool refuses,
 * so one bad row cannot stop all routing. Returns NULL only when the routing rules
 * themselves are bad (`err` says why). Borrowed: both arguments. Caller owns it. */
lf_pool_t *lf_route_pool(const json_t *reps, const json_t *routing, char *err,
                         size_t errsz);

/* lf_consumer_on_batch hook: moves the open batch's counts into the totals when it
 * committed, drops them when it rolled back (and then forgets which ledger the
 * cached pool matches, so it is rebuilt). */
void lf_route_on_batch(void *arg, int committed);
/* lf_consumer_before_commit hook: writes the fairness ledger (rotation positions and
 * counts) once for the batch's decisions, still under the routing lock, with a fresh
 * writer token. Returns 0 or -1. */
int lf_route_before_commit(void *arg, lf_db_t *db);

/* lf_loop_t tick: the pool. Leads waiting in a pool for a reason their team routes
 * automatically (auto_route) are routed again, oldest first, as soon as someone is
 * eligible (a shift started, capacity freed up, a rep was added or came back); a lead
 * for whom still nobody is eligible is left alone, with nothing written. Leads waiting
 * longer than their team's pool SLA in business time are escalated once to the team's
 * manager. One transaction under the routing lock; events are published on ctx->pub
 * after it commits. Returns the milliseconds until the next run (-1 = the default). */
int lf_route_pool_tick(void *arg);

/* ---- shared with the set-based batch path (batch.c) ---- */

/* Webmail domains as a PostgreSQL text[] literal: they never make a customer "known"
 * by e-mail domain. */
extern const char lf_route_public_domains[];

/* The mapped facts of a lead, as statement parameters (borrowed from the lead). */
typedef struct {
    const char *team, *region, *region_raw, *industry, *industry_raw;
} lf_route_facts_t;

/* Maps the lead's region and industry (lf_route_map_lead, changing `lead` in place) and
 * returns its facts, borrowed from `lead` and the teams. */
lf_route_facts_t lf_route_facts(lf_router_ctx_t *ctx, json_t *lead);

/* Makes ctx->pool match the database whose routing fingerprint is count(reps) `n`,
 * sum(reps.version) `v` and ledger writer token `writer` (read under the routing lock):
 * the cached pool when nothing changed since this process last wrote, else rebuilt from
 * the reps table and routing_ledger. Returns 0, or -1 (no pool). */
int lf_route_pool_ready(lf_router_ctx_t *ctx, lf_db_t *db, long long n, long long v,
                        const char *writer);

/* Decisions were written in the open transaction and `bumps` reps rows were updated
 * (each update bumps reps.version): the cached pool still matches the database, and
 * the ledger is written before the batch commits. */
void lf_route_decided(lf_router_ctx_t *ctx, long bumps);

#endif
