/* test_lists.c - lists, the pool, claims and moves over HTTP with the real intake and
 * router on PostgreSQL: keyset pagination under concurrent inserts, a rep key seeing
 * its own leads only, incremental sync with order=updated, a claim-only pool, two reps
 * claiming one lead at once, the claim rules (capacity, daily limit, cool-down), a
 * manager's assignment and the handover of 500 leads, and the agenda. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/harness.h"

TestSuite(lists, .fini = lf_h_fini);

static void s_sql(lf_h_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_sql(lf_h_t *h, const char *fmt, ...) {
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    char *r = lf_h_sql(h, q);
    cr_assert(r, "SQL failed: %s", q);
    free(r);
}

static long s_count(lf_h_t *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static long s_count(lf_h_t *h, const char *fmt, ...) {
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    return lf_h_sql_long(h, q);
}

/* A key "key-<rep>" of scope `scope` for rep. */
static void s_key(lf_h_t *h, const char *rep, const char *scope) {
    s_sql(h,
          "INSERT INTO api_keys (id, key_hash, scope, rep_id, rate_per_minute) VALUES"
          " ('k-%s', encode(sha256('key-%s'::bytea), 'hex'), '%s', '%s', 0)",
          rep, rep, scope, rep);
}

/* method path as `who` (a rep with a key, or "admin"); body may be NULL. Returns the
 * status and the parsed answer in *out (may be NULL). */
static int s_as(lf_h_t *h, const char *who, const char *method, const char *path,
                const char *body, json_t **out) {
    char auth[128];
    if (!strcmp(who, "admin"))
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", lf_h_admin_key(h));
    else
        snprintf(auth, sizeof auth, "Authorization: Bearer key-%s", who);
    const char *hd[] = {auth, "Content-Type: application/json", NULL};
    char *resp = NULL;
    int st = lf_h_http(h, method, path, hd, body, body ? strlen(body) : 0, &resp);
    if (out)
        *out = resp ? json_loads(resp, 0, NULL) : NULL;
    free(resp);
    return st;
}

static void s_rep(lf_h_t *h, const char *json) {
    cr_assert_eq(s_as(h, "admin", "POST", "/v1/reps", json, NULL), 201, "rep %s", json);
}

/* Posts a lead and waits until the router decided about it. Caller frees the id. */
static char *s_lead(lf_h_t *h, const char *body) {
    json_t *out = NULL;
    cr_assert_eq(lf_h_post_json(h, "/v1/leads", body, &out), 201, "lead %s", body);
    char *id = strdup(json_string_value(json_object_get(out, "id")));
    json_decref(out);
    char q[256];
    snprintf(q, sizeof q, "SELECT assigned_at IS NOT NULL FROM leads WHERE id = '%s'",
             id);
    cr_assert(lf_h_wait_sql(h, q, "t", 10000), "lead %s not routed", id);
    return id;
}

/* ---- lists ---- */

typedef struct {
    lf_h_t *h;
    int from, to, ok;
} s_poster_t;

static void *s_poster(void *arg) {
    s_poster_t *p = arg;
    for (int i = p->from; i < p->to; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"phone\":\"1361111%04d\"}", i);
        if (lf_h_post_json(p->h, "/v1/leads", body, NULL) == 201)
            p->ok++;
    }
    return NULL;
}

/* Pages through GET path (which has a '?') with limit `limit`, adding every id to
 * `seen` (id -> count). Returns the number of pages. */
static int s_page_all(lf_h_t *h, const char *who, const char *path, int limit,
                      json_t *seen) {
    char *cursor = NULL;
    int pages = 0;
    for (;;) {
        char url[512];
        snprintf(url, sizeof url, "%s&limit=%d%s%s", path, limit,
                 cursor ? "&cursor=" : "", cursor ? cursor : "");
        json_t *o = NULL;
        int st = s_as(h, who, "GET", url, NULL, &o);
        cr_assert_eq(st, 200, "GET %s: %d", url, st);
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(o, "leads"), i, l) {
            const char *id = json_string_value(json_object_get(l, "id"));
            json_t *c = json_object_get(seen, id);
            json_object_set_new(seen, id,
                                json_integer(c ? json_integer_value(c) + 1 : 1));
        }
        cr_assert(json_array_size(json_object_get(o, "leads")) <= (size_t)limit);
        free(cursor);
        cursor = json_is_string(json_object_get(o, "next_cursor"))
                     ? strdup(json_string_value(json_object_get(o, "next_cursor")))
                     : NULL;
        json_decref(o);
        pages++;
        if (!cursor)
            break;
        usleep(20000); /* let the concurrent inserts interleave with the pages */
    }
    return pages;
}

Test(lists, pagination_under_concurrent_inserts_skips_and_repeats_nothing,
     .timeout = 180) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    /* 300 leads before the listing starts; a group commit gives many the same
     * created_at, which the keyset's id breaks. */
    s_poster_t pre[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        pre[t] = (s_poster_t){h, t * 75, (t + 1) * 75, 0};
        pthread_create(&th[t], NULL, s_poster, &pre[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    cr_assert_eq(pre[0].ok + pre[1].ok + pre[2].ok + pre[3].ok, 300);
    cr_expect_lt(s_count(h, "SELECT count(DISTINCT created_at) FROM leads"), 300,
                 "the group commit shares created_at (the case the id tie-break is for)");
    char *before = lf_h_sql(h, "SELECT string_agg(id::text, ',' ORDER BY id) FROM leads");
    /* Page newest-first while 200 more arrive. */
    s_poster_t during[2];
    for (int t = 0; t < 2; t++) {
        during[t] = (s_poster_t){h, 300 + t * 100, 400 + t * 100, 0};
        pthread_create(&th[t], NULL, s_poster, &during[t]);
    }
    json_t *seen = json_object();
    int pages = s_page_all(h, "admin", "/v1/leads?order=created", 37, seen);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    cr_expect_geq(pages, 9);
    const char *id;
    json_t *c;
    json_object_foreach(seen, id, c) {
        cr_expect_eq(json_integer_value(c), 1, "lead %s listed %lld times", id,
                     (long long)json_integer_value(c));
    }
    for (char *save = NULL, *tok = strtok_r(before, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save))
        cr_expect(json_object_get(seen, tok), "lead %s was skipped", tok);
    json_decref(seen);
    free(before);
    /* The same for a CRM syncing oldest first by updated_at. */
    seen = json_object();
    s_page_all(h, "admin", "/v1/leads?order=updated", 64, seen);
    cr_expect_eq(json_object_size(seen), 500, "every lead once");
    json_object_foreach(seen, id, c) cr_expect_eq(json_integer_value(c), 1);
    json_decref(seen);
    /* Bad queries name the field. */
    json_t *o = NULL;
    cr_expect_eq(s_as(h, "admin", "GET", "/v1/leads?limit=501", NULL, &o), 422);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(o, "fields"), 0), "field")),
                     "limit");
    json_decref(o);
    cr_expect_eq(s_as(h, "admin", "GET", "/v1/leads?cursor=x1_y", NULL, NULL), 422);
    cr_expect_eq(
        s_as(h, "admin", "GET", "/v1/leads?order=updated&cursor=c1_y", NULL, NULL), 422,
        "a cursor of the other order");
    cr_expect_eq(s_as(h, "admin", "GET", "/v1/leads?updated_after=yesterday", NULL, NULL),
                 422);
    cr_expect_eq(s_as(h, "admin", "GET", "/v1/leads?stage=done", NULL, NULL), 422);
    lf_h_destroy(&h);
}

Test(lists, a_rep_key_lists_only_its_own_leads_and_sync_sees_activities, .timeout = 90) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true,\"manager\":\"m\"}");
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"ignore_shift\":true,\"manager\":\"m\"}");
    s_rep(h, "{\"id\":\"m\",\"name\":\"m\",\"capacity\":0}");
    s_key(h, "a", "rep");
    s_key(h, "m", "manager");
    char *ids[6];
    for (int i = 0; i < 6; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"phone\":\"1362222%04d\",\"name\":\"客户%d\"}", i,
                 i);
        ids[i] = s_lead(h, body);
    }
    long mine = s_count(h, "SELECT count(*) FROM leads WHERE owner = 'a'");
    cr_assert_eq(mine, 3, "round robin gave a three leads");
    json_t *o = NULL;
    cr_assert_eq(s_as(h, "a", "GET", "/v1/leads", NULL, &o), 200);
    size_t i;
    json_t *l;
    cr_expect_eq(json_array_size(json_object_get(o, "leads")), 3);
    json_array_foreach(json_object_get(o, "leads"), i, l) {
        cr_expect_str_eq(json_string_value(json_object_get(l, "owner")), "a");
        cr_expect_null(json_object_get(l, "timeline"), "lists leave the timeline out");
    }
    json_decref(o);
    /* Whatever the filter says. */
    cr_assert_eq(s_as(h, "a", "GET", "/v1/leads?owner=b", NULL, &o), 200);
    cr_expect_eq(json_array_size(json_object_get(o, "leads")), 0);
    json_decref(o);
    cr_assert_eq(s_as(h, "a", "GET", "/v1/leads?owner=me&q=%E5%AE%A2%E6%88%B7", NULL, &o),
                 200);
    cr_expect_eq(json_array_size(json_object_get(o, "leads")), 3, "q matches 客户");
    json_decref(o);
    /* Their manager sees both. */
    cr_assert_eq(s_as(h, "m", "GET", "/v1/leads?limit=500", NULL, &o), 200);
    cr_expect_eq(json_array_size(json_object_get(o, "leads")), 6);
    json_decref(o);
    /* An activity moves updated_at: a sync from "now" sees exactly that lead. */
    char *now = lf_h_sql(h, "SELECT lf_rfc3339(clock_timestamp())");
    usleep(20000);
    char *own = lf_h_sql(h, "SELECT id FROM leads WHERE owner = 'a' ORDER BY id LIMIT 1");
    char path[256];
    snprintf(path, sizeof path, "/v1/leads/%s/activities", own);
    cr_assert_eq(
        s_as(h, "a", "POST", path, "{\"type\":\"call\",\"outcome\":\"reached\"}", NULL),
        201);
    snprintf(path, sizeof path, "/v1/leads?order=updated&updated_after=%s", now);
    cr_assert_eq(s_as(h, "admin", "GET", path, NULL, &o), 200);
    cr_expect_eq(json_array_size(json_object_get(o, "leads")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(o, "leads"), 0), "id")),
                     own);
    json_decref(o);
    free(now);
    free(own);
    for (int k = 0; k < 6; k++)
        free(ids[k]);
    lf_h_destroy(&h);
}

/* GET /v1/leads?q= as admin: 1 when the answer is exactly the lead `id` (NULL: no
 * lead), else 0. */
static int s_search_is(lf_h_t *h, const char *q, const char *id) {
    char url[256];
    snprintf(url, sizeof url, "/v1/leads?q=%s", q);
    json_t *o = NULL;
    cr_assert_eq(s_as(h, "admin", "GET", url, NULL, &o), 200, "GET %s", url);
    json_t *ls = json_object_get(o, "leads");
    int ok =
        id ? json_array_size(ls) == 1 &&
                 !strcmp(json_string_value(json_object_get(json_array_get(ls, 0), "id")),
                         id)
           : json_array_size(ls) == 0;
    json_decref(o);
    return ok;
}

/* The search reads lead_search (0041), which triggers keep: a lead is found by its
 * name, company, e-mail and phone, case-insensitively; after a correction of its name
 * and company by the new ones only; updates that do not touch those fields (the
 * router's assignment, an edit of the need) leave its search row alone. */
Test(lists, search_finds_a_lead_by_its_current_name_company_email_and_phone,
     .timeout = 90) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true}");
    char *x = s_lead(h, "{\"phone\":\"13633330001\",\"name\":\"Wang Jian\","
                        "\"company\":\"Acme Trading\",\"email\":\"jian@acme.example\"}");
    char *y = s_lead(h, "{\"phone\":\"13633330002\",\"name\":\"客户 Li\"}");
    cr_expect(s_search_is(h, "wang", x));
    cr_expect(s_search_is(h, "WANG%20JIAN", x), "case-insensitive, with the space");
    cr_expect(s_search_is(h, "acme%20trad", x), "company");
    cr_expect(s_search_is(h, "jian%40acme", x), "e-mail");
    cr_expect(s_search_is(h, "33330002", y), "phone digits");
    cr_expect(s_search_is(h, "%E5%AE%A2%E6%88%B7", y), "客户");
    cr_expect(s_search_is(h, "100%25", NULL), "a %% typed is literal");
    cr_expect(s_search_is(h, "nobody", NULL));

    /* The router's assignment (s_lead waited for it) wrote the row once: its search
     * row is still the intake's; an edit of another field leaves it too. */
    char q[256];
    snprintf(q, sizeof q, "SELECT xmin FROM lead_search WHERE lead_id = '%s'", x);
    char *xmin0 = lf_h_sql(h, q);
    cr_assert(xmin0 && *xmin0);
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s", x);
    cr_assert_eq(s_as(h, "admin", "PATCH", path, "{\"need\":\"pumps\"}", NULL), 200);
    char *xmin1 = lf_h_sql(h, q);
    cr_expect_str_eq(xmin1, xmin0, "an edit of the need rewrote the search row");
    cr_assert_eq(s_as(h, "admin", "PATCH", path,
                      "{\"name\":\"Zhao Lei\",\"company\":\"Bolt Ltd\"}", NULL),
                 200);
    char *xmin2 = lf_h_sql(h, q);
    cr_expect_str_neq(xmin2, xmin0);
    cr_expect(s_search_is(h, "wang", NULL), "the old name no longer finds it");
    cr_expect(s_search_is(h, "trading", NULL), "nor the old company");
    cr_expect(s_search_is(h, "zhao%20lei", x), "the new name does");
    cr_expect(s_search_is(h, "BOLT", x), "and the new company");
    cr_expect(s_search_is(h, "jian%40acme", x), "the e-mail did not change");
    free(xmin0);
    free(xmin1);
    free(xmin2);
    free(x);
    free(y);
}

/* ---- the pool and claims ---- */

/* Team t: claim-only for owner_left (a handover to the pool stays there until
 * claimed), a daily claim limit and a 72-hour cool-down. */
static lf_h_t *s_pool_setup(int daily_limit) {
    lf_h_t *h = lf_h_new(0, 0);
    char cfg[512];
    snprintf(
        cfg, sizeof cfg,
        "{\"default_team\": \"t\", \"teams\": {\"t\": {\"manager\": \"m\","
        " \"pool\": {\"auto_route\": {\"owner_left\": false}, \"claim_daily_limit\": %d,"
        " \"claim_cooldown_hours\": 72}}}}",
        daily_limit);
    lf_h_config(h, "routing.json", cfg);
    lf_h_env(h, "LEADFLOW_POOL_TICK_MS", "200");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    return h;
}

/* Puts n leads of rep `from` into the pool (handover to the rules with nobody else
 * eligible). ids[] gets them, oldest first. */
static void s_fill_pool(lf_h_t *h, const char *from, int n, char **ids, int base) {
    for (int i = 0; i < n; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"phone\":\"1363333%04d\"}", base + i);
        ids[i] = s_lead(h, body);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/reps/%s/handover", from);
    json_t *o = NULL;
    cr_assert_eq(
        s_as(h, "admin", "POST", path, "{\"to\": null, \"reason\": \"leaving\"}", &o),
        200);
    cr_expect_eq(json_integer_value(json_object_get(o, "moved")), n);
    json_decref(o);
    char want[16];
    snprintf(want, sizeof want, "%d", n);
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) FROM leads WHERE pool_reason = 'owner_left'"
                            " AND owner IS NULL",
                            want, 15000),
              "the leads did not reach the pool");
}

static void s_reps(lf_h_t *h, const char *const *ids, int capacity) {
    for (; *ids; ids++) {
        char rep[200];
        snprintf(rep, sizeof rep,
                 "{\"id\":\"%s\",\"name\":\"%s\",\"team\":\"t\",\"ignore_shift\":true,"
                 "\"capacity\":%d}",
                 *ids, *ids, capacity);
        s_rep(h, rep);
        s_key(h, *ids, "rep");
    }
}

typedef struct {
    lf_h_t *h;
    const char *who, *path;
    pthread_barrier_t *go;
    int status;
} s_claimer_t;

static void *s_claimer(void *arg) {
    s_claimer_t *c = arg;
    pthread_barrier_wait(c->go);
    c->status = s_as(c->h, c->who, "POST", c->path, NULL, NULL);
    return NULL;
}

Test(lists, claim_only_pool_waits_and_two_reps_claiming_at_once_get_200_and_409,
     .timeout = 120) {
    lf_h_t *h = s_pool_setup(0);
    const char *const x[] = {"x", NULL}, *const yz[] = {"y", "z", NULL};
    s_reps(h, x, 30);
    s_reps(h, yz, 0);
    enum { N = 12 };
    char *ids[N];
    s_fill_pool(h, "x", N, ids, 0);
    /* y and z could take leads now: a claim-only pool still waits for a claim. */
    s_sql(h, "UPDATE reps SET capacity = 30 WHERE id IN ('y', 'z')");
    sleep(2);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM leads WHERE owner IS NULL AND"
                            " pool_reason = 'owner_left'"),
                 N, "a claim-only pool is not routed by itself");
    json_t *o = NULL;
    cr_assert_eq(s_as(h, "y", "GET", "/v1/pool", NULL, &o), 200);
    cr_expect_eq(json_array_size(json_object_get(o, "leads")), N);
    json_t *first = json_array_get(json_object_get(o, "leads"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(first, "id")), ids[0],
                     "oldest first");
    cr_expect_str_eq(json_string_value(json_object_get(first, "pool_reason")),
                     "owner_left");
    cr_expect(json_is_string(json_object_get(first, "pool_since")));
    json_decref(o);
    /* y and z claim each lead at the same moment: one 200, one 409, every time. */
    int wins[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/leads/%s/claim", ids[i]);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        s_claimer_t c[2] = {{h, "y", path, &go, 0}, {h, "z", path, &go, 0}};
        pthread_t th[2];
        for (int k = 0; k < 2; k++)
            pthread_create(&th[k], NULL, s_claimer, &c[k]);
        for (int k = 0; k < 2; k++)
            pthread_join(th[k], NULL);
        pthread_barrier_destroy(&go);
        cr_expect((c[0].status == 200 && c[1].status == 409) ||
                      (c[0].status == 409 && c[1].status == 200),
                  "lead %d: y got %d, z got %d", i, c[0].status, c[1].status);
        wins[0] += c[0].status == 200;
        wins[1] += c[1].status == 200;
    }
    cr_expect_eq(wins[0] + wins[1], N);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM leads WHERE owner IN ('y', 'z')"), N);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM lead_claims"), N, "one claim per lead");
    cr_expect_eq(s_count(h, "SELECT sum(open_count) FROM reps WHERE id IN ('y', 'z')"),
                 N);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM notifications WHERE kind ="
                            " 'lead_assigned' AND rep_id IN ('y', 'z')"),
                 N, "each claimer told once");
    /* The new owner gets its own first-contact clock (a lead.reassigned event). */
    cr_expect_eq(s_count(h, "SELECT count(*) FROM outbox WHERE type = 'lead.reassigned'"
                            " AND payload->>'cause' = 'claim'"),
                 N);
    for (int i = 0; i < N; i++)
        free(ids[i]);
    lf_h_destroy(&h);
}

Test(lists, claims_respect_capacity_the_daily_limit_and_the_cooldown, .timeout = 120) {
    lf_h_t *h = s_pool_setup(2);
    const char *const x[] = {"x", NULL}, *const y[] = {"y", NULL},
                      *const z[] = {"z", NULL};
    s_reps(h, x, 30);
    s_reps(h, y, 0);
    s_reps(h, z, 0);
    char *ids[4];
    s_fill_pool(h, "x", 4, ids, 100);
    char path[4][128];
    for (int i = 0; i < 4; i++)
        snprintf(path[i], sizeof path[i], "/v1/leads/%s/claim", ids[i]);
    json_t *o = NULL;
    /* z is paused (capacity 0): at capacity. */
    cr_expect_eq(s_as(h, "z", "POST", path[0], NULL, &o), 409);
    cr_expect(strstr(json_string_value(json_object_get(o, "message")), "capacity"));
    json_decref(o);
    /* x lost them: the cool-down. */
    cr_expect_eq(s_as(h, "x", "POST", path[0], NULL, &o), 409);
    cr_expect(strstr(json_string_value(json_object_get(o, "message")), "cool-down"));
    json_decref(o);
    /* y, capacity 1: one claim, then at capacity; capacity 10: the daily limit of 2. */
    s_sql(h, "UPDATE reps SET capacity = 1 WHERE id = 'y'");
    cr_expect_eq(s_as(h, "y", "POST", path[0], NULL, &o), 200);
    cr_expect_str_eq(json_string_value(json_object_get(o, "owner")), "y");
    cr_expect(json_is_null(json_object_get(o, "pool_reason")));
    json_decref(o);
    cr_expect_eq(s_as(h, "y", "POST", path[1], NULL, &o), 409);
    cr_expect(strstr(json_string_value(json_object_get(o, "message")), "capacity"));
    json_decref(o);
    s_sql(h, "UPDATE reps SET capacity = 10 WHERE id = 'y'");
    cr_expect_eq(s_as(h, "y", "POST", path[1], NULL, NULL), 200);
    cr_expect_eq(s_as(h, "y", "POST", path[2], NULL, &o), 409);
    cr_expect(
        strstr(json_string_value(json_object_get(o, "message")), "daily claim limit"));
    json_decref(o);
    /* A claimed lead is no longer in the pool. */
    s_sql(h, "UPDATE reps SET capacity = 10 WHERE id = 'z'");
    cr_expect_eq(s_as(h, "z", "POST", path[0], NULL, &o), 409);
    cr_expect(strstr(json_string_value(json_object_get(o, "message")), "no longer"));
    json_decref(o);
    cr_expect_eq(s_as(h, "z", "POST", path[2], NULL, NULL), 200,
                 "z's own limit is fresh");
    /* What was refused changed nothing. */
    cr_expect_eq(s_count(h, "SELECT count(*) FROM lead_claims"), 3);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM leads WHERE pool_reason IS NOT NULL"),
                 1);
    cr_expect_eq(s_count(h, "SELECT open_count FROM reps WHERE id = 'y'"), 2);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
    lf_h_destroy(&h);
}

/* ---- manual moves ---- */

Test(lists, a_manager_assigns_and_hands_over_500_leads, .timeout = 240) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_config(h, "routing.json", "{\"default_team\": \"t\"}");
    lf_h_start(h, LF_H_INTAKE, 0);
    lf_h_start(h, LF_H_ROUTER, 0);
    s_rep(h, "{\"id\":\"boss\",\"name\":\"boss\",\"team\":\"hq\",\"capacity\":0}");
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"team\":\"t\",\"manager\":\"boss\","
             "\"ignore_shift\":true,\"capacity\":1000}");
    s_rep(h, "{\"id\":\"b\",\"name\":\"b\",\"team\":\"t\",\"manager\":\"boss\","
             "\"ignore_shift\":true,\"capacity\":0}");
    s_rep(h, "{\"id\":\"other\",\"name\":\"o\",\"team\":\"u\",\"capacity\":0}");
    s_key(h, "boss", "manager");
    s_key(h, "a", "rep");
    enum { N = 500 };
    s_poster_t ps[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        ps[t] = (s_poster_t){h, t * N / 4, (t + 1) * N / 4, 0};
        pthread_create(&th[t], NULL, s_poster, &ps[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    cr_assert(
        lf_h_wait_sql(h, "SELECT count(*) FROM leads WHERE owner = 'a'", "500", 60000),
        "the 500 leads did not all reach a");
    /* One lead moved by hand first, with a reason. */
    char *one = lf_h_sql(h, "SELECT id FROM leads ORDER BY created_at, id LIMIT 1");
    char path[128];
    snprintf(path, sizeof path, "/v1/leads/%s/assign", one);
    json_t *o = NULL;
    cr_expect_eq(s_as(h, "a", "POST", path, "{\"rep\":\"b\"}", NULL), 403,
                 "a rep does not");
    cr_expect_eq(s_as(h, "boss", "POST", path, "{\"rep\":\"other\"}", NULL), 422,
                 "not boss's rep");
    cr_expect_eq(s_as(h, "boss", "POST", path, "{\"rep\":\"b\",\"why\":\"x\"}", NULL),
                 422);
    cr_assert_eq(
        s_as(h, "boss", "POST", path, "{\"rep\":\"b\",\"reason\":\"speaks 粤语\"}", &o),
        200);
    cr_expect_str_eq(json_string_value(json_object_get(o, "owner")), "b");
    cr_expect_str_eq(json_string_value(json_object_get(o, "stage")), "new", "stage kept");
    json_decref(o);
    char q[512];
    snprintf(
        q, sizeof q,
        "SELECT actor || '/' || (data->>'cause') || '/' || (data->>'from') || '/' ||"
        " (data->>'owner') || '/' || (data->>'note') FROM lead_events WHERE lead_id ="
        " '%s' AND type = 'reassigned'",
        one);
    char *ev = lf_h_sql(h, q);
    cr_expect_str_eq(ev, "boss/assign/a/b/speaks 粤语");
    free(ev);
    cr_expect_eq(s_as(h, "boss", "POST", path, "{\"rep\":\"b\"}", NULL), 409,
                 "already b's");
    /* The ledger counts the manual move. */
    cr_expect_eq(s_count(h, "SELECT (state->'reps'->'b'->>'assigned_total')::int FROM"
                            " routing_ledger WHERE team = '*'"),
                 1);
    /* Hand over the other 499 to b. */
    cr_assert_eq(s_as(h, "boss", "POST", "/v1/reps/a/handover",
                      "{\"to\":\"b\",\"stages\":[\"new\"],\"reason\":\"a leaves\"}", &o),
                 200);
    cr_expect_eq(json_integer_value(json_object_get(o, "moved")), N - 1);
    json_decref(o);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM leads WHERE owner = 'b'"), N);
    cr_expect_eq(s_count(h, "SELECT open_count FROM reps WHERE id = 'b'"), N);
    cr_expect_eq(s_count(h, "SELECT open_count FROM reps WHERE id = 'a'"), 0);
    cr_expect_eq(s_count(h, "SELECT assigned_total FROM reps WHERE id = 'b'"), N);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM lead_events WHERE type = 'reassigned'"
                            " AND data->>'cause' = 'handover' AND actor = 'boss'"),
                 N - 1);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM notifications WHERE kind ="
                            " 'lead_assigned' AND rep_id = 'b'"),
                 N);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM notifications WHERE kind ="
                            " 'lead_reassigned' AND rep_id = 'a'"),
                 N);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM leads WHERE stage <> 'new'"), 0);
    /* Nothing left to hand over. */
    cr_assert_eq(s_as(h, "boss", "POST", "/v1/reps/a/handover", "{\"to\":\"b\"}", &o),
                 200);
    cr_expect_eq(json_integer_value(json_object_get(o, "moved")), 0);
    json_decref(o);
    cr_expect_eq(s_as(h, "boss", "POST", "/v1/reps/a/handover",
                      "{\"to\":\"b\",\"stages\":"
                      "[\"won\"]}",
                      NULL),
                 422);
    /* {"rep": null}: the router routes it again, without anyone who had it. */
    s_rep(h, "{\"id\":\"c\",\"name\":\"c\",\"team\":\"t\",\"manager\":\"boss\","
             "\"ignore_shift\":true}");
    cr_assert_eq(s_as(h, "boss", "POST", path, "{\"rep\":null}", &o), 202);
    json_decref(o);
    snprintf(q, sizeof q, "SELECT owner FROM leads WHERE id = '%s'", one);
    cr_expect(lf_h_wait_sql(h, q, "c", 10000), "not routed again to the one rep left");
    free(one);
    lf_h_destroy(&h);
}

Test(lists, the_agenda_lists_clocks_and_follow_ups_soonest_first, .timeout = 90) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE | LF_H_ROUTER | LF_H_SCHEDULER, 0);
    s_rep(h, "{\"id\":\"a\",\"name\":\"a\",\"ignore_shift\":true}");
    s_key(h, "a", "rep");
    char *l1 =
        s_lead(h, "{\"phone\":\"13644440001\",\"name\":\"甲\",\"urgency\":\"高\"}");
    char *l2 = s_lead(h, "{\"phone\":\"13644440002\",\"name\":\"乙\"}");
    char path[128], body[160];
    snprintf(path, sizeof path, "/v1/leads/%s/activities", l2);
    char *soon = lf_h_sql(h, "SELECT lf_rfc3339(now() + interval '2 seconds')");
    snprintf(body, sizeof body, "{\"type\":\"call\",\"next_action_at\":\"%s\"}", soon);
    free(soon);
    cr_assert_eq(s_as(h, "a", "POST", path, body, NULL), 201);
    sleep(3); /* the follow-up is due, and then overdue */
    char q[256];
    snprintf(
        q, sizeof q,
        "SELECT count(*) FROM timers WHERE kind = 'sla_first_contact' AND lead_id = '%s'",
        l1);
    cr_assert(lf_h_wait_sql(h, q, "1", 10000));
    cr_assert(lf_h_wait_sql(h, "SELECT count(*) FROM timers WHERE kind = 'follow_up'",
                            "1", 10000));
    json_t *o = NULL;
    cr_assert_eq(s_as(h, "a", "GET", "/v1/me/agenda", NULL, &o), 200);
    json_t *items = json_object_get(o, "items");
    cr_assert_geq(json_array_size(items), 2);
    json_t *i0 = json_array_get(items, 0);
    /* The follow-up is overdue and first; l1's first-contact clock runs. */
    cr_expect_str_eq(json_string_value(json_object_get(i0, "kind")), "follow_up");
    cr_expect_str_eq(json_string_value(json_object_get(i0, "lead_id")), l2);
    cr_expect(json_is_true(json_object_get(i0, "overdue")));
    cr_expect_str_eq(
        json_string_value(json_object_get(json_object_get(i0, "lead"), "name")), "乙");
    int clock = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        if (!strcmp(json_string_value(json_object_get(it, "kind")), "first_contact") &&
            !strcmp(json_string_value(json_object_get(it, "lead_id")), l1))
            clock = 1;
    }
    cr_expect(clock, "l1's first-contact clock is on the agenda");
    json_decref(o);
    cr_expect_eq(s_as(h, "admin", "GET", "/v1/me/agenda", NULL, NULL), 403);
    free(l1);
    free(l2);
    lf_h_destroy(&h);
}
