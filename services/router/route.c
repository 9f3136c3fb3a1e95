/* route.c - leads through the scorecard and the assignment pool, durably.
 *
 * Several router instances may run against one database. Assignment reads and moves
 * shared state (who is next in the rotation, each rep's open count against their
 * capacity), so it runs under a transaction-scoped advisory lock: instances take
 * turns, a rep is never pushed over capacity and the rotation never skips or
 * repeats. The lock is taken by the first event of a consumer batch and held until
 * that batch commits, so one lock round covers a whole batch of decisions.
 *
 * The pool is cached between events. Under the lock, one query reads the lead and a
 * fingerprint of the shared state: count(reps), sum(reps.version) (a trigger bumps
 * version on every change of a rep row, see 0003_router.sql) and the token of the
 * last writer of the fairness ledger. When the fingerprint is exactly what this
 * process left behind, nobody else changed anything and the cached pool (open counts
 * and rotation included) is current; otherwise it is rebuilt from the reps table and
 * routing_ledger. The ledger is written once per batch, just before it commits
 * (lf_route_before_commit), with a fresh token; a rolled-back batch leaves the old
 * ledger in the database and clears our token, so it forces a rebuild as well. Edits to
 * reps (capacity, leave, new hires) therefore take effect on the next lead without a
 * restart.
 *
 * A consumer batch is decided as a set and written with one statement per table by
 * batch.c; the per-lead functions here handle the events it hands over one by one (a
 * re-grade, a reassignment), the event-by-event retry of a failed batch, and the pool
 * tick. */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lf/event.h"
#include "lf/log.h"
#include "lf/pgarray.h"
#include "lf/util.h"

#define S_ROUTING_LOCK "727002"

/* Lock order (the project's one order, docs/reliability.md): the routing lock, then
 * every lead of the batch by id (FOR NO KEY UPDATE), then reps rows as decisions are
 * recorded. Stage moves take a lead, then its owner's reps row; so do merges (FOR
 * SHARE on the lead). Taking the leads one by one as events come instead would hold rep
 * A (decided for lead 1) while waiting for lead 2, whose stage move waits for rep A: a
 * deadlock, which PostgreSQL resolves by failing one side (a 503 for the move). */

/* Webmail domains say nothing about the company, so they never make a customer
 * "known" by e-mail domain. */
const char lf_route_public_domains[] =
    "{qq.com,163.com,126.com,sina.com,sohu.com,yeah.net,foxmail.com,aliyun.com,139.com,"
    "gmail.com,outlook.com,hotmail.com,yahoo.com,icloud.com,live.com}";

/* The lead, its known-customer owner, its previous owners and the fingerprint of
 * the shared routing state, in one round trip. */
static const char *s_prelude_sql =
    "SELECT lf_lead_canonical(l)::text, l.assigned_at IS NOT NULL, l.owner, l.grade,"
    " l.stage,"
    " (SELECT s.owner FROM ("
    "   (SELECT k.owner, k.created_at FROM leads k WHERE l.company_key <> ''"
    "     AND k.owner IS NOT NULL AND k.company_key IS NOT NULL AND k.company_key <> ''"
    "     AND k.company_key = l.company_key AND k.id <> l.id"
    "     ORDER BY k.created_at DESC LIMIT 1)"
    "   UNION ALL"
    "   (SELECT k.owner, k.created_at FROM leads k WHERE l.email IS NOT NULL"
    "     AND k.owner IS NOT NULL AND k.email IS NOT NULL"
    "     AND lower(split_part(k.email, '@', 2)) = lower(split_part(l.email, '@', 2))"
    "     AND NOT lower(split_part(l.email, '@', 2)) = ANY ($2::text[]) AND k.id <> l.id"
    "     ORDER BY k.created_at DESC LIMIT 1)"
    "  ) s ORDER BY s.created_at DESC LIMIT 1),"
    " (SELECT coalesce(json_agg(DISTINCT a.rep_id), '[]')::text FROM assignments a"
    "   WHERE a.lead_id = l.id AND a.rep_id IS NOT NULL),"
    " (SELECT count(*) FROM reps), (SELECT coalesce(sum(version), 0) FROM reps),"
    " (SELECT writer FROM routing_ledger WHERE team = '*')"
    " FROM leads l WHERE l.id = $1 FOR NO KEY UPDATE OF l";

enum {
    P_LEAD,
    P_ASSIGNED,
    P_OWNER,
    P_GRADE,
    P_STAGE,
    P_STICKY,
    P_PREV,
    P_N,
    P_V,
    P_WRITER
};

/* What the prelude found. Strings point into `res`. */
typedef struct {
    PGresult *res;
    json_t *lead;       /* owned */
    int assigned;       /* the lead has had a decision */
    const char *owner;  /* current owner or NULL */
    char grade;         /* stored grade or 0 */
    const char *stage;  /* pipeline stage */
    const char *sticky; /* known customer's owner or NULL */
    json_t *previous;   /* owned: rep ids of earlier assignments */
    long long n, v;     /* reps fingerprint */
    const char *writer; /* ledger writer token, "" when none */
} s_lead_t;

static const char *s_val(PGresult *res, int col) {
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

/* The hot statements are prepared once per connection: planning the decision
 * statement costs about as much as running it. Protocol-level prepared statements
 * outlive a rolled-back transaction; a reconnect (new PGconn, new backend) drops
 * them, which is how we notice. */
enum { S_PREP_PRELUDE, S_PREP_ASSIGN, S_PREP_N };
static const char *const s_prep_names[S_PREP_N] = {"lf_route_prelude", "lf_route_assign"};

static PGresult *s_prep_fail(lf_db_t *db, PGresult *res) {
    db->err = 1;
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(db->errstr, sizeof db->errstr, "query: %s [%s]",
             db->conn ? PQerrorMessage(db->conn) : "not connected", st ? st : "");
    for (char *c = db->errstr; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    PQclear(res);
    return NULL;
}

static PGresult *s_exec_prepared(lf_router_ctx_t *ctx, lf_db_t *db, int which,
                                 const char *sql, int n, const char *const *params) {
    if (lf_db_ensure(db) < 0)
        return NULL;
    if (ctx->prep_conn != db->conn || ctx->prep_pid != PQbackendPID(db->conn)) {
        ctx->prep_conn = db->conn;
        ctx->prep_pid = PQbackendPID(db->conn);
        ctx->prepared = 0;
    }
    PGresult *res;
    if (!(ctx->prepared & (1u << which))) {
        res = PQprepare(db->conn, s_prep_names[which], sql, n, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
            return s_prep_fail(db, res);
        PQclear(res);
        ctx->prepared |= 1u << which;
    }
    res = PQexecPrepared(db->conn, s_prep_names[which], n, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return s_prep_fail(db, res);
    db->err = 0;
    return res;
}

static void s_lead_clear(s_lead_t *l) {
    PQclear(l->res);
    json_decref(l->lead);
    json_decref(l->previous);
    memset(l, 0, sizeof *l);
}

/* Returns 1 when the lead was read, 0 for an unknown lead, -1 on a database error. */
static int s_prelude(lf_router_ctx_t *ctx, lf_db_t *db, const char *lead_id,
                     s_lead_t *l) {
    memset(l, 0, sizeof *l);
    if (!ctx->batch_locked &&
        lf_db_cmd(db, "SELECT pg_advisory_xact_lock(" S_ROUTING_LOCK ")", 0, NULL) < 0)
        return -1;
    const char *p[] = {lead_id, lf_route_public_domains};
    l->res = s_exec_prepared(ctx, db, S_PREP_PRELUDE, s_prelude_sql, 2, p);
    if (!l->res)
        return -1;
    if (PQntuples(l->res) != 1)
        return 0;
    l->lead = json_loads(PQgetvalue(l->res, 0, P_LEAD), 0, NULL);
    l->previous = json_loads(PQgetvalue(l->res, 0, P_PREV), 0, NULL);
    if (!l->lead || !l->previous) {
        lf_error("lead %s: unreadable row", lead_id);
        return -1;
    }
    l->assigned = PQgetvalue(l->res, 0, P_ASSIGNED)[0] == 't';
    l->owner = s_val(l->res, P_OWNER);
    l->grade = s_val(l->res, P_GRADE) ? s_val(l->res, P_GRADE)[0] : 0;
    l->stage = PQgetvalue(l->res, 0, P_STAGE);
    l->sticky = s_val(l->res, P_STICKY);
    l->n = atoll(PQgetvalue(l->res, 0, P_N));
    l->v = atoll(PQgetvalue(l->res, 0, P_V));
    l->writer = s_val(l->res, P_WRITER) ? s_val(l->res, P_WRITER) : "";
    return 1;
}

lf_pool_t *lf_route_pool(const json_t *reps, const json_t *routing, char *err,
                         size_t errsz) {
    lf_pool_t *pool = lf_pool_from_json(reps, routing, err, errsz);
    if (pool)
        return pool;
    /* Find the reps the pool refuses, one by one, and route without them. */
    json_t *good = json_array();
    size_t i;
    json_t *rep;
    json_array_foreach(reps, i, rep) {
        json_t *one = json_pack("[O]", rep);
        char why[256];
        lf_pool_t *p = lf_pool_from_json(one, routing, why, sizeof why);
        if (p)
            json_array_append(good, rep);
        else
            lf_error("rep left out of routing: %s", why);
        lf_pool_destroy(&p);
        json_decref(one);
    }
    pool = lf_pool_from_json(good, routing, err, errsz);
    json_decref(good);
    return pool;
}

void lf_router_ctx_init(lf_router_ctx_t *ctx) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(ctx->instance, sizeof ctx->instance, "%x%lx", (unsigned)getpid(),
             (unsigned long)ts.tv_nsec);
    ctx->tick_pub = json_array();
}

void lf_router_ctx_fini(lf_router_ctx_t *ctx) {
    lf_pool_destroy(&ctx->pool);
    for (int i = 0; i < 2; i++) {
        free(ctx->batch_sql[i]);
        ctx->batch_sql[i] = NULL;
    }
    json_decref(ctx->tick_pub);
    ctx->tick_pub = NULL;
}

int lf_route_pool_ready(lf_router_ctx_t *ctx, lf_db_t *db, long long n, long long v,
                        const char *writer) {
    if (ctx->pool && n == ctx->reps_n && v == ctx->reps_version &&
        strcmp(writer, ctx->token) == 0)
        return 0;
    lf_pool_destroy(&ctx->pool);
    PGresult *res =
        lf_db_exec(db,
                   "SELECT (SELECT coalesce(jsonb_agg(lf_rep_json(r) ORDER BY r.id), "
                   "'[]') FROM reps r)"
                   "::text, (SELECT state::text FROM routing_ledger WHERE team = '*')",
                   0, NULL);
    if (!res)
        return -1;
    json_t *reps = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *ledger =
        PQgetisnull(res, 0, 1) ? NULL : json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    PQclear(res);
    char err[256];
    ctx->pool = reps ? lf_route_pool(reps, ctx->routing, err, sizeof err) : NULL;
    if (!ctx->pool)
        lf_error("cannot build the assignment pool: %s", reps ? err : "bad reps JSON");
    else if (ledger && lf_pool_restore_ledger(ctx->pool, ledger) < 0)
        lf_warn("routing ledger is not shaped like a ledger; rotation starts afresh");
    json_decref(reps);
    json_decref(ledger);
    if (!ctx->pool)
        return -1;
    ctx->reps_n = n;
    ctx->reps_version = v;
    lf_strlcpy(ctx->token, writer, sizeof ctx->token);
    ctx->rebuilds++;
    return 0;
}

/* Makes ctx->pool match the database as seen by the prelude. Returns 0 or -1. */
static int s_pool_ready(lf_router_ctx_t *ctx, lf_db_t *db, const s_lead_t *l) {
    return lf_route_pool_ready(ctx, db, l->n, l->v, l->writer);
}

void lf_route_decided(lf_router_ctx_t *ctx, long bumps) {
    ctx->reps_version += bumps;
    ctx->ledger_dirty = 1;
}

/* The decision is in the database (in this transaction): remember the reps state
 * the cached pool now matches. The ledger (rotation and counts) is written once, when
 * the batch commits (lf_route_before_commit). */
static void s_decided(lf_router_ctx_t *ctx, const s_lead_t *l, long bumps) {
    ctx->reps_version = l->v + bumps;
    ctx->ledger_dirty = 1;
}

int lf_route_before_commit(void *arg, lf_db_t *db) {
    lf_router_ctx_t *ctx = arg;
    if (!ctx->ledger_dirty || !ctx->pool)
        return 0;
    char *text = lf_pool_ledger_text(ctx->pool);
    char token[sizeof ctx->pending_token];
    snprintf(token, sizeof token, "%s:%lu", ctx->instance, ++ctx->writes);
    const char *p[] = {text, token};
    long n = lf_db_cmd(db,
                       "INSERT INTO routing_ledger (team, state, updated_at, writer)"
                       " VALUES ('*', $1::jsonb, now(), $2) ON CONFLICT (team) DO UPDATE"
                       " SET state = EXCLUDED.state, writer = EXCLUDED.writer,"
                       " updated_at = now()",
                       2, p);
    free(text);
    if (n < 0)
        return -1;
    lf_strlcpy(ctx->pending_token, token, sizeof ctx->pending_token);
    ctx->ledger_dirty = 0;
    return 0;
}

static int s_grade(lf_router_ctx_t *ctx, const json_t *lead, int *score, char *grade,
                   json_t **breakdown) {
    return lf_scorecard_grade(ctx->scorecard, lead, score, grade, breakdown);
}

/* Events of a consumer batch go out when the consumer commits; those of the pool tick
 * (c == NULL) when the tick commits. */
static void s_publish(lf_router_ctx_t *ctx, lf_consumer_t *c, json_t *ev) {
    if (c)
        lf_consumer_publish_after_commit(c, ev);
    else if (ev)
        json_array_append_new(ctx->tick_pub, ev);
}

const char *lf_route_map_lead(const lf_teams_t *teams, json_t *lead) {
    if (!teams || !lead)
        return NULL;
    static const char *const keys[2][2] = {{"region", "region_raw"},
                                           {"industry", "industry_raw"}};
    for (int k = 0; k < 2; k++) {
        const char *typed = json_string_value(json_object_get(lead, keys[k][0]));
        if (!typed)
            continue;
        const char *id =
            k == 0 ? lf_teams_region(teams, typed) : lf_teams_industry(teams, typed);
        json_object_set_new(lead, keys[k][1], json_string(typed));
        if (id)
            json_object_set_new(lead, keys[k][0], json_string(id));
    }
    return lf_teams_route(teams, json_string_value(json_object_get(lead, "region")),
                          json_string_value(json_object_get(lead, "industry")),
                          json_string_value(json_object_get(lead, "channel")),
                          json_string_value(json_object_get(lead, "source")));
}

typedef lf_route_facts_t s_facts_t;

lf_route_facts_t lf_route_facts(lf_router_ctx_t *ctx, json_t *lead) {
    s_facts_t f;
    f.team = lf_route_map_lead(ctx->teams, lead);
    f.region = json_string_value(json_object_get(lead, "region"));
    f.region_raw = json_string_value(json_object_get(lead, "region_raw"));
    f.industry = json_string_value(json_object_get(lead, "industry"));
    f.industry_raw = json_string_value(json_object_get(lead, "industry_raw"));
    return f;
}

/* lead.created (or a fact change before the first decision): grade and assign. */
static int s_assign_new(lf_consumer_t *c, lf_db_t *db, lf_router_ctx_t *ctx,
                        const char *lead_id, const s_lead_t *l) {
    int rc = -1, score = 0;
    char grade = 'D';
    json_t *breakdown = NULL;
    lf_assign_result_t res;
    memset(&res, 0, sizeof res);
    char *bd_text = NULL, *cand_text = NULL;
    s_facts_t f = lf_route_facts(ctx, l->lead); /* graded on the mapped ids */
    if (s_grade(ctx, l->lead, &score, &grade, &breakdown) < 0)
        goto out;
    if (s_pool_ready(ctx, db, l) < 0)
        goto out;
    lf_assign_req_t req = {
        .industry = f.industry,
        .region = f.region,
        .team = f.team,
        .grade = grade,
        .preferred_owner = l->sticky,
        .exclude = NULL,
        .now = time(NULL),
    };
    if (lf_pool_assign(ctx->pool, &req, &res) < 0)
        goto out;

    char score_s[16], grade_s[2] = {grade, '\0'};
    snprintf(score_s, sizeof score_s, "%d", score);
    bd_text = json_dumps(breakdown, JSON_COMPACT);
    cand_text = json_dumps(res.candidates, JSON_COMPACT);
    const char *owner = res.rep_id[0] ? res.rep_id : NULL;
    const char *queue = res.queue[0] ? res.queue : NULL;
    const char *notify = res.notify[0] ? res.notify : NULL;
    const char *p[] = {lead_id,      grade_s,    score_s,        bd_text, owner,
                       res.reason,   queue,      cand_text,      f.team,  f.region,
                       f.region_raw, f.industry, f.industry_raw, notify,  l->sticky};
    /* One round trip records the whole decision: a lead nobody can take goes to its
     * team's pool (and the manager is told when the fallback says so); the owner of
     * an assigned one is told. The reps row is bumped only while the rep has room (the
     * sticky owner of a known customer may go over when the routing rules allow it):
     * the cached pool's view of capacity is checked by the database, whoever else
     * changed open counts. */
    PGresult *r = s_exec_prepared(
        ctx, db, S_PREP_ASSIGN,
        "WITH upd AS (UPDATE leads SET grade = $2, score = $3::int, score_breakdown = "
        "$4::jsonb, breakdown_dict = NULL, breakdown_codes = NULL,"
        "  graded_at = now(), owner = $5, assignment_reason = $6, queue = $7,"
        "  assigned_at = now(), updated_at = now(), team = $9,"
        "  region = $10, industry = $12,"
        "  region_raw = CASE WHEN $11::text IS DISTINCT FROM $10::text OR region_raw IS "
        "NULL"
        "   THEN $11 ELSE region_raw END,"
        "  industry_raw = CASE WHEN $13::text IS DISTINCT FROM $12::text"
        "   OR industry_raw IS NULL THEN $13 ELSE industry_raw END,"
        "  pool_reason = CASE WHEN $5::text IS NULL THEN 'no_eligible_rep' END,"
        "  pool_since = CASE WHEN $5::text IS NULL THEN now() END"
        "  WHERE id = $1 RETURNING channel, created_at),"
        " ntf AS (INSERT INTO notifications (lead_id, rep_id, kind, message)"
        "  SELECT $1, x.rep, x.kind, x.msg FROM (VALUES"
        "   ($5::text, 'lead_assigned', format('新线索 new lead %s (grade %s) is yours: "
        "%s',"
        "    $1, $2, $6)),"
        "   ($14::text, 'pool_waiting', format('待分配 lead %s (grade %s, team %s) waits "
        "in"
        " the pool: %s', $1, $2, coalesce($9, '-'), $6))) x(rep, kind, msg)"
        "  WHERE x.rep IS NOT NULL),"
        " rep AS (UPDATE reps SET open_count = open_count + 1,"
        "  assigned_total = assigned_total + 1 WHERE id = $5"
        "  AND (open_count < capacity OR id = $15) RETURNING id),"
        " cand AS MATERIALIZED (SELECT $8::jsonb AS j),"
        " asg AS (INSERT INTO assignments (lead_id, rep_id, queue, reason, candidates)"
        "  SELECT $1, $5, $7, $6, cand.j FROM cand RETURNING id),"
        " tl AS (INSERT INTO lead_events (lead_id, type, actor, data)"
        "  SELECT $1, 'graded', 'router', jsonb_build_object('grade', $2, 'score', "
        "$3::int,"
        "   'breakdown', $4::jsonb)"
        "  UNION ALL"
        "  SELECT $1, CASE WHEN $5::text IS NULL THEN 'queued' ELSE 'assigned' END, "
        "'router',"
        "   jsonb_build_object('owner', $5, 'queue', $7, 'reason', $6, 'team', $9::text,"
        "   'pool_reason', CASE WHEN $5::text IS NULL THEN 'no_eligible_rep' END,"
        "   'notified', $14::text, 'candidates', cand.j) FROM cand)"
        " SELECT upd.channel, lf_rfc3339(upd.created_at), (SELECT count(*) FROM rep),"
        "  (SELECT count(*) FROM asg) FROM upd",
        15, p);
    if (!r)
        goto out;
    if (PQntuples(r) != 1) {
        PQclear(r);
        lf_error("lead %s vanished while being routed", lead_id);
        goto out;
    }
    long bumps = atol(PQgetvalue(r, 0, 2));
    if (owner && bumps == 0) {
        /* The pool thought the rep had room; the database says no. The batch rolls
         * back and the pool is rebuilt from the database. */
        PQclear(r);
        lf_warn("rep over capacity in the database, routing again lead=%s rep=%s",
                lead_id, owner);
        goto out;
    }
    json_t *payload =
        json_pack("{s:s, s:i, s:s?, s:s?, s:s, s:s, s:s, s:s?, s:s?}", "grade", grade_s,
                  "score", score, "owner", owner, "queue", queue, "reason", res.reason,
                  "channel", PQgetvalue(r, 0, 0), "created_at", PQgetvalue(r, 0, 1),
                  "team", f.team, "pool_reason", owner ? NULL : "no_eligible_rep");
    PQclear(r);
    json_t *ev = lf_outbox_add(db, "lead.assigned", lead_id, payload);
    json_decref(payload);
    if (!ev)
        goto out;
    s_publish(ctx, c, ev);
    s_decided(ctx, l, bumps);
    ctx->pending_routed++;
    rc = 0;
out:
    free(bd_text);
    free(cand_text);
    json_decref(res.candidates);
    json_decref(breakdown);
    return rc;
}

/* lead.updated / lead.merged on an assigned lead: new grade, same owner. */
static int s_regrade(lf_consumer_t *c, lf_db_t *db, lf_router_ctx_t *ctx,
                     const char *lead_id, const s_lead_t *l, const char *cause) {
    int score = 0;
    char grade = 'D';
    json_t *breakdown = NULL;
    s_facts_t f = lf_route_facts(ctx, l->lead);
    if (s_grade(ctx, l->lead, &score, &grade, &breakdown) < 0)
        return -1;
    char score_s[16], grade_s[2] = {grade, '\0'};
    snprintf(score_s, sizeof score_s, "%d", score);
    char *bd_text = json_dumps(breakdown, JSON_COMPACT);
    json_decref(breakdown);
    const char *p[] = {lead_id, grade_s,  score_s,      bd_text,    cause,
                       f.team,  f.region, f.region_raw, f.industry, f.industry_raw};
    /* The facts may have changed: their ids and the team follow; the owner stays. */
    PGresult *r = lf_db_exec(
        db,
        "WITH old AS (SELECT grade::text AS grade, score FROM leads WHERE id = $1),"
        " upd AS (UPDATE leads SET grade = $2, score = $3::int, score_breakdown = "
        "$4::jsonb, breakdown_dict = NULL, breakdown_codes = NULL,"
        "  graded_at = now(), updated_at = now(), team = $6, region = $7, industry = $9,"
        "  region_raw = CASE WHEN $8::text IS DISTINCT FROM $7::text OR region_raw IS "
        "NULL"
        "   THEN $8 ELSE region_raw END,"
        "  industry_raw = CASE WHEN $10::text IS DISTINCT FROM $9::text"
        "   OR industry_raw IS NULL THEN $10 ELSE industry_raw END"
        "  WHERE id = $1 RETURNING id),"
        " tl AS (INSERT INTO lead_events (lead_id, type, actor, data)"
        "  SELECT $1, 'regraded', 'router', jsonb_build_object('grade', $2,"
        "   'score', $3::int, 'previous_grade', old.grade, 'previous_score', old.score,"
        "   'breakdown', $4::jsonb, 'cause', $5::text) FROM old, upd"
        "  WHERE old.grade IS DISTINCT FROM $2 OR old.score IS DISTINCT FROM $3::int"
        "  RETURNING id)"
        " SELECT old.grade, old.score, (SELECT count(*) FROM tl) FROM old",
        10, p);
    free(bd_text);
    if (!r)
        return -1;
    int changed = PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 2)) > 0;
    int grade_changed =
        PQntuples(r) == 1 && (PQgetisnull(r, 0, 0) || PQgetvalue(r, 0, 0)[0] != grade);
    char prev[2] = {
        PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0)[0] : 0, '\0'};
    PQclear(r);
    if (grade_changed) {
        json_t *pl = json_pack("{s:s, s:i, s:s?, s:s}", "grade", grade_s, "score", score,
                               "previous_grade", prev[0] ? prev : NULL, "cause", cause);
        json_t *ev = lf_outbox_add(db, "lead.regraded", lead_id, pl);
        json_decref(pl);
        if (!ev)
            return -1;
        s_publish(ctx, c, ev);
    }
    if (changed)
        ctx->pending_regraded++;
    return 0;
}

/* Appends the rep ids of arr (an array of strings) to list, skipping duplicates.
 * Strings are borrowed from arr. */
static void s_add_ids(const char **list, size_t *n, size_t cap, const json_t *arr) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (!s || !*s || *n + 1 >= cap)
            continue;
        size_t k = 0;
        while (k < *n && strcmp(list[k], s))
            k++;
        if (k == *n)
            list[(*n)++] = s;
    }
    list[*n] = NULL;
}

/* lead.reassign ({"reason", "exclude": [...], "by": who asked, "pool_reason": why it
 * goes to the pool if nobody fits}) and the pool tick: another rep (never a previous
 * owner) or the pool. With only_if_eligible (the pool tick) nothing at all is written
 * when nobody is eligible. Returns 1 when the lead got an owner, 0 when it did not (or
 * was left alone), -1 on a database error. */
static int s_reassign(lf_consumer_t *c, lf_db_t *db, lf_router_ctx_t *ctx,
                      const char *lead_id, const s_lead_t *l, const json_t *payload,
                      int only_if_eligible) {
    if (!strcmp(l->stage, "won") || !strcmp(l->stage, "lost")) {
        lf_info("reassign ignored: lead is closed lead=%s stage=%s", lead_id, l->stage);
        return 0;
    }
    int rc = -1;
    lf_assign_result_t res;
    memset(&res, 0, sizeof res);
    char *cand_text = NULL;
    const char *cause = json_string_value(json_object_get(payload, "reason"));
    const char *by = json_string_value(json_object_get(payload, "by"));
    const char *pool_reason = json_string_value(json_object_get(payload, "pool_reason"));
    if (lf_pool_reason_parse(pool_reason) < 0)
        pool_reason = NULL;
    if (!cause)
        cause = "reassign";
    s_facts_t f = lf_route_facts(ctx, l->lead);
    char grade = l->grade;
    if (!grade) {
        int score;
        json_t *bd = NULL;
        if (s_grade(ctx, l->lead, &score, &grade, &bd) < 0)
            return -1;
        json_decref(bd);
    }
    /* Everyone who ever owned the lead, plus whoever the event names. */
    const char *exclude[130];
    size_t n = 0;
    exclude[0] = NULL;
    json_t *owner_arr = json_pack("[s?]", l->owner);
    s_add_ids(exclude, &n, 130, owner_arr);
    s_add_ids(exclude, &n, 130, l->previous);
    s_add_ids(exclude, &n, 130, json_object_get(payload, "exclude"));
    if (s_pool_ready(ctx, db, l) < 0)
        goto out;
    lf_assign_req_t req = {
        .industry = f.industry,
        .region = f.region,
        .team = f.team,
        .grade = grade,
        .preferred_owner = NULL,
        .exclude = exclude,
        .now = time(NULL),
    };
    if (lf_pool_assign(ctx->pool, &req, &res) < 0)
        goto out;
    if (only_if_eligible && !res.rep_id[0]) {
        rc = 0; /* still nobody: stays in the pool as it is, nothing written */
        goto out;
    }
    if (l->owner)
        lf_pool_release(ctx->pool, l->owner);
    cand_text = json_dumps(res.candidates, JSON_COMPACT);
    const char *owner = res.rep_id[0] ? res.rep_id : NULL;
    const char *queue = res.queue[0] ? res.queue : NULL;
    const char *notify = res.notify[0] ? res.notify : NULL;
    const char grade_s[2] = {grade, '\0'};
    const char *p[] = {lead_id, owner,  res.reason,  queue, cand_text, l->owner,
                       cause,   f.team, pool_reason, by,    notify,    grade_s};
    PGresult *r = lf_db_exec(
        db,
        "WITH upd AS (UPDATE leads SET owner = $2, assignment_reason = $3, queue = $4,"
        "  assigned_at = now(), updated_at = now(), team = $8,"
        "  pool_reason = CASE WHEN $2::text IS NULL THEN coalesce($9::text,"
        "   CASE WHEN owner IS NULL THEN pool_reason END, 'no_eligible_rep') END,"
        "  pool_since = CASE WHEN $2::text IS NULL THEN"
        "   CASE WHEN owner IS NULL THEN coalesce(pool_since, now()) ELSE now() END END"
        "  WHERE id = $1 RETURNING pool_reason),"
        " dec AS (UPDATE reps SET open_count = greatest(open_count - 1, 0)"
        "  WHERE id = $6 RETURNING id),"
        " inc AS (UPDATE reps SET open_count = open_count + 1,"
        "  assigned_total = assigned_total + 1 WHERE id = $2"
        "  AND open_count < capacity RETURNING id),"
        " asg AS (INSERT INTO assignments (lead_id, rep_id, queue, reason, candidates, "
        "kind)"
        "  VALUES ($1, $2, $4, $3, $5::jsonb, 'reassign') RETURNING id),"
        " tl AS (INSERT INTO lead_events (lead_id, type, actor, data)"
        "  SELECT $1, 'reassigned', coalesce($10, 'router'), jsonb_build_object("
        "   'from', $6::text, 'owner', $2, 'queue', $4, 'reason', $3, 'cause', $7::text,"
        "   'by', $10::text, 'team', $8::text, 'pool_reason', upd.pool_reason,"
        "   'candidates', $5::jsonb) FROM upd),"
        " ntf AS (INSERT INTO notifications (lead_id, rep_id, kind, message)"
        "  SELECT $1, x.rep, x.kind, x.msg FROM (VALUES"
        "   ($2::text, 'lead_assigned', format('线索转交 lead %s (grade %s) is now yours"
        " (%s): %s', $1, $12::text, $7, $3)),"
        "   ($6::text, 'lead_reassigned', format('线索转出 lead %s went to %s (%s)', $1,"
        "    coalesce($2, 'the pool'), $7)),"
        "   ($11::text, 'pool_waiting', format('待分配 lead %s (grade %s, team %s) waits "
        "in"
        " the pool: %s', $1, $12::text, coalesce($8, '-'), $3))) x(rep, kind, msg)"
        "  WHERE x.rep IS NOT NULL AND ($2::text IS DISTINCT FROM $6::text))"
        " SELECT (SELECT count(*) FROM dec) + (SELECT count(*) FROM inc),"
        "  (SELECT count(*) FROM asg), upd.pool_reason, (SELECT count(*) FROM inc)"
        " FROM upd",
        12, p);
    if (!r)
        goto out;
    long bumps = PQntuples(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : 0;
    if (owner && !(PQntuples(r) == 1 && atol(PQgetvalue(r, 0, 3)) == 1)) {
        /* The pool thought the rep had room; the database says no. */
        PQclear(r);
        lf_warn("rep over capacity in the database, routing again lead=%s rep=%s",
                lead_id, owner);
        goto out;
    }
    json_t *pl = json_pack(
        "{s:s?, s:s?, s:s?, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "from", l->owner, "owner",
        owner, "queue", queue, "reason", res.reason, "cause", cause, "grade", grade_s,
        "team", f.team, "by", by, "pool_reason",
        PQntuples(r) == 1 && !PQgetisnull(r, 0, 2) ? PQgetvalue(r, 0, 2) : NULL);
    PQclear(r);
    json_t *ev = lf_outbox_add(db, "lead.reassigned", lead_id, pl);
    json_decref(pl);
    if (!ev)
        goto out;
    s_publish(ctx, c, ev);
    s_decided(ctx, l, bumps);
    ctx->pending_reassigned++;
    lf_info("lead reassigned lead=%s from=%s to=%s cause=%s", lead_id,
            l->owner ? l->owner : "-", owner ? owner : "pool", cause);
    rc = owner ? 1 : 0;
out:
    json_decref(owner_arr);
    free(cand_text);
    json_decref(res.candidates);
    return rc;
}

/* The payload of the event `seq` as stored in the outbox: the sweep's light envelopes
 * (LF_BATCH_SEQ_ONLY) carry none. Sets *out to a new object, or NULL when the event has
 * none. Returns 0 or -1. */
static int s_payload(lf_db_t *db, long long seq, json_t **out) {
    char id[24];
    snprintf(id, sizeof id, "%lld", seq);
    const char *p[] = {id};
    *out = NULL;
    PGresult *r = lf_db_exec_prepared(
        db, "lf_route_payload", "SELECT payload::text FROM outbox WHERE id = $1", 1, p);
    if (!r)
        return -1;
    if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        *out = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
    PQclear(r);
    return 0;
}

int lf_route_event(lf_consumer_t *c, lf_db_t *db, const json_t *env, void *arg) {
    lf_router_ctx_t *ctx = arg;
    const char *lead_id = lf_event_lead(env);
    const char *type = lf_event_type(env);
    if (!lead_id || !type)
        return 0; /* nothing to route; the ack records that we saw it */
    s_lead_t l;
    int rc = s_prelude(ctx, db, lead_id, &l);
    if (rc <= 0) {
        s_lead_clear(&l);
        return rc; /* 0: unknown lead, nothing to do */
    }
    if (!strcmp(type, "lead.reassign") && l.assigned) {
        /* Only a reassignment reads its payload; a light envelope of the sweep has
         * none, so it is read from the outbox. */
        json_t *fetched = NULL;
        const json_t *payload = lf_event_payload(env);
        if (!payload && s_payload(db, lf_event_seq(env), &fetched) < 0)
            rc = -1;
        else
            rc = s_reassign(c, db, ctx, lead_id, &l, payload ? payload : fetched, 0) < 0
                     ? -1
                     : 0;
        json_decref(fetched);
    } else if (!strcmp(type, "lead.reassign"))
        rc = s_assign_new(c, db, ctx, lead_id, &l);
    else if (!strcmp(type, "lead.updated") || !strcmp(type, "lead.merged"))
        rc = l.assigned ? s_regrade(c, db, ctx, lead_id, &l, type)
                        : s_assign_new(c, db, ctx, lead_id, &l);
    else if (!strcmp(type, "lead.created"))
        rc = l.assigned ? 0 : s_assign_new(c, db, ctx, lead_id, &l);
    else
        rc = 0; /* a type we do not handle (SUB topics match by prefix) */
    s_lead_clear(&l);
    /* The pool may have moved for a decision that is being rolled back. */
    if (rc < 0)
        lf_pool_destroy(&ctx->pool);
    return rc;
}

int lf_route_on_begin(void *arg, lf_db_t *db, json_t *const *envs, size_t n) {
    lf_router_ctx_t *ctx = arg;
    lf_pgarray_t ids;
    lf_pgarray_init(&ids);
    for (size_t i = 0; i < n; i++)
        if (lf_event_lead(envs[i]))
            lf_pgarray_add(&ids, lf_event_lead(envs[i]));
    const char *p[] = {lf_pgarray_end(&ids)};
    int rc = -1;
    PGresult *res = lf_db_exec_prepared(
        db, "lf_route_lock", "SELECT pg_advisory_xact_lock(" S_ROUTING_LOCK ")", 0, NULL);
    if (!res)
        goto out;
    PQclear(res);
    /* ORDER BY comes before the lock: the rows are locked in id order. A prepared
     * statement with the ids as one uuid[] (the primary key probed in id order): the
     * statement it replaces, planned at every batch with the ids as JSON (IN (SELECT
     * jsonb_array_elements_text(...)): a hash of the ids, a probe per id and a sort),
     * took 3.8-7.5 ms per batch in the whole stack (pg_stat_statements), this 0.7-1.5. */
    res =
        lf_db_exec_prepared(db, "lf_route_lock_leads",
                            "SELECT 1 FROM leads WHERE id = ANY ($1::uuid[]) ORDER BY id"
                            " FOR NO KEY UPDATE",
                            1, p);
    if (!res)
        goto out;
    PQclear(res);
    ctx->batch_locked = 1;
    rc = 0;
out:
    lf_pgarray_free(&ids);
    return rc;
}

void lf_route_on_batch(void *arg, int committed) {
    lf_router_ctx_t *ctx = arg;
    ctx->batch_locked = 0; /* the transaction, and its locks, ended */
    if (committed) {
        ctx->routed += ctx->pending_routed;
        ctx->regraded += ctx->pending_regraded;
        ctx->reassigned += ctx->pending_reassigned;
        if (ctx->pending_token[0])
            lf_strlcpy(ctx->token, ctx->pending_token, sizeof ctx->token);
    } else {
        /* The database kept the ledger of before the batch, the pool moved on:
         * an empty token never matches, so the next lead rebuilds the pool. */
        ctx->token[0] = '\0';
    }
    ctx->pending_token[0] = '\0';
    ctx->ledger_dirty = 0;
    ctx->pending_routed = ctx->pending_regraded = ctx->pending_reassigned = 0;
}

/* ---- the pool tick ---- */

/* The tick's two scans read only the leads waiting in a pool, through the partial
 * index leads_pool (pool_reason IS NOT NULL). On a database whose statistics of leads
 * are missing or old (a fresh one, or one that grew fast since autovacuum last
 * analyzed it) the planner scanned all of leads instead, every tick: 5.6 ms at 3,000
 * leads, ~2 us per lead, i.e. hundreds of ms at a few hundred thousand, during which
 * the router routes nothing. So sequential scans are off for those two statements.
 * The same stale statistics (thousands of pool leads guessed where there were none)
 * made the escalation scan a parallel plan: a worker process started for each tick,
 * 16-24 ms of waiting for it in a whole-stack run (bench/stack.sh with auto_explain,
 * 7 ticks of 8 in one run) to read an empty index. A pool tick never reads enough for a
 * worker to pay, so parallel plans are off for both as well. SET LOCAL: this
 * transaction only, back to the defaults after each. Returns 0 or -1. */
static int s_pool_scan(lf_db_t *db, int begin) {
    static const char *const on[] = {"SET LOCAL enable_seqscan = off",
                                     "SET LOCAL max_parallel_workers_per_gather = 0"};
    static const char *const off[] = {
        "SET LOCAL enable_seqscan TO DEFAULT",
        "SET LOCAL max_parallel_workers_per_gather TO DEFAULT"};
    for (int i = 0; i < 2; i++)
        if (lf_db_cmd(db, begin ? on[i] : off[i], 0, NULL) < 0)
            return -1;
    return 0;
}

/* Routes the auto-routable pool leads again where someone is now eligible. Returns the
 * number routed, or -1. */
static int s_pool_route(lf_router_ctx_t *ctx, lf_db_t *db) {
    /* Only the reasons some team routes by itself: claim-only leads (公海) never
     * crowd the scan. */
    json_t *reasons = json_array();
    for (int r = 0; r < LF_POOL_REASONS; r++)
        if (lf_teams_any_auto_route(ctx->teams, (lf_pool_reason_t)r))
            json_array_append_new(reasons, json_string(lf_pool_reason_name(r)));
    char *rtext = json_dumps(reasons, JSON_COMPACT);
    json_decref(reasons);
    const char *p[] = {rtext};
    /* One snapshot of the candidates and of the reps' fingerprint (under the routing
     * lock): whether anyone is eligible is answered from the cached pool, so a pool
     * that stays full all night costs one query per tick, not a locked read per lead. */
    if (s_pool_scan(db, 1) < 0) {
        free(rtext);
        return -1;
    }
    PGresult *res = lf_db_exec(
        db,
        "SELECT l.id, l.team, l.pool_reason, lf_lead_canonical(l)::text, l.grade,"
        " (SELECT coalesce(json_agg(DISTINCT a.rep_id), '[]')::text FROM assignments a"
        "   WHERE a.lead_id = l.id AND a.rep_id IS NOT NULL),"
        " (SELECT count(*) FROM reps), (SELECT coalesce(sum(version), 0) FROM reps),"
        " (SELECT writer FROM routing_ledger WHERE team = '*')"
        " FROM leads l WHERE l.pool_reason IS NOT NULL AND l.pool_reason IN"
        " (SELECT jsonb_array_elements_text($1::jsonb)) AND l.stage NOT IN ('won', "
        "'lost')"
        " ORDER BY l.pool_since, l.id LIMIT 500",
        1, p);
    free(rtext);
    if (!res || s_pool_scan(db, 0) < 0) {
        PQclear(res);
        return -1;
    }
    int routed = 0;
    json_t *todo = json_array(); /* rows of res to route */
    if (PQntuples(res) > 0) {
        s_lead_t fp;
        memset(&fp, 0, sizeof fp);
        fp.n = atoll(PQgetvalue(res, 0, 6));
        fp.v = atoll(PQgetvalue(res, 0, 7));
        fp.writer = PQgetisnull(res, 0, 8) ? "" : PQgetvalue(res, 0, 8);
        if (s_pool_ready(ctx, db, &fp) < 0) {
            json_decref(todo);
            PQclear(res);
            return -1;
        }
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const lf_team_t *team = lf_teams_get(
            ctx->teams, PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1));
        int reason = lf_pool_reason_parse(PQgetvalue(res, i, 2));
        if (reason < 0 || !team->auto_route[reason])
            continue;
        /* Anyone eligible? Asked of the cached pool, recording nothing. */
        json_t *lead = json_loads(PQgetvalue(res, i, 3), 0, NULL);
        json_t *prev = json_loads(PQgetvalue(res, i, 5), 0, NULL);
        s_facts_t f = lf_route_facts(ctx, lead);
        char grade = PQgetisnull(res, i, 4) ? 0 : PQgetvalue(res, i, 4)[0];
        if (!grade) {
            int score;
            json_t *bd = NULL;
            if (s_grade(ctx, lead, &score, &grade, &bd) < 0)
                grade = 'D';
            json_decref(bd);
        }
        const char *exclude[130];
        size_t n = 0;
        exclude[0] = NULL;
        s_add_ids(exclude, &n, 130, prev);
        lf_assign_req_t req = {.industry = f.industry,
                               .region = f.region,
                               .team = f.team,
                               .grade = grade,
                               .exclude = exclude,
                               .now = time(NULL)};
        int eligible = ctx->pool ? lf_pool_eligible(ctx->pool, &req) : 1;
        json_decref(lead);
        json_decref(prev);
        if (eligible > 0)
            json_array_append_new(todo, json_integer(i));
    }
    /* The leads to route are locked up front, in id order (the lock order of this
     * file's head comment: leads, then reps), not one by one between reps updates. */
    if (json_array_size(todo) > 0) {
        json_t *ids = json_array();
        size_t k;
        json_t *v;
        json_array_foreach(todo, k, v) json_array_append_new(
            ids, json_string(PQgetvalue(res, (int)json_integer_value(v), 0)));
        char *text = json_dumps(ids, JSON_COMPACT);
        json_decref(ids);
        const char *q[] = {text};
        long locked = lf_db_cmd(db,
                                "SELECT 1 FROM leads WHERE id IN (SELECT "
                                "jsonb_array_elements_text($1::jsonb)::uuid) ORDER BY id "
                                "FOR NO KEY UPDATE",
                                1, q);
        free(text);
        if (locked < 0) {
            json_decref(todo);
            PQclear(res);
            return -1;
        }
    }
    size_t k;
    json_t *v;
    json_array_foreach(todo, k, v) {
        int i = (int)json_integer_value(v);
        const char *id = PQgetvalue(res, i, 0);
        s_lead_t l;
        int rc = s_prelude(ctx, db, id, &l);
        if (rc > 0 && l.assigned && !l.owner) { /* still in the pool */
            json_t *pl = json_pack("{s:s, s:s}", "reason", "pool", "pool_reason",
                                   PQgetvalue(res, i, 2));
            rc = s_reassign(NULL, db, ctx, id, &l, pl, 1);
            json_decref(pl);
            if (rc > 0)
                routed++;
        }
        s_lead_clear(&l);
        if (rc < 0) {
            json_decref(todo);
            PQclear(res);
            return -1;
        }
    }
    json_decref(todo);
    PQclear(res);
    return routed;
}

/* Applies each team's on_deactivate policy to the open leads of reps that were
 * deactivated: "keep" leaves them, "pool" puts them in the team's pool (owner_left),
 * "route" routes each again by the rules now (the pool, owner_left, when nobody is
 * eligible). However a rep was deactivated (API, SQL, a script), its leads are found
 * here. Returns the number of leads moved, or -1. */
static int s_pool_deactivated(lf_router_ctx_t *ctx, lf_db_t *db) {
    PGresult *res = lf_db_exec(
        db,
        "SELECT r.id, r.team FROM reps r WHERE NOT r.active AND EXISTS (SELECT 1 FROM"
        " leads l WHERE l.owner = r.id AND l.stage NOT IN ('won', 'lost')) ORDER BY r.id"
        " LIMIT 20",
        0, NULL);
    if (!res)
        return -1;
    int moved = 0;
    for (int i = 0; i < PQntuples(res) && moved >= 0; i++) {
        const char *rep = PQgetvalue(res, i, 0);
        const lf_team_t *team = lf_teams_get(ctx->teams, PQgetvalue(res, i, 1));
        if (team->on_deactivate == LF_DEACT_KEEP)
            continue;
        const char *p[] = {rep};
        if (team->on_deactivate == LF_DEACT_POOL) {
            PGresult *m = lf_db_exec(
                db,
                "SELECT (lf_move_lead(l.id, NULL, 'router', 'owner_left', 'the owner was"
                " deactivated', 'owner_left', $1, false, false)).envelope FROM leads l"
                " WHERE l.owner = $1 AND l.stage NOT IN ('won', 'lost')"
                " ORDER BY l.created_at, l.id LIMIT 500",
                1, p);
            if (!m) {
                moved = -1;
                break;
            }
            for (int k = 0; k < PQntuples(m); k++)
                if (!PQgetisnull(m, k, 0))
                    s_publish(ctx, NULL, json_loads(PQgetvalue(m, k, 0), 0, NULL));
            moved += PQntuples(m);
            PQclear(m);
            lf_pool_destroy(&ctx->pool); /* counts changed under it */
            continue;
        }
        PGresult *ids = lf_db_exec(db,
                                   "SELECT l.id FROM leads l WHERE l.owner = $1 AND"
                                   " l.stage NOT IN ('won', 'lost')"
                                   " ORDER BY l.created_at, l.id LIMIT 500",
                                   1, p);
        if (!ids) {
            moved = -1;
            break;
        }
        json_t *pl = json_pack("{s:s, s:s, s:s}", "reason", "owner_left", "by", "router",
                               "pool_reason", "owner_left");
        for (int k = 0; k < PQntuples(ids) && moved >= 0; k++) {
            s_lead_t l;
            int rc = s_prelude(ctx, db, PQgetvalue(ids, k, 0), &l);
            if (rc > 0 && l.owner && !strcmp(l.owner, rep))
                rc = s_reassign(NULL, db, ctx, PQgetvalue(ids, k, 0), &l, pl, 0);
            s_lead_clear(&l);
            if (rc < 0)
                moved = -1;
            else
                moved++;
        }
        json_decref(pl);
        PQclear(ids);
    }
    PQclear(res);
    if (moved > 0)
        lf_info("leads of deactivated reps moved n=%d", moved);
    return moved;
}

/* Escalates pool leads waiting longer than their team's pool SLA (business time) to
 * the team's manager, once per stay in the pool. Returns the number escalated, or -1. */
static int s_pool_escalate(lf_router_ctx_t *ctx, lf_db_t *db) {
    int64_t min_sla = lf_teams_min_pool_sla(ctx->teams);
    if (min_sla <= 0)
        return 0;
    char min_s[32];
    snprintf(min_s, sizeof min_s, "%lld", (long long)min_sla);
    const char *p[] = {min_s};
    /* Business time never runs faster than the wall clock, so only leads in the pool
     * for at least the shortest SLA can be due. */
    if (s_pool_scan(db, 1) < 0)
        return -1;
    PGresult *res = lf_db_exec(
        db,
        "SELECT l.id, l.team, l.pool_reason, extract(epoch FROM l.pool_since)::bigint,"
        "  lf_rfc3339(l.pool_since), l.grade FROM leads l"
        " WHERE l.pool_reason IS NOT NULL AND l.stage NOT IN ('won', 'lost')"
        "  AND l.pool_since < now() - make_interval(secs => $1::bigint)"
        "  AND NOT EXISTS (SELECT 1 FROM lead_events e WHERE e.lead_id = l.id"
        "   AND e.type = 'pool_escalated' AND e.at >= l.pool_since)"
        " ORDER BY l.pool_since, l.id LIMIT 200",
        1, p);
    if (!res || s_pool_scan(db, 0) < 0) {
        PQclear(res);
        return -1;
    }
    int n = 0;
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *team_name = PQgetisnull(res, i, 1) ? NULL : PQgetvalue(res, i, 1);
        const lf_team_t *team = lf_teams_get(ctx->teams, team_name);
        if (team->pool_sla_secs <= 0)
            continue;
        int64_t since = atoll(PQgetvalue(res, i, 3));
        int64_t due = lf_bizcal_add_seconds(team->calendar, since, team->pool_sla_secs);
        if (due < 0 || due > now)
            continue;
        char hours[32], due_s[40];
        snprintf(hours, sizeof hours, "%.2f", (double)team->pool_sla_secs / 3600.0);
        lf_rfc3339(due * 1000, due_s, sizeof due_s);
        const char *q[] = {PQgetvalue(res, i, 0),
                           team->manager,
                           team_name,
                           PQgetvalue(res, i, 2),
                           hours,
                           PQgetvalue(res, i, 4),
                           due_s,
                           PQgetisnull(res, i, 5) ? "-" : PQgetvalue(res, i, 5)};
        long done = lf_db_cmd(
            db,
            "WITH l AS (SELECT id FROM leads WHERE id = $1 AND pool_reason IS NOT NULL),"
            " m AS (SELECT coalesce($2::text, (SELECT r.manager FROM reps r"
            "   WHERE r.team = $3::text AND r.manager IS NOT NULL ORDER BY r.id LIMIT 1))"
            "   AS to_rep FROM l),"
            " ev AS (INSERT INTO lead_events (lead_id, type, actor, data)"
            "  SELECT $1, 'pool_escalated', 'router', jsonb_build_object('to', m.to_rep,"
            "   'team', $3::text, 'pool_reason', $4::text, 'pool_since', $6::text,"
            "   'due_at', $7::text, 'sla_business_hours', $5::numeric) FROM m)"
            " INSERT INTO notifications (lead_id, rep_id, kind, message)"
            "  SELECT $1, m.to_rep, 'sla_escalation', format('公海超时 lead %s (grade %s,"
            " team %s, %s) has waited in the pool since %s, more than %s business hours',"
            "   $1, $8::text, coalesce($3::text, '-'), $4::text, $6::text, $5::text)"
            "  FROM m WHERE m.to_rep IS NOT NULL",
            8, q);
        if (done < 0) {
            PQclear(res);
            return -1;
        }
        n++;
    }
    PQclear(res);
    return n;
}

int lf_route_pool_tick(void *arg) {
    lf_router_ctx_t *ctx = arg;
    lf_db_t *db = ctx->db;
    if (!db || !ctx->teams || lf_db_begin(db) < 0)
        return -1;
    int routed = -1, escalated = -1;
    if (lf_db_cmd(db, "SELECT pg_advisory_xact_lock(" S_ROUTING_LOCK ")", 0, NULL) < 0)
        goto fail;
    ctx->batch_locked = 1;
    routed = s_pool_deactivated(ctx, db) < 0 ? -1 : s_pool_route(ctx, db);
    escalated = routed < 0 ? -1 : s_pool_escalate(ctx, db);
    ctx->batch_locked = 0;
    if (escalated < 0 || lf_route_before_commit(ctx, db) < 0 || lf_db_commit(db) < 0)
        goto fail;
    lf_route_on_batch(ctx, 1);
    ctx->pooled_routed += routed;
    ctx->pool_escalated += escalated;
    size_t i;
    json_t *ev;
    json_array_foreach(ctx->tick_pub, i, ev) {
        if (ctx->pub)
            lf_event_send(ctx->pub, ev);
    }
    json_array_clear(ctx->tick_pub);
    if (routed > 0 || escalated > 0)
        lf_info("pool tick routed=%d escalated=%d", routed, escalated);
    return routed >= 500 ? 0 : -1; /* a full scan: go on at once */
fail:
    ctx->batch_locked = 0;
    lf_db_rollback(db);
    lf_pool_destroy(&ctx->pool);
    lf_route_on_batch(ctx, 0);
    json_array_clear(ctx->tick_pub);
    lf_warn("pool tick failed: %s", db->errstr);
    return -1;
}
