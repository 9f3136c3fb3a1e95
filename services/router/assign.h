/* assign.h - choosing the rep for a graded lead (自动分配), in memory.
 *
 * A pool holds the reps, the per-team policies of config/routing.json and the fairness
 * ledger (rotation position per team, smooth-weighted state and counts per rep). It does
 * no I/O after construction: the caller loads reps from PostgreSQL, persists the ledger
 * with lf_pool_ledger() and restores it after a restart with lf_pool_restore_ledger().
 *
 * A pool is not thread-safe: lf_pool_assign() moves the rotation. Use one pool per thread
 * or a lock around it.
 *
 * Rep JSON (the rep of the HTTP API plus routing fields):
 *   {"id": "wang.fang", "name": "王芳", "team": "east", "manager": "li.ming",
 *    "skills": ["medical"], "regions": ["east"], "grades": ["A","B"], "capacity": 30,
 *    "weight": 1, "active": true, "open_count": 3, "assigned_total": 120,
 *    "timezone": "Asia/Shanghai" | "+08:00" | "UTC",
 *    "work_hours": {"mon": ["09:00","18:00"], "sat": ["22:00","06:00"], ...},
 *    "out_of_office": [[from_epoch, to_epoch], ...], "ignore_shift": false}
 * Empty skills / regions / grades mean "any". Absent work_hours means always on shift; a
 * weekday missing from work_hours is a day off. A window whose end is before its start
 * runs past midnight into the next day. Window starts are inclusive, ends exclusive; an
 * out-of-office period [from, to) is likewise inclusive of `from` and exclusive of `to`.
 */
#ifndef LF_ROUTER_ASSIGN_H
#define LF_ROUTER_ASSIGN_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>

typedef struct lf_pool lf_pool_t;

/* Builds a pool from an array of rep objects and the routing configuration (NULL = the
 * defaults: round robin, fallback queue "unassigned"). Borrowed: both are only read.
 * The team settings this module does not use (calendar, pool, on_deactivate,
 * team_rules, vocabularies) are accepted and left to lf_teams (lf/teams.h).
 * Returns NULL with a message naming the rep and key in `err` on a bad rep, an unknown
 * time zone or a bad routing rule. Caller owns the result (lf_pool_destroy). */
lf_pool_t *lf_pool_from_json(const json_t *reps, const json_t *routing_cfg, char *err,
                             size_t errsz);

/* Loads config/routing.json-style files. Returns NULL with `err` on I/O or JSON errors.
 * Caller owns the result (json_decref). */
json_t *lf_routing_load(const char *path, char *err, size_t errsz);

/* Frees the pool; accepts NULL and *self_p == NULL, sets *self_p to NULL. */
void lf_pool_destroy(lf_pool_t **self_p);

typedef struct {
    const char *industry, *region,
        *team;                   /* borrowed; NULL = no constraint / default team */
    char grade;                  /* 'A'..'D' */
    const char *preferred_owner; /* sticky owner of a known customer, or NULL */
    const char *const
        *exclude; /* NULL-terminated previous owners to skip (reassignment) */
    time_t now;   /* decision time, seconds since the epoch */
    int no_json;  /* 1: leave res->candidates NULL (the caller reads res->cand) */
} lf_assign_req_t;

/* One candidate of a decision as plain C: the rep's index in the pool
 * (lf_pool_rep_id), why it was skipped (0 = eligible, else the 1-based index of the
 * reason in the order excluded, inactive, paused, out_of_office, off_shift, grade,
 * skill, region, at_capacity: lf_pool_skip_name), whether it was chosen, and whether
 * it was the known customer's owner (sticky). */
typedef struct {
    int rep;
    unsigned char skip, chosen, sticky;
} lf_assign_cand_t;

typedef struct {
    char rep_id[64];    /* "" when nobody eligible */
    char queue[64];     /* fallback queue or manager id when nobody eligible, else "" */
    char notify[64];    /* the manager to tell when nobody was eligible and the team's
                           fallback is {"manager": true}, else "" */
    char reason[256];   /* one human sentence: why this rep / why the queue */
    json_t *candidates; /* [{"rep", "eligible", "skip", "chosen"}] (plus "sticky": true on
                           the preferred owner's entry); caller owns the array. Entries
                           are shared with the pool and other results: read-only
                           (serialize them, or json_deep_copy before changing one).
                           NULL when the request said no_json. */
    const lf_assign_cand_t *cand; /* the same candidates in the same order, as C: the
                                     pool's scratch, valid until its next call */
    size_t n_cand;
    int rep; /* the chosen rep's index in the pool, -1 when nobody */
} lf_assign_result_t;

/* Chooses a rep (or the fallback) for one lead and records it: the chosen rep's
 * open_count and assigned_total grow by one and the team's rotation moves. Returns 0 when
 * the lead was assigned or queued (res->candidates is then a new array the caller owns,
 * with one entry per rep considered, in the order they were considered), -1 on a NULL
 * argument or a grade outside A..D (res is then zeroed and holds no reference). */
int lf_pool_assign(lf_pool_t *pool, const lf_assign_req_t *req, lf_assign_result_t *res);

/* How many members of the request's team are eligible now (the preferred owner is not
 * looked at), without recording anything: the pool tick asks this before it locks a
 * waiting lead. Returns the count, 0 for a team without members, -1 as lf_pool_assign
 * does for a bad request. */
int lf_pool_eligible(lf_pool_t *pool, const lf_assign_req_t *req);

/* The fairness ledger: {"teams": {"east": {"last": "wang.fang"}},
 *  "reps": {"wang.fang": {"assigned_total": 12, "current_weight": -3}}}.
 * open_count is not part of it: the number of open leads is a fact of the database and
 * comes with the rep objects. Returns a new object: caller owns the result. */
json_t *lf_pool_ledger(const lf_pool_t *pool);
/* The same ledger as compact JSON text, written without a jansson tree (the router
 * stores it once per batch: 200 reps as a tree and then serialized cost about as much
 * as a batch's decisions). Caller frees the result (free); NULL for a NULL pool. */
char *lf_pool_ledger_text(const lf_pool_t *pool);

/* Restores a ledger saved by lf_pool_ledger(), possibly from a pool with other members:
 * unknown teams and reps are ignored, and a team whose last rep left resumes at the next
 * id in order. Borrowed: `ledger`. Returns 0, or -1 when it is not shaped like a ledger
 * (the pool is then unchanged). */
int lf_pool_restore_ledger(lf_pool_t *pool, const json_t *ledger);

/* An open lead of `rep_id` was closed or handed over: its open_count goes down by one
 * (never below 0). Returns 0, or -1 for an unknown rep. */
int lf_pool_release(lf_pool_t *pool, const char *rep_id);

/* The number of reps in the pool; the id of the rep at `index` (0 <= index < size),
 * borrowed from the pool, NULL out of range. */
size_t lf_pool_size(const lf_pool_t *pool);
const char *lf_pool_rep_id(const lf_pool_t *pool, int index);
/* The name of a skip reason of lf_assign_cand_t (1..), NULL for 0 or out of range. */
const char *lf_pool_skip_name(int skip);

/* The current open lead count of a rep, or -1 for an unknown rep (for tests and metrics).
 */
int lf_pool_open_count(const lf_pool_t *pool, const char *rep_id);

#endif
