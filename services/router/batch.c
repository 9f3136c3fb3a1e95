/* batch.c - a consumer batch of lead events, decided in memory and written with one
 * statement per table.
 *
 * The assignment code decides ~140k leads/s in memory; written lead by lead (a prelude,
 * a decision statement and an outbox insert per lead, each firing the statement
 * triggers of the timeline and the notifications) the running router managed ~540/s.
 * So a batch is handled as a set:
 *   1. one statement reads every lead of the batch (the canonical lead, whether it was
 *      decided already, its known-customer owner) and the fingerprint of the shared
 *      routing state (count and version sum of reps, the ledger's writer token);
 *   2. the decisions are made in memory, in seq order, on the cached pool. A known
 *      customer decided earlier in the same batch counts as it would have lead by
 *      lead: its owner is remembered per company key and e-mail domain, the newest
 *      lead winning as in the SQL lookup;
 *   3. one statement writes them all: leads, the reps' counts (one row per rep, with
 *      the capacity guard below), assignments, the batch's explanation dictionary,
 *      timeline entries, notifications and lead.assigned events (returned as envelopes,
 *      published after the commit). The fairness ledger is written once per batch
 *      anyway (lf_route_before_commit).
 * An event that needs its lead as earlier decisions left it - a re-grade or a
 * reassignment of a decided lead, a second event for a lead of the same batch - is
 * handled by lf_route_event (route.c) once the decisions before it are written; the
 * next event to decide as a set then reads its leads again, since that event may have
 * changed a known customer's owner.
 *
 * Capacity guard. lf_route_event raises a rep's open_count only while it is below
 * capacity (except for the sticky owner of a known customer). Here each rep's row is
 * raised once by all of its decisions, so the statement checks the equivalent final
 * condition: with `need` the rep's number of decisions in the batch up to and
 * including its last non-sticky one, open_count + need <= capacity. A rep row not
 * raised means the database disagrees with the cached pool: the batch fails and the
 * consumer handles it event by event, with a pool rebuilt from the database.
 *
 * Explanations. Every decision lists every candidate (about 50 per lead with 200 reps
 * in four teams): stored as JSON in the assignment and again in the timeline entry
 * that was 5 kB per lead. Here the candidates are an integer per candidate in the
 * assignments row (cand: rep << 8 | sticky << 5 | chosen << 4 | skip), the rep being
 * an index into the batch's dictionary of rep ids (route_explanations, one row per
 * batch); the timeline entry names its assignment instead of copying the list. The
 * view assignment_explanations and the API's timeline (lf_timeline_data) decode them:
 * readers see what they saw before (db/functions/60_assignment_explanations.sql).
 * The score breakdown likewise (about 620 bytes of JSON, written in the lead and again
 * in the 'graded' entry): one integer per entry, the rule an index into the batch's
 * dictionary of rule ids in the same route_explanations row (s_encode_breakdown),
 * decoded by lf_score_breakdown() for the lead view and lf_timeline_data().
 * One timeline row per decision: the 'assigned' (or 'queued') entry carries the grade
 * under "graded"; the API's timeline shows it as the 'graded' entry before it, as the
 * lead-by-lead path writes it (lf_timeline_entries()).
 *
 * Lock order (docs/reliability.md): the routing lock and the batch's leads in id order
 * were taken by lf_route_on_begin; the write statement then raises reps rows. */
#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "assign.h"
#include "jtext.h"
#include "lf/event.h"
#include "lf/log.h"
#include "lf/pgarray.h"
#include "lf/util.h"
#include "route.h"

/* The SQL type of lead ids stands as LEADID in the statements below: read from the
 * catalog once per process (text before 0040_uuid_ids.sql, uuid after), so this file
 * runs on either schema. */
#define S_ID "LEADID"

/* Skip reasons as stored in the low bits of a candidate code: the order of assign.c's
 * reasons and of the array in db/functions/60_assignment_explanations.sql. */
static const char *const s_skip_names[] = {
    NULL,        "excluded", "inactive", "paused", "out_of_office",
    "off_shift", "grade",    "skill",    "region", "at_capacity"};
enum { S_SKIPS = sizeof s_skip_names / sizeof s_skip_names[0] };
enum { S_CODE_CHOSEN = 16, S_CODE_STICKY = 32, S_CODE_REP_SHIFT = 8 };

/* Every lead of the batch with what deciding it needs, and the routing fingerprint
 * (uncorrelated subqueries: computed once). The lead comes as the columns the scorecard
 * and the team rules read (s_lead_json), not as lf_lead_canonical(l) in JSON: building,
 * printing and parsing the whole document was a good part of a lead's cost on both
 * sides. The known-customer lookup is that of route.c's prelude, skipped for leads
 * decided already. */
static const char *const s_prelude_sql =
    "SELECT u.n, l.assigned_at IS NOT NULL,"
    " nullif(l.company_key, ''),"
    " CASE WHEN l.email IS NOT NULL AND NOT lower(split_part(l.email, '@', 2)) ="
    "  ANY ($2::text[]) THEN lower(split_part(l.email, '@', 2)) END,"
    " (extract(epoch FROM l.created_at) * 1000000)::bigint,"
    " s.owner, (extract(epoch FROM s.created_at) * 1000000)::bigint,"
    " (SELECT count(*) FROM reps), (SELECT coalesce(sum(version), 0) FROM reps),"
    " (SELECT writer FROM routing_ledger WHERE team = '*'),"
    " l.channel, l.source, l.urgency, l.industry, l.region, l.name, l.company, l.need,"
    " l.phone, l.email, l.decision_maker, l.budget_min, l.budget_max, l.currency,"
    " lf_rfc3339(l.created_at)"
    " FROM unnest($1::" S_ID "[]) WITH ORDINALITY u(id, n) JOIN leads l ON l.id = u.id"
    " LEFT JOIN LATERAL (SELECT s.owner, s.created_at FROM ("
    "   (SELECT k.owner, k.created_at FROM leads k WHERE l.assigned_at IS NULL"
    "     AND l.company_key <> '' AND k.owner IS NOT NULL AND k.company_key IS NOT NULL"
    "     AND k.company_key <> '' AND k.company_key = l.company_key AND k.id <> l.id"
    "     ORDER BY k.created_at DESC LIMIT 1)"
    "   UNION ALL"
    "   (SELECT k.owner, k.created_at FROM leads k WHERE l.assigned_at IS NULL"
    "     AND l.email IS NOT NULL AND k.owner IS NOT NULL AND k.email IS NOT NULL"
    "     AND lower(split_part(k.email, '@', 2)) = lower(split_part(l.email, '@', 2))"
    "     AND NOT lower(split_part(l.email, '@', 2)) = ANY ($2::text[]) AND k.id <> l.id"
    "     ORDER BY k.created_at DESC LIMIT 1)"
    "  ) s ORDER BY s.created_at DESC LIMIT 1) s ON true";

enum {
    P_N,
    P_ASSIGNED,
    P_COMPANY,
    P_DOMAIN,
    P_CREATED,
    P_STICKY,
    P_STICKY_AT,
    P_REPS_N,
    P_REPS_V,
    P_WRITER,
    P_FIELDS, /* the lead's string fields, in the order of s_fields */
    P_DECISION_MAKER = P_FIELDS + 10,
    P_BUDGET_MIN,
    P_BUDGET_MAX,
    P_CURRENCY,
    P_CREATED_AT /* the lead's created_at as the lead.assigned payload gives it */
};

/* The lead's string columns from P_FIELDS on, under their canonical names. */
static const char *const s_fields[] = {"channel", "source", "urgency", "industry",
                                       "region",  "name",   "company", "need",
                                       "phone",   "email"};

/* The decisions of a segment, written by one statement: per decided lead $1..$15, $17
 * and $19 (one array element each, in seq order), the rep dictionary $16 and the rule
 * dictionary $18 (both stored in the batch's route_explanations row). The lead.assigned
 * payloads ($17) are built in C, so are the events' ids ($19: gen_random_uuid() costs
 * the backend several microseconds a call here, lf_uuid4 well under one), and the
 * statement returns each event's seq, event id, time and version: the router builds
 * the envelopes it publishes from those, instead of lf_envelope() and json_agg() in the
 * statement and parsing them back. */
static const char *const s_write_sql =
    "WITH d AS MATERIALIZED (SELECT * FROM unnest($1::" S_ID "[], $2::text[],"
    "  $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],"
    "  $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int[],"
    "  $15::text[], $17::jsonb[], $19::uuid[]) WITH ORDINALITY AS d(lead, grade, score,"
    "  codes, owner, reason, queue, team, region, region_raw, industry, industry_raw,"
    "  notify, need, cand, payload, eid, n)),"
    " ex AS (INSERT INTO route_explanations (reps, rules) VALUES ($16::text[],"
    "  $18::text[]) RETURNING id),"
    " upd AS (UPDATE leads l SET grade = d.grade, score = d.score,"
    "  score_breakdown = NULL, breakdown_dict = ex.id, breakdown_codes = d.codes::int[],"
    "  graded_at = now(), owner = d.owner,"
    "  assignment_reason = d.reason, queue = d.queue, assigned_at = now(),"
    "  updated_at = now(), team = d.team, region = d.region, industry = d.industry,"
    "  region_raw = CASE WHEN d.region_raw IS DISTINCT FROM d.region"
    "   OR l.region_raw IS NULL THEN d.region_raw ELSE l.region_raw END,"
    "  industry_raw = CASE WHEN d.industry_raw IS DISTINCT FROM d.industry"
    "   OR l.industry_raw IS NULL THEN d.industry_raw ELSE l.industry_raw END,"
    "  pool_reason = CASE WHEN d.owner IS NULL THEN 'no_eligible_rep' END,"
    "  pool_since = CASE WHEN d.owner IS NULL THEN now() END"
    "  FROM d, ex WHERE l.id = d.lead RETURNING l.id, l.channel, l.created_at),"
    " rep AS (UPDATE reps r SET open_count = r.open_count + c.k,"
    "  assigned_total = r.assigned_total + c.k"
    "  FROM (SELECT owner, count(*) AS k, max(need) AS need FROM d"
    "   WHERE owner IS NOT NULL GROUP BY owner) c"
    "  WHERE r.id = c.owner AND (c.need = 0 OR r.open_count + c.need <= r.capacity)"
    "  RETURNING r.id),"
    " asg AS (INSERT INTO assignments (lead_id, rep_id, queue, reason, explanation, cand)"
    "  SELECT d.lead, d.owner, d.queue, d.reason, ex.id, d.cand::int[] FROM d, ex"
    "  ORDER BY d.n RETURNING id, lead_id),"
    " ntf AS (INSERT INTO notifications (lead_id, rep_id, kind, message)"
    "  SELECT d.lead, x.rep, x.kind, x.msg FROM d CROSS JOIN LATERAL (VALUES"
    "   (d.owner, 'lead_assigned', format('新线索 new lead %s (grade %s) is yours: %s',"
    "    d.lead, d.grade, d.reason)),"
    "   (d.notify, 'pool_waiting', format('待分配 lead %s (grade %s, team %s) waits in"
    " the pool: %s', d.lead, d.grade, coalesce(d.team, '-'), d.reason))) x(rep, kind, "
    "msg)"
    "  WHERE x.rep IS NOT NULL ORDER BY d.n),"
    " tl AS (INSERT INTO lead_events (lead_id, type, actor, data)"
    "  SELECT d.lead, CASE WHEN d.owner IS NULL THEN 'queued' ELSE 'assigned' END,"
    "   'router', jsonb_build_object('owner', d.owner, 'queue', d.queue,"
    "   'reason', d.reason, 'team', d.team, 'pool_reason', CASE WHEN d.owner IS NULL"
    "   THEN 'no_eligible_rep' END, 'notified', d.notify, 'assignment', asg.id,"
    "   'graded', jsonb_build_object('grade', d.grade, 'score', d.score,"
    "   'breakdown_dict', ex.id, 'breakdown_codes', d.codes))"
    "  FROM d JOIN asg ON asg.lead_id = d.lead CROSS JOIN ex ORDER BY d.n),"
    " ob AS (INSERT INTO outbox (event_id, type, lead_id, payload)"
    "  SELECT d.eid, 'lead.assigned', d.lead, d.payload"
    "  FROM d JOIN upd ON upd.id = d.lead ORDER BY d.n"
    "  RETURNING id, event_id, lead_id, at, version)"
    " SELECT c.upd, c.rep, c.asg, ob.id, ob.event_id, ob.lead_id, lf_rfc3339(ob.at),"
    "  ob.version FROM (SELECT (SELECT count(*) FROM upd) AS upd,"
    "  (SELECT count(*) FROM rep) AS rep, (SELECT count(*) FROM asg) AS asg) c"
    "  LEFT JOIN ob ON true ORDER BY ob.id";

/* Columns of the write statement. */
enum {
    C_LEAD,
    C_GRADE,
    C_SCORE,
    C_CODES, /* the breakdown: one code per entry (s_encode_breakdown) */
    C_OWNER,
    C_REASON,
    C_QUEUE,
    C_TEAM,
    C_REGION,
    C_REGION_RAW,
    C_INDUSTRY,
    C_INDUSTRY_RAW,
    C_NOTIFY,
    C_NEED,
    C_CAND,
    C_REPS,
    C_PAYLOAD,
    C_RULES, /* the segment's dictionary of rule ids */
    C_EVENT, /* the lead.assigned event's id, drawn here (lf_uuid4) */
    C_N
};

/* The decisions of a segment not written yet. */
typedef struct {
    lf_pgarray_t col[C_N];
    const lf_pool_t *pool; /* the pool the arrays below index, NULL before a decision */
    int *dict;             /* per pool rep: its index in the dictionary (C_REPS), or -1 */
    int *count;            /* per pool rep: decisions for that rep so far */
    size_t n_dict;         /* reps in the dictionary */
    size_t n_owners;       /* reps with at least one decision */
    const char **rules;    /* the rule dictionary (C_RULES): the scorecard's strings */
    size_t n_rules, cap_rules;
    json_t *known;     /* "c:<company key>" / "d:<domain>" -> [owner, created_us] */
    char **payloads;   /* the lead.assigned payload of each decision (JSON text) */
    char (*leads)[65]; /* the lead id of each decision, in order */
    size_t cap;        /* entries allocated in payloads and leads */
    size_t n;          /* decisions */
    time_t now;        /* decision time */
} s_seg_t;

static void s_seg_init(s_seg_t *s) {
    memset(s, 0, sizeof *s);
    for (int k = 0; k < C_N; k++)
        lf_pgarray_init(&s->col[k]);
    s->known = json_object();
    s->now = time(NULL);
}

static void s_seg_free(s_seg_t *s) {
    for (int k = 0; k < C_N; k++)
        lf_pgarray_free(&s->col[k]);
    free(s->dict);
    free(s->count);
    free(s->rules);
    json_decref(s->known);
    for (size_t i = 0; i < s->n; i++)
        free(s->payloads[i]);
    free(s->payloads);
    free(s->leads);
    memset(s, 0, sizeof *s);
}

/* Sizes the segment's per-rep arrays for `pool` before its first decision. Returns 0,
 * or -1 when the pool changed under decisions not written yet (their indices would
 * name other reps). */
static int s_seg_pool(s_seg_t *s, const lf_pool_t *pool) {
    if (s->pool == pool)
        return 0;
    if (s->n > 0) {
        lf_error("the assignment pool changed in the middle of a batch segment");
        return -1;
    }
    size_t n = lf_pool_size(pool);
    free(s->dict);
    free(s->count);
    s->dict = lf_malloc((n + 1) * sizeof *s->dict);
    s->count = lf_calloc(n + 1, sizeof *s->count);
    for (size_t i = 0; i < n; i++)
        s->dict[i] = -1;
    s->pool = pool;
    return 0;
}

/* Encodes the candidates of a decision as an int[] literal into `out`, from the pool's
 * own arrays: the rep's index in the batch's dictionary (added on first use), the skip
 * reason and the flags. Returns 0, or -1 for an entry this file cannot encode. */
static int s_encode_candidates(s_seg_t *s, const lf_assign_result_t *res,
                               lf_pgarray_t *out) {
    for (size_t i = 0; i < res->n_cand; i++) {
        const lf_assign_cand_t *e = &res->cand[i];
        const char *rep = lf_pool_rep_id(s->pool, e->rep);
        if (!rep || e->skip >= S_SKIPS)
            return -1;
        if (s->dict[e->rep] < 0) {
            s->dict[e->rep] = (int)s->n_dict++;
            lf_pgarray_add(&s->col[C_REPS], rep);
        }
        long long code = e->skip;
        if (e->chosen)
            code |= S_CODE_CHOSEN;
        if (e->sticky)
            code |= S_CODE_STICKY;
        code |= (long long)s->dict[e->rep] << S_CODE_REP_SHIFT;
        lf_pgarray_add_int(out, code);
    }
    return 0;
}

/* Breakdown codes: points * S_BD_RULES + rule, the rule (0 <= rule < S_BD_RULES) being
 * an index into the segment's dictionary, so that rule = code & 4095 and points =
 * (code - rule) / 4096 for negative points too; decoded by lf_score_breakdown()
 * (db/functions/60_assignment_explanations.sql). Small numbers: a few digits each in
 * the timeline entry, which carries them as text. */
enum { S_BD_RULES = 4096, S_BD_POINTS_MAX = 500000 };

/* Encodes a breakdown as an int[] literal into `out`, adding rule ids to the segment's
 * dictionary on first use (compared by address: the scorecard's own strings). Returns
 * 0, or -1 for an entry the code cannot hold. */
static int s_encode_breakdown(s_seg_t *s, const lf_score_part_t *parts, size_t n,
                              lf_pgarray_t *out) {
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < s->n_rules && s->rules[k] != parts[i].rule)
            k++;
        if (k == s->n_rules) {
            if (k >= S_BD_RULES)
                return -1;
            if (s->n_rules == s->cap_rules) {
                s->cap_rules = s->cap_rules ? 2 * s->cap_rules : 32;
                s->rules = lf_realloc(s->rules, s->cap_rules * sizeof *s->rules);
            }
            s->rules[s->n_rules++] = parts[i].rule;
            lf_pgarray_add(&s->col[C_RULES], parts[i].rule);
        }
        int p = parts[i].points;
        if (p < -S_BD_POINTS_MAX || p > S_BD_POINTS_MAX)
            return -1;
        lf_pgarray_add_int(out, (long long)p * S_BD_RULES + (long long)k);
    }
    return 0;
}

/* What the prelude read about an event's lead. Strings point into the result. */
typedef struct {
    int found;
    int assigned;
    json_t *lead; /* owned */
    const char *company, *domain, *sticky, *created_at;
    long long created_us, sticky_us;
} s_row_t;

static const char *s_val(PGresult *res, int r, int col) {
    return PQgetisnull(res, r, col) ? NULL : PQgetvalue(res, r, col);
}

/* The known customer's owner: the newest lead of the same company key or e-mail
 * domain, in the database (as read) or decided earlier in this segment. */
static const char *s_sticky(const s_seg_t *s, const s_row_t *row) {
    const char *owner = row->sticky;
    long long at = row->sticky_us;
    const char *keys[2] = {row->company, row->domain};
    for (int k = 0; k < 2; k++) {
        if (!keys[k])
            continue;
        char key[300];
        snprintf(key, sizeof key, "%c:%s", k == 0 ? 'c' : 'd', keys[k]);
        json_t *e = json_object_get(s->known, key);
        if (e && (!owner || json_integer_value(json_array_get(e, 1)) > at)) {
            owner = json_string_value(json_array_get(e, 0));
            at = json_integer_value(json_array_get(e, 1));
        }
    }
    return owner;
}

static void s_remember_owner(s_seg_t *s, const s_row_t *row, const char *owner) {
    const char *keys[2] = {row->company, row->domain};
    for (int k = 0; k < 2; k++) {
        if (!keys[k])
            continue;
        char key[300];
        snprintf(key, sizeof key, "%c:%s", k == 0 ? 'c' : 'd', keys[k]);
        json_t *e = json_object_get(s->known, key);
        if (!e || json_integer_value(json_array_get(e, 1)) <= row->created_us)
            json_object_set_new(s->known, key,
                                json_pack("[s, I]", owner, (json_int_t)row->created_us));
    }
}

/* Decides one lead in memory and adds its row to the segment. Returns 0 or -1. */
static int s_decide(lf_router_ctx_t *ctx, s_seg_t *s, const char *lead_id,
                    const s_row_t *row) {
    int rc = -1, score = 0;
    char grade = 'D';
    lf_score_part_t parts[LF_SCORECARD_MAX_PARTS];
    size_t n_parts = 0;
    lf_pgarray_t codes;
    lf_pgarray_init(&codes);
    lf_assign_result_t res;
    memset(&res, 0, sizeof res);
    lf_route_facts_t f = lf_route_facts(ctx, row->lead); /* graded on the mapped ids */
    if (lf_scorecard_grade_parts(ctx->scorecard, row->lead, &score, &grade, parts,
                                 &n_parts) < 0 ||
        s_encode_breakdown(s, parts, n_parts, &codes) < 0)
        goto out;
    if (s_seg_pool(s, ctx->pool) < 0)
        goto out;
    const char *sticky = s_sticky(s, row);
    lf_assign_req_t req = {.industry = f.industry,
                           .region = f.region,
                           .team = f.team,
                           .grade = grade,
                           .preferred_owner = sticky,
                           .exclude = NULL,
                           .now = s->now,
                           .no_json = 1};
    if (lf_pool_assign(ctx->pool, &req, &res) < 0)
        goto out;
    lf_pgarray_t cand;
    lf_pgarray_init(&cand);
    if (s_encode_candidates(s, &res, &cand) < 0) {
        lf_pgarray_free(&cand);
        goto out;
    }
    const char *owner = res.rep_id[0] ? res.rep_id : NULL;
    long long need = 0;
    if (owner && res.rep >= 0) {
        long long k = ++s->count[res.rep];
        if (k == 1)
            s->n_owners++;
        if (!sticky || strcmp(sticky, owner))
            need = k;
        s_remember_owner(s, row, owner);
    } else if (owner) {
        lf_error("decision for %s names no rep of the pool", owner);
        goto out;
    }
    char grade_s[2] = {grade, '\0'};
    lf_pgarray_add(&s->col[C_LEAD], lead_id);
    lf_pgarray_add(&s->col[C_GRADE], grade_s);
    lf_pgarray_add_int(&s->col[C_SCORE], score);
    lf_pgarray_add(&s->col[C_CODES], lf_pgarray_end(&codes));
    lf_pgarray_add(&s->col[C_OWNER], owner);
    lf_pgarray_add(&s->col[C_REASON], res.reason);
    lf_pgarray_add(&s->col[C_QUEUE], res.queue[0] ? res.queue : NULL);
    lf_pgarray_add(&s->col[C_TEAM], f.team);
    lf_pgarray_add(&s->col[C_REGION], f.region);
    lf_pgarray_add(&s->col[C_REGION_RAW], f.region_raw);
    lf_pgarray_add(&s->col[C_INDUSTRY], f.industry);
    lf_pgarray_add(&s->col[C_INDUSTRY_RAW], f.industry_raw);
    lf_pgarray_add(&s->col[C_NOTIFY], res.notify[0] ? res.notify : NULL);
    lf_pgarray_add_int(&s->col[C_NEED], need);
    lf_pgarray_add(&s->col[C_CAND], lf_pgarray_end(&cand));
    lf_pgarray_free(&cand);
    /* The lead.assigned payload, as route.c's per-lead path writes it (every key, null
     * when there is no value, as jsonb_build_object did). */
    lf_jtext_t pl = {0};
    lf_jtext_raw(&pl, "{\"grade\":");
    lf_jtext_str(&pl, grade_s);
    lf_jtext_raw(&pl, ",\"score\":");
    lf_jtext_int(&pl, score);
    lf_jtext_raw(&pl, ",\"owner\":");
    lf_jtext_str(&pl, owner);
    lf_jtext_raw(&pl, ",\"queue\":");
    lf_jtext_str(&pl, res.queue[0] ? res.queue : NULL);
    lf_jtext_raw(&pl, ",\"reason\":");
    lf_jtext_str(&pl, res.reason);
    lf_jtext_raw(&pl, ",\"channel\":");
    lf_jtext_str(&pl, json_string_value(json_object_get(row->lead, "channel")));
    lf_jtext_raw(&pl, ",\"created_at\":");
    lf_jtext_str(&pl, row->created_at);
    lf_jtext_raw(&pl, ",\"team\":");
    lf_jtext_str(&pl, f.team);
    lf_jtext_raw(&pl, ",\"pool_reason\":");
    lf_jtext_str(&pl, owner ? NULL : "no_eligible_rep");
    lf_jtext_raw(&pl, "}");
    lf_pgarray_add(&s->col[C_PAYLOAD], lf_jtext_get(&pl));
    char eid[37];
    lf_uuid4(eid);
    lf_pgarray_add(&s->col[C_EVENT], eid);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 128;
        s->payloads = lf_realloc(s->payloads, s->cap * sizeof *s->payloads);
        s->leads = lf_realloc(s->leads, s->cap * sizeof *s->leads);
    }
    s->payloads[s->n] = pl.buf; /* owned by the segment now */
    lf_strlcpy(s->leads[s->n], lead_id, sizeof s->leads[s->n]);
    s->n++;
    rc = 0;
out:
    json_decref(res.candidates);
    lf_pgarray_free(&codes);
    return rc;
}

/* Writes the segment's decisions, publishes their events after the commit and resets
 * the segment. Returns 0 or -1. */
static int s_flush(lf_consumer_t *c, lf_db_t *db, lf_router_ctx_t *ctx, s_seg_t *s) {
    if (s->n == 0)
        return 0;
    const char *p[C_N];
    for (int k = 0; k < C_N; k++)
        p[k] = lf_pgarray_end(&s->col[k]);
    PGresult *r =
        lf_db_exec_prepared(db, "lf_route_batch_write", ctx->batch_sql[1], C_N, p);
    int rc = -1;
    size_t owners = s->n_owners, n = s->n;
    if (!r)
        goto out;
    long long upd = atoll(PQgetvalue(r, 0, 0)), bumped = atoll(PQgetvalue(r, 0, 1));
    long long asg = atoll(PQgetvalue(r, 0, 2));
    if (upd != (long long)n || asg != (long long)n || PQntuples(r) != (int)n) {
        lf_error("batch write: %lld of %zu leads updated, %lld assignments, %d events",
                 upd, n, asg, PQntuples(r));
        goto out;
    }
    if (bumped != (long long)owners) {
        /* The pool thought the reps had room; the database says no. The batch rolls
         * back and is routed again event by event on a pool rebuilt from the database. */
        lf_warn("rep over capacity in the database, routing the batch again leads=%zu",
                n);
        goto out;
    }
    /* One row per event, in the order of the decisions (the insert's ORDER BY d.n): the
     * envelope lf_envelope() would give, written around the payload sent. */
    for (int i = 0; i < (int)n; i++) {
        const char *lead = PQgetvalue(r, i, 5);
        if (strcasecmp(lead, s->leads[i])) { /* never expected: the rows follow d.n */
            lf_error("batch write: event %d is for lead %s, decision for %s", i, lead,
                     s->leads[i]);
            goto out;
        }
    }
    for (int i = 0; i < (int)n; i++) {
        lf_jtext_t env = {0};
        lf_jtext_raw(&env, "{\"v\":");
        lf_jtext_raw(&env, PQgetvalue(r, i, 7));
        lf_jtext_raw(&env, ",\"seq\":");
        lf_jtext_raw(&env, PQgetvalue(r, i, 3));
        lf_jtext_raw(&env, ",\"event_id\":");
        lf_jtext_str(&env, PQgetvalue(r, i, 4));
        lf_jtext_raw(&env, ",\"type\":\"lead.assigned\",\"lead_id\":");
        lf_jtext_str(&env, PQgetvalue(r, i, 5));
        lf_jtext_raw(&env, ",\"at\":");
        lf_jtext_str(&env, PQgetvalue(r, i, 6));
        lf_jtext_raw(&env, ",\"payload\":");
        lf_jtext_raw(&env, s->payloads[i]);
        lf_jtext_raw(&env, "}");
        lf_consumer_publish_text_after_commit(c, "lead.assigned", lf_jtext_get(&env));
        lf_jtext_free(&env);
    }
    lf_route_decided(ctx, (long)bumped);
    ctx->pending_routed += (long)n;
    rc = 0;
out:
    PQclear(r);
    s_seg_free(s);
    s_seg_init(s);
    return rc;
}

enum { S_NOOP, S_BATCH, S_SINGLE };

/* How an event is handled: nothing to do, decided as part of the set, or alone by
 * lf_route_event (its lead must be read as earlier decisions left it). */
static int s_kind(const json_t *env, const s_row_t *row, const json_t *touched) {
    const char *type = lf_event_type(env);
    const char *lead = lf_event_lead(env);
    if (!type || !lead || !row->found)
        return S_NOOP; /* nothing to route, or an unknown lead (as lf_route_event) */
    int created = !strcmp(type, "lead.created");
    if (!created && strcmp(type, "lead.updated") && strcmp(type, "lead.merged") &&
        strcmp(type, "lead.reassign"))
        return S_NOOP; /* a type we do not handle (SUB topics match by prefix) */
    if (json_object_get(touched, lead))
        return S_SINGLE;
    if (row->assigned)
        return created ? S_NOOP : S_SINGLE; /* decided already, or a re-grade/reassign */
    return S_BATCH;
}

/* Whether `id` can be a lead id of the schema's type (a uuid's 8-4-4-4-12 hex digits,
 * or text of at most 64 bytes). */
static int s_id_ok(const lf_router_ctx_t *ctx, const char *id) {
    if (!id)
        return 0;
    size_t n = strlen(id);
    if (strcmp(ctx->id_type, "uuid"))
        return n > 0 && n <= 64;
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? id[i] != '-' : !strchr("0123456789abcdefABCDEF", id[i]))
            return 0;
    }
    return 1;
}

/* `tmpl` with every LEADID replaced by `type`. Caller owns the result. */
static char *s_with_type(const char *tmpl, const char *type) {
    size_t n = strlen(tmpl) + 1, k = 0, tl = strlen(type);
    for (const char *p = tmpl; (p = strstr(p, S_ID)); p += strlen(S_ID))
        n += tl;
    char *out = lf_malloc(n);
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, S_ID, strlen(S_ID))) {
            memcpy(out + k, type, tl);
            k += tl;
            p += strlen(S_ID);
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = '\0';
    return out;
}

/* Reads the type of leads.id and builds the statements, once. Returns 0 or -1. */
static int s_statements(lf_router_ctx_t *ctx, lf_db_t *db) {
    if (ctx->batch_sql[0])
        return 0;
    PGresult *r = lf_db_exec(db,
                             "SELECT format_type(atttypid, NULL) FROM pg_attribute"
                             " WHERE attrelid = 'leads'::regclass AND attname = 'id'",
                             0, NULL);
    if (!r)
        return -1;
    const char *type = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "";
    if (strcmp(type, "uuid") && strcmp(type, "text")) {
        lf_error("leads.id has type %s, neither uuid nor text", type);
        PQclear(r);
        return -1;
    }
    lf_strlcpy(ctx->id_type, type, sizeof ctx->id_type);
    PQclear(r);
    for (int k = 1; k < S_SKIPS; k++)
        if (!lf_pool_skip_name(k) || strcmp(lf_pool_skip_name(k), s_skip_names[k])) {
            lf_error("skip reason %d of the pool is not the batch path's %s", k,
                     s_skip_names[k]);
            return -1;
        }
    ctx->batch_sql[0] = s_with_type(s_prelude_sql, ctx->id_type);
    ctx->batch_sql[1] = s_with_type(s_write_sql, ctx->id_type);
    return 0;
}

/* The lead as the scorecard, the team rules and the fact mapping read it: the keys of
 * lf_lead_canonical(l) that they use, built from the prelude's columns (a NULL column
 * is left out, as the readers treat a missing key and a JSON null alike). Caller owns
 * the result. */
static json_t *s_lead_json(PGresult *res, int r) {
    json_t *lead = json_object();
    for (size_t k = 0; k < sizeof s_fields / sizeof s_fields[0]; k++) {
        const char *v = s_val(res, r, P_FIELDS + (int)k);
        if (v)
            json_object_set_new_nocheck(lead, s_fields[k], json_string(v));
    }
    const char *dm = s_val(res, r, P_DECISION_MAKER);
    if (dm)
        json_object_set_new_nocheck(lead, "decision_maker", json_boolean(dm[0] == 't'));
    const char *lo = s_val(res, r, P_BUDGET_MIN), *hi = s_val(res, r, P_BUDGET_MAX);
    if (lo || hi) {
        json_t *b = json_object();
        if (lo)
            json_object_set_new_nocheck(b, "min", json_real(strtod(lo, NULL)));
        if (hi)
            json_object_set_new_nocheck(b, "max", json_real(strtod(hi, NULL)));
        const char *cur = s_val(res, r, P_CURRENCY);
        if (cur)
            json_object_set_new_nocheck(b, "currency", json_string(cur));
        json_object_set_new_nocheck(lead, "budget", b);
    }
    return lead;
}

/* Reads the leads of envs[0..n) (the prelude). rows[i] is filled for envs[i]; *res
 * keeps the strings. Returns 0 or -1. */
static int s_read(lf_router_ctx_t *ctx, lf_db_t *db, json_t *const *envs, size_t n,
                  s_row_t *rows, PGresult **res, long long fp[2], const char **writer) {
    lf_pgarray_t ids;
    lf_pgarray_init(&ids);
    for (size_t i = 0; i < n; i++) {
        const char *lead = lf_event_lead(envs[i]);
        /* An id that cannot be a lead id is no lead's: never sent, so that one bad
         * event cannot fail the cast of the whole array. */
        lf_pgarray_add(&ids, s_id_ok(ctx, lead) ? lead : NULL);
    }
    const char *p[] = {lf_pgarray_end(&ids), lf_route_public_domains};
    *res = lf_db_exec_prepared(db, "lf_route_batch_prelude", ctx->batch_sql[0], 2, p);
    lf_pgarray_free(&ids);
    memset(rows, 0, n * sizeof *rows);
    if (!*res)
        return -1;
    for (int r = 0; r < PQntuples(*res); r++) {
        long long k = atoll(PQgetvalue(*res, r, P_N)) - 1;
        if (k < 0 || (size_t)k >= n)
            continue;
        s_row_t *row = &rows[k];
        row->lead = s_lead_json(*res, r);
        row->found = 1;
        row->created_at = s_val(*res, r, P_CREATED_AT);
        row->assigned = PQgetvalue(*res, r, P_ASSIGNED)[0] == 't';
        row->company = s_val(*res, r, P_COMPANY);
        row->domain = s_val(*res, r, P_DOMAIN);
        row->created_us = atoll(PQgetvalue(*res, r, P_CREATED));
        row->sticky = s_val(*res, r, P_STICKY);
        row->sticky_us = row->sticky ? atoll(PQgetvalue(*res, r, P_STICKY_AT)) : 0;
        fp[0] = atoll(PQgetvalue(*res, r, P_REPS_N));
        fp[1] = atoll(PQgetvalue(*res, r, P_REPS_V));
        *writer = s_val(*res, r, P_WRITER) ? s_val(*res, r, P_WRITER) : "";
    }
    return 0;
}

static void s_rows_free(s_row_t *rows, size_t n) {
    for (size_t i = 0; i < n; i++)
        json_decref(rows[i].lead);
}

/* Handles envs[from..n) until an event to decide as a set follows one handled alone
 * (its leads must then be read again). Sets *next to the first event not handled.
 * Returns 0 or -1. */
static int s_segment(lf_consumer_t *c, lf_db_t *db, lf_router_ctx_t *ctx,
                     json_t *const *envs, size_t n, size_t from, size_t *next) {
    size_t m = n - from;
    s_row_t *rows = lf_calloc(m, sizeof *rows);
    PGresult *res = NULL;
    long long fp[2] = {0, 0};
    const char *writer = "";
    s_seg_t seg;
    s_seg_init(&seg);
    json_t *touched = json_object();
    int rc = -1, pool_checked = 0, alone = 0;
    size_t i = from;
    if (s_read(ctx, db, envs + from, m, rows, &res, fp, &writer) < 0)
        goto out;
    for (; i < n; i++) {
        const s_row_t *row = &rows[i - from];
        const char *lead = lf_event_lead(envs[i]);
        int kind = s_kind(envs[i], row, touched);
        if (kind == S_NOOP)
            continue;
        if (kind == S_SINGLE) {
            if (s_flush(c, db, ctx, &seg) < 0 ||
                lf_route_event(c, db, envs[i], ctx) < 0 || db->err)
                goto out;
            json_object_set_new(touched, lead, json_true());
            alone = 1;
            continue;
        }
        if (alone)
            break; /* read the rest again: the event handled alone may matter to it */
        if (!pool_checked) {
            if (lf_route_pool_ready(ctx, db, fp[0], fp[1], writer) < 0)
                goto out;
            pool_checked = 1;
        }
        if (s_decide(ctx, &seg, lead, row) < 0)
            goto out;
        json_object_set_new(touched, lead, json_true());
    }
    if (s_flush(c, db, ctx, &seg) < 0)
        goto out;
    rc = 0;
out:
    *next = i;
    json_decref(touched);
    s_seg_free(&seg);
    s_rows_free(rows, m);
    free(rows);
    PQclear(res);
    return rc;
}

int lf_route_batch(lf_consumer_t *c, lf_db_t *db, json_t *const *envs, size_t n,
                   void *arg) {
    lf_router_ctx_t *ctx = arg;
    /* The routing lock and the batch's leads were taken by lf_route_on_begin. */
    ctx->batch_locked = 1;
    int rc = s_statements(ctx, db);
    for (size_t i = 0; i < n && rc == 0;)
        rc = s_segment(c, db, ctx, envs, n, i, &i);
    if (rc < 0) {
        ctx->batch_locked = 0;
        /* The consumer rolls this attempt back and handles the events one by one:
         * forget what the attempt did to the pool, the ledger and the counters. */
        lf_pool_destroy(&ctx->pool);
        ctx->token[0] = '\0';
        ctx->ledger_dirty = 0;
        ctx->pending_routed = ctx->pending_regraded = ctx->pending_reassigned = 0;
    }
    return rc;
}
