/* test_access.c - who may do what (docs/intake.md, "Keys and scopes"), against the real
 * intake.
 *
 * The matrix runs every route with every kind of caller - no key, a wrong key, a
 * web-form key, a phone key, a rep, its manager, and the admin - and checks the exact
 * status: the call works, 401, 403 (a known key outside the route's scopes) or 404 (a
 * lead or rep the caller does not reach). A route of intake that has no row here fails
 * the test, so a new route comes with its access rules tested.
 *
 * The team used throughout: zhao.dir manages li.ming, who manages wang.fang and
 * zhang.wei (the demo reps); sun.li manages qian.rep, a team of its own. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../services/intake/access.h"
#include "../../services/intake/intake.h"
#include "../support/harness.h"
#include "lf/util.h"

TestSuite(access, .fini = lf_h_fini);

/* Keys by caller name; each inserted with its scope. */
static const struct {
    const char *name, *scope, *channel, *rep, *origins;
} s_callers[] = {
    {"web", "intake", "web_form", NULL, "{https://shop.example.com}"},
    {"phone", "intake", "phone", NULL, "{}"},
    {"rep", "rep", NULL, "wang.fang", "{}"},
    {"mgr", "manager", NULL, "li.ming", "{}"},
    {"dir", "manager", NULL, "zhao.dir", "{}"},
    {"qian", "rep", NULL, "qian.rep", "{}"},
    {"sun", "manager", NULL, "sun.li", "{}"},
};

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

/* lf_h_http with a NUL-terminated body. */
static int s_http(lf_h_t *h, const char *method, const char *path,
                  const char *const *headers, const char *body, char **out) {
    return lf_h_http(h, method, path, headers, body, strlen(body), out);
}

/* The team above, the keys "key-<caller>", and three leads: one of wang.fang, one of
 * qian.rep, one in no one's hands. */
static lf_h_t *s_setup(char own[64], char other[64], char pool[64]) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 1);
    s_sql(h, "INSERT INTO reps (id, name, team) VALUES ('zhao.dir', 'Zhao', 'east'),"
             " ('sun.li', 'Sun', 'north'), ('qian.rep', 'Qian', 'north')");
    s_sql(h, "UPDATE reps SET manager = 'zhao.dir' WHERE id = 'li.ming'");
    s_sql(h, "UPDATE reps SET manager = 'sun.li' WHERE id = 'qian.rep'");
    for (size_t i = 0; i < sizeof s_callers / sizeof s_callers[0]; i++)
        s_sql(h,
              "INSERT INTO api_keys (id, key_hash, scope, channel, rep_id,"
              " allowed_origins, rate_per_minute) VALUES ('k-%s',"
              " encode(sha256('key-%s'::bytea), 'hex'), '%s', %s%s%s, %s%s%s, '%s', 0)",
              s_callers[i].name, s_callers[i].name, s_callers[i].scope,
              s_callers[i].channel ? "'" : "",
              s_callers[i].channel ? s_callers[i].channel : "NULL",
              s_callers[i].channel ? "'" : "", s_callers[i].rep ? "'" : "",
              s_callers[i].rep ? s_callers[i].rep : "NULL", s_callers[i].rep ? "'" : "",
              s_callers[i].origins);
    const char *owners[] = {"'wang.fang'", "'qian.rep'", "NULL"};
    char *ids[] = {own, other, pool};
    for (int i = 0; i < 3; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"phone\":\"1370013700%d\",\"name\":\"L%d\"}", i,
                 i);
        json_t *o = NULL;
        cr_assert_eq(lf_h_post_json(h, "/v1/leads", body, &o), 201);
        snprintf(ids[i], 64, "%s", json_string_value(json_object_get(o, "id")));
        json_decref(o);
        s_sql(h, "UPDATE leads SET owner = %s WHERE id = '%s'", owners[i], ids[i]);
    }
    return h;
}

/* One row of the matrix: caller, method, the route's pattern (for the coverage
 * check), the path ({own}, {other}, {pool} and {key-*} are filled in), body and
 * expected status. %d in a body becomes the row number (unique phones, ids). */
typedef struct {
    const char *caller; /* "none", "bad", or a name in s_callers, or "admin" */
    const char *method;
    const char *pattern;
    const char *path;
    const char *ctype;
    const char *body;
    int expect;
} s_row_t;

#define J "application/json"
#define CSV "text/csv"
#define LEAD "{\"phone\":\"1390000%04d\"}"
#define CALL "{\"CallSid\":\"CA%d\",\"From\":\"1380000%04d\"}"
#define IMPORT "phone\n1350000%04d\n"

static const s_row_t s_matrix[] = {
    /* public */
    {"none", "GET", "/healthz", "/healthz", NULL, NULL, 200},
    {"none", "GET", "/metrics", "/metrics", NULL, NULL, 200},
    {"rep", "GET", "/healthz", "/healthz", NULL, NULL, 200},
    {"phone", "GET", "/metrics", "/metrics", NULL, NULL, 200},
    /* creating leads: intake keys and the admin */
    {"none", "POST", "/v1/leads", "/v1/leads", J, LEAD, 401},
    {"bad", "POST", "/v1/leads", "/v1/leads", J, LEAD, 401},
    {"web", "POST", "/v1/leads", "/v1/leads", J, LEAD, 201},
    {"phone", "POST", "/v1/leads", "/v1/leads", J, LEAD, 201},
    {"rep", "POST", "/v1/leads", "/v1/leads", J, LEAD, 403},
    {"mgr", "POST", "/v1/leads", "/v1/leads", J, LEAD, 403},
    {"admin", "POST", "/v1/leads", "/v1/leads", J, LEAD, 201},
    {"none", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 401},
    {"bad", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 401},
    {"web", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 403},
    {"phone", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 200},
    {"rep", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 403},
    {"mgr", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 403},
    {"admin", "POST", "/v1/leads/import", "/v1/leads/import", CSV, IMPORT, 200},
    {"none", "POST", "/v1/calls", "/v1/calls", J, CALL, 401},
    {"bad", "POST", "/v1/calls", "/v1/calls", J, CALL, 401},
    {"web", "POST", "/v1/calls", "/v1/calls", J, CALL, 403},
    {"phone", "POST", "/v1/calls", "/v1/calls", J, CALL, 201},
    {"rep", "POST", "/v1/calls", "/v1/calls", J, CALL, 403},
    {"mgr", "POST", "/v1/calls", "/v1/calls", J, CALL, 403},
    {"admin", "POST", "/v1/calls", "/v1/calls", J, CALL, 201},
    /* reading a lead: people, within their reach */
    {"none", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 401},
    {"bad", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 401},
    {"web", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 403},
    {"phone", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 403},
    {"rep", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 200},
    {"rep", "GET", "/v1/leads/{}", "/v1/leads/{other}", NULL, NULL, 404},
    {"rep", "GET", "/v1/leads/{}", "/v1/leads/{pool}", NULL, NULL, 404},
    {"mgr", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 200},
    {"mgr", "GET", "/v1/leads/{}", "/v1/leads/{other}", NULL, NULL, 404},
    {"dir", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 200},
    {"sun", "GET", "/v1/leads/{}", "/v1/leads/{own}", NULL, NULL, 404},
    {"sun", "GET", "/v1/leads/{}", "/v1/leads/{other}", NULL, NULL, 200},
    {"admin", "GET", "/v1/leads/{}", "/v1/leads/{other}", NULL, NULL, 200},
    {"admin", "GET", "/v1/leads/{}", "/v1/leads/{pool}", NULL, NULL, 200},
    /* changing a lead's facts */
    {"none", "PATCH", "/v1/leads/{}", "/v1/leads/{own}", J, "{\"need\":\"x\"}", 401},
    {"phone", "PATCH", "/v1/leads/{}", "/v1/leads/{own}", J, "{\"need\":\"x\"}", 403},
    {"web", "PATCH", "/v1/leads/{}", "/v1/leads/{own}", J, "{\"need\":\"x\"}", 403},
    {"rep", "PATCH", "/v1/leads/{}", "/v1/leads/{own}", J, "{\"need\":\"r%d\"}", 200},
    {"rep", "PATCH", "/v1/leads/{}", "/v1/leads/{other}", J, "{\"need\":\"x\"}", 404},
    {"mgr", "PATCH", "/v1/leads/{}", "/v1/leads/{own}", J, "{\"need\":\"m%d\"}", 200},
    {"mgr", "PATCH", "/v1/leads/{}", "/v1/leads/{other}", J, "{\"need\":\"x\"}", 404},
    {"admin", "PATCH", "/v1/leads/{}", "/v1/leads/{pool}", J, "{\"need\":\"a%d\"}", 200},
    /* stage moves: negotiation from new is against the rules (409), which a caller
     * reaches only after access is granted */
    {"none", "POST", "/v1/leads/{}/stage", "/v1/leads/{own}/stage", J,
     "{\"to\":\"negotiation\"}", 401},
    {"phone", "POST", "/v1/leads/{}/stage", "/v1/leads/{own}/stage", J,
     "{\"to\":\"negotiation\"}", 403},
    {"rep", "POST", "/v1/leads/{}/stage", "/v1/leads/{own}/stage", J,
     "{\"to\":\"negotiation\"}", 409},
    {"rep", "POST", "/v1/leads/{}/stage", "/v1/leads/{other}/stage", J,
     "{\"to\":\"negotiation\"}", 404},
    {"mgr", "POST", "/v1/leads/{}/stage", "/v1/leads/{own}/stage", J,
     "{\"to\":\"negotiation\"}", 409},
    {"mgr", "POST", "/v1/leads/{}/stage", "/v1/leads/{other}/stage", J,
     "{\"to\":\"negotiation\"}", 404},
    {"admin", "POST", "/v1/leads/{}/stage", "/v1/leads/{other}/stage", J,
     "{\"to\":\"negotiation\"}", 409},
    /* activities */
    {"none", "POST", "/v1/leads/{}/activities", "/v1/leads/{own}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 401},
    {"phone", "POST", "/v1/leads/{}/activities", "/v1/leads/{own}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 403},
    {"rep", "POST", "/v1/leads/{}/activities", "/v1/leads/{own}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 201},
    {"rep", "POST", "/v1/leads/{}/activities", "/v1/leads/{other}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 404},
    {"mgr", "POST", "/v1/leads/{}/activities", "/v1/leads/{other}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 404},
    {"dir", "POST", "/v1/leads/{}/activities", "/v1/leads/{own}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 201},
    {"admin", "POST", "/v1/leads/{}/activities", "/v1/leads/{pool}/activities", J,
     "{\"type\":\"note\",\"note\":\"n\"}", 201},
    /* the pipeline definition and customers */
    {"none", "GET", "/v1/pipeline", "/v1/pipeline", NULL, NULL, 401},
    {"web", "GET", "/v1/pipeline", "/v1/pipeline", NULL, NULL, 403},
    {"phone", "GET", "/v1/pipeline", "/v1/pipeline", NULL, NULL, 403},
    {"rep", "GET", "/v1/pipeline", "/v1/pipeline", NULL, NULL, 200},
    {"mgr", "GET", "/v1/pipeline", "/v1/pipeline", NULL, NULL, 200},
    {"admin", "GET", "/v1/pipeline", "/v1/pipeline", NULL, NULL, 200},
    {"phone", "GET", "/v1/customers/{}", "/v1/customers/1", NULL, NULL, 403},
    {"rep", "GET", "/v1/customers/{}", "/v1/customers/1", NULL, NULL, 404},
    {"admin", "GET", "/v1/customers/{}", "/v1/customers/1", NULL, NULL, 404},
    /* reps */
    {"none", "POST", "/v1/reps", "/v1/reps", J, "{\"id\":\"n%d\",\"name\":\"N\"}", 401},
    {"phone", "POST", "/v1/reps", "/v1/reps", J, "{\"id\":\"n%d\",\"name\":\"N\"}", 403},
    {"rep", "POST", "/v1/reps", "/v1/reps", J, "{\"id\":\"n%d\",\"name\":\"N\"}", 403},
    {"mgr", "POST", "/v1/reps", "/v1/reps", J, "{\"id\":\"n%d\",\"name\":\"N\"}", 403},
    {"admin", "POST", "/v1/reps", "/v1/reps", J, "{\"id\":\"n%d\",\"name\":\"N\"}", 201},
    {"phone", "GET", "/v1/reps", "/v1/reps", NULL, NULL, 403},
    {"rep", "GET", "/v1/reps", "/v1/reps", NULL, NULL, 200},
    {"mgr", "GET", "/v1/reps", "/v1/reps", NULL, NULL, 200},
    {"admin", "GET", "/v1/reps", "/v1/reps", NULL, NULL, 200},
    {"phone", "GET", "/v1/reps/{}", "/v1/reps/wang.fang", NULL, NULL, 403},
    {"rep", "GET", "/v1/reps/{}", "/v1/reps/wang.fang", NULL, NULL, 200},
    {"rep", "GET", "/v1/reps/{}", "/v1/reps/zhang.wei", NULL, NULL, 404},
    {"mgr", "GET", "/v1/reps/{}", "/v1/reps/zhang.wei", NULL, NULL, 200},
    {"mgr", "GET", "/v1/reps/{}", "/v1/reps/qian.rep", NULL, NULL, 404},
    {"dir", "GET", "/v1/reps/{}", "/v1/reps/zhang.wei", NULL, NULL, 200},
    {"admin", "GET", "/v1/reps/{}", "/v1/reps/qian.rep", NULL, NULL, 200},
    {"phone", "PATCH", "/v1/reps/{}", "/v1/reps/wang.fang", J, "{\"capacity\":5}", 403},
    {"rep", "PATCH", "/v1/reps/{}", "/v1/reps/wang.fang", J, "{\"capacity\":5}", 403},
    {"rep", "PATCH", "/v1/reps/{}", "/v1/reps/wang.fang", J, "{\"out_of_office\":[]}",
     200},
    {"rep", "PATCH", "/v1/reps/{}", "/v1/reps/wang.fang", J,
     "{\"manager\":\"wang.fang\"}", 403},
    {"rep", "PATCH", "/v1/reps/{}", "/v1/reps/zhang.wei", J,
     "{\"manager\":\"wang.fang\"}", 404},
    {"mgr", "PATCH", "/v1/reps/{}", "/v1/reps/wang.fang", J, "{\"capacity\":2%d}", 200},
    {"mgr", "PATCH", "/v1/reps/{}", "/v1/reps/wang.fang", J, "{\"manager\":\"sun.li\"}",
     403},
    {"mgr", "PATCH", "/v1/reps/{}", "/v1/reps/li.ming", J, "{\"capacity\":99}", 403},
    {"mgr", "PATCH", "/v1/reps/{}", "/v1/reps/qian.rep", J, "{\"capacity\":1}", 404},
    {"admin", "PATCH", "/v1/reps/{}", "/v1/reps/qian.rep", J, "{\"capacity\":3%d}", 200},
    /* keys */
    {"none", "POST", "/v1/keys", "/v1/keys", J,
     "{\"scope\":\"rep\",\"rep\":\"wang.fang\"}", 401},
    {"phone", "POST", "/v1/keys", "/v1/keys", J,
     "{\"scope\":\"rep\",\"rep\":\"wang.fang\"}", 403},
    {"rep", "POST", "/v1/keys", "/v1/keys", J,
     "{\"scope\":\"rep\",\"rep\":\"wang.fang\"}", 403},
    {"mgr", "POST", "/v1/keys", "/v1/keys", J,
     "{\"scope\":\"rep\",\"rep\":\"wang.fang\"}", 201},
    {"mgr", "POST", "/v1/keys", "/v1/keys", J, "{\"scope\":\"rep\",\"rep\":\"qian.rep\"}",
     422},
    {"mgr", "POST", "/v1/keys", "/v1/keys", J, "{\"scope\":\"admin\"}", 403},
    {"mgr", "POST", "/v1/keys", "/v1/keys", J,
     "{\"scope\":\"manager\",\"rep\":\"li.ming\"}", 403},
    {"admin", "POST", "/v1/keys", "/v1/keys", J,
     "{\"scope\":\"rep\",\"rep\":\"qian.rep\"}", 201},
    {"admin", "POST", "/v1/keys", "/v1/keys", J, "{\"scope\":\"rep\",\"rep\":\"nobody\"}",
     422},
    {"none", "GET", "/v1/keys", "/v1/keys", NULL, NULL, 401},
    {"rep", "GET", "/v1/keys", "/v1/keys", NULL, NULL, 403},
    {"mgr", "GET", "/v1/keys", "/v1/keys", NULL, NULL, 200},
    {"admin", "GET", "/v1/keys", "/v1/keys", NULL, NULL, 200},
    {"none", "DELETE", "/v1/keys/{}", "/v1/keys/k-spare-wang", NULL, NULL, 401},
    {"rep", "DELETE", "/v1/keys/{}", "/v1/keys/k-spare-wang", NULL, NULL, 403},
    {"mgr", "DELETE", "/v1/keys/{}", "/v1/keys/k-spare-qian", NULL, NULL, 404},
    {"mgr", "DELETE", "/v1/keys/{}", "/v1/keys/k-spare-wang", NULL, NULL, 200},
    {"admin", "DELETE", "/v1/keys/{}", "/v1/keys/k-spare-qian", NULL, NULL, 200},
    {"admin", "DELETE", "/v1/keys/{}", "/v1/keys/no-such-key", NULL, NULL, 404},
    /* lists, the pool and moves (these rows move leads: they come last) */
    {"none", "GET", "/v1/leads", "/v1/leads", NULL, NULL, 401},
    {"phone", "GET", "/v1/leads", "/v1/leads", NULL, NULL, 403},
    {"rep", "GET", "/v1/leads", "/v1/leads", NULL, NULL, 200},
    {"mgr", "GET", "/v1/leads", "/v1/leads?owner=qian.rep", NULL, NULL, 200},
    {"admin", "GET", "/v1/leads", "/v1/leads", NULL, NULL, 200},
    {"phone", "GET", "/v1/me/agenda", "/v1/me/agenda", NULL, NULL, 403},
    {"rep", "GET", "/v1/me/agenda", "/v1/me/agenda", NULL, NULL, 200},
    {"admin", "GET", "/v1/me/agenda", "/v1/me/agenda", NULL, NULL, 403},
    {"web", "GET", "/v1/pool", "/v1/pool", NULL, NULL, 403},
    {"rep", "GET", "/v1/pool", "/v1/pool", NULL, NULL, 200},
    {"admin", "GET", "/v1/pool", "/v1/pool?team=east", NULL, NULL, 200},
    {"phone", "POST", "/v1/leads/{}/claim", "/v1/leads/{pool}/claim", NULL, NULL, 403},
    {"admin", "POST", "/v1/leads/{}/claim", "/v1/leads/{pool}/claim", NULL, NULL, 403},
    {"rep", "POST", "/v1/leads/{}/claim", "/v1/leads/{pool}/claim", NULL, NULL, 409},
    {"rep", "POST", "/v1/leads/{}/claim", "/v1/leads/no-such-lead/claim", NULL, NULL,
     404},
    {"rep", "POST", "/v1/leads/{}/assign", "/v1/leads/{own}/assign", J,
     "{\"rep\":\"zhang.wei\"}", 403},
    {"phone", "POST", "/v1/leads/{}/assign", "/v1/leads/{own}/assign", J,
     "{\"rep\":\"zhang.wei\"}", 403},
    {"mgr", "POST", "/v1/leads/{}/assign", "/v1/leads/{other}/assign", J,
     "{\"rep\":\"zhang.wei\"}", 404},
    {"mgr", "POST", "/v1/leads/{}/assign", "/v1/leads/{own}/assign", J,
     "{\"rep\":\"qian.rep\"}", 422},
    {"mgr", "POST", "/v1/leads/{}/assign", "/v1/leads/{own}/assign", J,
     "{\"rep\":\"zhang.wei\",\"reason\":\"on leave\"}", 200},
    {"admin", "POST", "/v1/leads/{}/assign", "/v1/leads/{pool}/assign", J,
     "{\"rep\":\"qian.rep\"}", 200},
    {"rep", "POST", "/v1/reps/{}/handover", "/v1/reps/wang.fang/handover", J,
     "{\"to\":null}", 403},
    {"mgr", "POST", "/v1/reps/{}/handover", "/v1/reps/qian.rep/handover", J,
     "{\"to\":\"wang.fang\"}", 404},
    {"mgr", "POST", "/v1/reps/{}/handover", "/v1/reps/zhang.wei/handover", J,
     "{\"to\":\"wang.fang\"}", 200},
    {"admin", "POST", "/v1/reps/{}/handover", "/v1/reps/nobody/handover", J,
     "{\"to\":null}", 404},
};

static void s_fill(char *out, size_t outsz, const char *tmpl, const char *own,
                   const char *other, const char *pool) {
    out[0] = '\0';
    size_t n = 0;
    for (const char *p = tmpl; *p && n + 1 < outsz;) {
        const char *sub = NULL;
        size_t skip = 0;
        if (!strncmp(p, "{own}", 5))
            sub = own, skip = 5;
        else if (!strncmp(p, "{other}", 7))
            sub = other, skip = 7;
        else if (!strncmp(p, "{pool}", 6))
            sub = pool, skip = 6;
        if (sub) {
            n += (size_t)snprintf(out + n, outsz - n, "%s", sub);
            p += skip;
        } else {
            out[n++] = *p++;
            out[n] = '\0';
        }
    }
}

Test(access, every_route_by_every_scope, .timeout = 120) {
    char own[64], other[64], pool[64];
    lf_h_t *h = s_setup(own, other, pool);
    s_sql(h, "INSERT INTO api_keys (id, key_hash, scope, rep_id) VALUES"
             " ('k-spare-wang', 'spare-wang', 'rep', 'wang.fang'),"
             " ('k-spare-qian', 'spare-qian', 'rep', 'qian.rep')");
    int nrows = (int)(sizeof s_matrix / sizeof s_matrix[0]);
    for (int i = 0; i < nrows; i++) {
        const s_row_t *c = &s_matrix[i];
        char path[256], body[512] = "", auth[96] = "Authorization:", ct[96];
        s_fill(path, sizeof path, c->path, own, other, pool);
        if (c->body)
            snprintf(body, sizeof body, c->body, i, i);
        if (!strcmp(c->caller, "admin"))
            snprintf(auth, sizeof auth, "Authorization: Bearer test-admin-key");
        else if (!strcmp(c->caller, "bad"))
            snprintf(auth, sizeof auth, "Authorization: Bearer key-nobody-has");
        else if (strcmp(c->caller, "none"))
            snprintf(auth, sizeof auth, "Authorization: Bearer key-%s", c->caller);
        snprintf(ct, sizeof ct, "Content-Type: %s", c->ctype ? c->ctype : "");
        const char *hd[] = {auth, c->ctype ? ct : "Content-Type:", NULL};
        char *resp = NULL;
        int st = lf_h_http(h, c->method, path, hd, c->body ? body : NULL,
                           c->body ? strlen(body) : 0, &resp);
        cr_expect_eq(st, c->expect, "row %d: %s %s %s: got %d, expected %d (%s)", i,
                     c->caller, c->method, path, st, c->expect, resp);
        if (st == 403)
            cr_expect(strstr(resp, "\"error\":\"forbidden\""), "row %d: %s", i, resp);
        if (st == 404 && strstr(path, "/v1/leads/"))
            cr_expect(strstr(resp, "no such lead"), "row %d: %s", i, resp);
        free(resp);
    }
    /* Every route of intake has rows here and is listed in access.c. */
    const lf_route_t *const tables[] = {
        lf_routes_core,     lf_routes_leads, lf_routes_channels, lf_routes_reps,
        lf_routes_pipeline, lf_routes_keys,  lf_routes_lists,    lf_routes_pool};
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const lf_route_t *r = tables[t]; r->method; r++) {
            cr_expect(lf_access_listed(r->method, r->pattern), "%s %s is not in access.c",
                      r->method, r->pattern);
            int rows = 0;
            for (int i = 0; i < nrows; i++)
                rows += !strcmp(s_matrix[i].method, r->method) &&
                        !strcmp(s_matrix[i].pattern, r->pattern);
            cr_expect(rows >= 2, "%s %s has %d rows in the matrix", r->method, r->pattern,
                      rows);
        }
    /* What the refused calls did not do. */
    cr_expect_eq(s_count(h, "SELECT count(*) FROM reps WHERE id LIKE 'n%%'"), 1);
    cr_expect_eq(s_count(h, "SELECT capacity FROM reps WHERE id = 'li.ming'"), 50);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM reps WHERE manager = 'sun.li'"), 1);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s' AND"
                         " type = 'updated'",
                         other),
                 0, "nobody outside the team changed qian's lead");
    cr_expect_eq(s_count(h, "SELECT count(*) FROM api_keys WHERE rep_id = 'qian.rep' AND"
                            " created_by = 'k-mgr'"),
                 0);
    lf_h_destroy(&h);
}

/* A rep trying every way to another rep's lead, and what each attempt leaves. */
Test(access, a_rep_cannot_reach_another_reps_lead, .timeout = 60) {
    char own[64], other[64], pool[64];
    lf_h_t *h = s_setup(own, other, pool);
    s_sql(h, "UPDATE leads SET owner = 'zhang.wei' WHERE id = '%s'", other);
    const char *as_wang[] = {"Authorization: Bearer key-rep",
                             "Content-Type: application/json", NULL};
    char path[160], *body = NULL;
    snprintf(path, sizeof path, "/v1/leads/%s", other);
    cr_expect_eq(lf_h_http(h, "GET", path, as_wang, NULL, 0, &body), 404);
    cr_expect(!strstr(body, "13700137001"), "nothing of the lead in the answer");
    free(body);
    cr_expect_eq(s_http(h, "PATCH", path, as_wang, "{\"need\":\"mine\"}", NULL), 404);
    snprintf(path, sizeof path, "/v1/leads/%s/stage", other);
    cr_expect_eq(s_http(h, "POST", path, as_wang, "{\"to\":\"contacted\"}", NULL), 404);
    snprintf(path, sizeof path, "/v1/leads/%s/activities", other);
    cr_expect_eq(s_http(h, "POST", path, as_wang, "{\"type\":\"call\"}", NULL), 404);
    cr_expect_eq(s_http(h, "POST", path, as_wang,
                        "{\"type\":\"call\",\"by\":\"zhang.wei\"}", NULL),
                 403, "nor in another rep's name");
    /* The reps list shows wang.fang only; zhang.wei is not there to be found. */
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps", as_wang, NULL, 0, &body), 200);
    json_t *o = json_loads(body, 0, NULL);
    free(body);
    cr_expect_eq(json_array_size(json_object_get(o, "reps")), 1);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(o, "reps"), 0), "id")),
                     "wang.fang");
    json_decref(o);
    /* ... nor can it make itself zhang.wei's manager, or its own. */
    cr_expect_eq(s_http(h, "PATCH", "/v1/reps/zhang.wei", as_wang,
                        "{\"manager\":\"wang.fang\"}", NULL),
                 404);
    cr_expect_eq(s_http(h, "PATCH", "/v1/reps/wang.fang", as_wang,
                        "{\"manager\":\"zhao.dir\"}", NULL),
                 403);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM lead_events WHERE lead_id = '%s' AND"
                         " type <> 'created'",
                         other),
                 0);
    cr_expect_eq(s_count(h,
                         "SELECT count(*) FROM leads WHERE id = '%s' AND stage = 'new'"
                         " AND owner = 'zhang.wei' AND need IS NULL",
                         other),
                 1);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM reps WHERE manager = 'wang.fang'"), 0);
    lf_h_destroy(&h);
}

/* A manager reaches down its chain, never sideways or up. */
Test(access, a_manager_acts_only_within_its_team, .timeout = 60) {
    char own[64], other[64], pool[64];
    lf_h_t *h = s_setup(own, other, pool);
    const char *as_li[] = {"Authorization: Bearer key-mgr",
                           "Content-Type: application/json", NULL};
    const char *as_zhao[] = {"Authorization: Bearer key-dir",
                             "Content-Type: application/json", NULL};
    char path[160];
    /* Outside: qian.rep's lead and record. */
    snprintf(path, sizeof path, "/v1/leads/%s/stage", other);
    cr_expect_eq(s_http(h, "POST", path, as_li, "{\"to\":\"contacted\"}", NULL), 404);
    cr_expect_eq(
        s_http(h, "PATCH", "/v1/reps/qian.rep", as_li, "{\"active\":false}", NULL), 404);
    /* Up: its own manager, and its own manager field. */
    cr_expect_eq(s_http(h, "PATCH", "/v1/reps/zhao.dir", as_li, "{\"capacity\":0}", NULL),
                 404);
    cr_expect_eq(
        s_http(h, "PATCH", "/v1/reps/li.ming", as_li, "{\"manager\":null}", NULL), 403);
    /* Within: wang.fang's deal moves, her capacity changes, not her manager. */
    snprintf(path, sizeof path, "/v1/leads/%s/stage", own);
    cr_expect_eq(s_http(h, "POST", path, as_li, "{\"to\":\"contacted\"}", NULL), 200);
    cr_expect_eq(s_http(h, "PATCH", "/v1/reps/wang.fang", as_li,
                        "{\"capacity\":12,\"team\":\"east\"}", NULL),
                 200);
    cr_expect_eq(
        s_http(h, "PATCH", "/v1/reps/wang.fang", as_li, "{\"manager\":\"sun.li\"}", NULL),
        403);
    /* The director two levels up reaches wang.fang too; and may move her to another
     * of its managers, but not make a loop. */
    cr_expect_eq(
        s_http(h, "PATCH", "/v1/reps/wang.fang", as_zhao, "{\"capacity\":13}", NULL),
        200);
    const char *as_admin[] = {"Content-Type: application/json", NULL};
    cr_expect_eq(s_http(h, "PATCH", "/v1/reps/zhao.dir", as_admin,
                        "{\"manager\":\"wang.fang\"}", NULL),
                 422, "admin: a manager chain that would loop");
    cr_expect_eq(s_count(h, "SELECT capacity FROM reps WHERE id = 'wang.fang'"), 13);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM reps WHERE id = 'qian.rep' AND active"),
                 1);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM reps WHERE id = 'zhao.dir' AND"
                            " capacity = 30 AND manager IS NULL"),
                 1);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM reps WHERE id = 'wang.fang' AND"
                            " manager = 'li.ming'"),
                 1);
    lf_h_destroy(&h);
}

/* Keys made through the API: shown once, listed without secrets, revoked at once;
 * a deactivated rep's keys stop working at once. */
Test(access, keys_api_revoke_and_deactivation_take_effect_at_once, .timeout = 60) {
    char own[64], other[64], pool[64];
    lf_h_t *h = s_setup(own, other, pool);
    const char *as_li[] = {"Authorization: Bearer key-mgr",
                           "Content-Type: application/json", NULL};
    char *body = NULL;
    cr_assert_eq(s_http(h, "POST", "/v1/keys", as_li,
                        "{\"scope\":\"rep\",\"rep\":\"zhang.wei\"}", &body),
                 201, "%s", body);
    json_t *o = json_loads(body, 0, NULL);
    free(body);
    char id[64], key[96];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")));
    snprintf(key, sizeof key, "%s", json_string_value(json_object_get(o, "key")));
    cr_expect_str_eq(json_string_value(json_object_get(o, "scope")), "rep");
    json_decref(o);
    cr_expect(!strncmp(key, "lf_", 3) && strlen(key) == 67, "%s", key);
    cr_expect_eq(s_count(h, "SELECT count(*) FROM api_keys WHERE key_hash = '%s'", key),
                 0, "the key itself is never stored");
    char auth[160];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *as_zhang[] = {auth, NULL};
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps/zhang.wei", as_zhang, NULL, 0, NULL), 200);
    /* The list has it, with no secret; the last use is written within a few seconds. */
    cr_expect(lf_h_wait_sql(h,
                            "SELECT count(*) FROM api_keys WHERE last_used_at IS NOT"
                            " NULL AND id LIKE 'key_%'",
                            "1", 8000),
              "last_used_at written");
    cr_expect_eq(lf_h_http(h, "GET", "/v1/keys", as_li, NULL, 0, &body), 200);
    cr_expect(strstr(body, id) && !strstr(body, key) && !strstr(body, "key_hash"), "%s",
              body);
    cr_expect(!strstr(body, "k-qian") && !strstr(body, "k-sun"),
              "a manager lists the keys of its reps only: %s", body);
    free(body);
    /* Revoked: refused on the very next request. */
    char path[96];
    snprintf(path, sizeof path, "/v1/keys/%s", id);
    cr_expect_eq(lf_h_http(h, "DELETE", path, as_li, NULL, 0, NULL), 200);
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps/zhang.wei", as_zhang, NULL, 0, NULL), 401);
    cr_expect_eq(lf_h_http(h, "DELETE", path, as_li, NULL, 0, NULL), 200,
                 "revoking twice is no error");
    /* Deactivating a rep disables its keys at once. */
    const char *as_wang[] = {"Authorization: Bearer key-rep", NULL};
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps/wang.fang", as_wang, NULL, 0, NULL), 200);
    cr_expect_eq(
        s_http(h, "PATCH", "/v1/reps/wang.fang", as_li, "{\"active\":false}", NULL), 200);
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps/wang.fang", as_wang, NULL, 0, NULL), 401);
    /* ... also when the change comes from elsewhere (another intake, psql): NOTIFY. */
    const char *as_qian[] = {"Authorization: Bearer key-qian", NULL};
    cr_expect_eq(lf_h_http(h, "GET", "/v1/reps/qian.rep", as_qian, NULL, 0, NULL), 200);
    s_sql(h, "UPDATE reps SET active = false WHERE id = 'qian.rep'");
    int st = 0;
    for (int i = 0; i < 20 && (st = lf_h_http(h, "GET", "/v1/reps/qian.rep", as_qian,
                                              NULL, 0, NULL)) != 401;
         i++)
        usleep(50 * 1000);
    cr_expect_eq(st, 401, "refused within a second, not the 5 s cache lifetime");
    /* No key for an inactive or unknown rep. */
    const char *as_admin[] = {"Content-Type: application/json", NULL};
    cr_expect_eq(s_http(h, "POST", "/v1/keys", as_admin,
                        "{\"scope\":\"rep\",\"rep\":\"wang.fang\"}", &body),
                 422);
    cr_expect(strstr(body, "not active"), "%s", body);
    free(body);
    lf_h_destroy(&h);
}

/* The resident set of a process in KiB (VmRSS). */
static long s_rss_kib(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Sends the headers of a 16 MiB import without a key and reads the answer before
 * sending a byte of the body; then sends the body anyway. Returns the status. */
static int s_big_unauthenticated(int port, const char *auth_header) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    const size_t size = 16u << 20;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /v1/leads/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: text/csv\r\n%sContent-Length: %zu\r\n\r\n",
                     auth_header, size);
    cr_assert(send(fd, head, (size_t)n, MSG_NOSIGNAL) == n);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int status = 0;
    if (poll(&p, 1, 5000) == 1) {
        char resp[512] = "";
        ssize_t got = recv(fd, resp, sizeof resp - 1, 0);
        if (got > 0) {
            resp[got] = '\0';
            sscanf(resp, "HTTP/1.%*d %d", &status);
        }
    }
    /* The rest, as an attacker would: the server must not keep it. */
    static char chunk[1 << 16];
    memset(chunk, 'x', sizeof chunk);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (size_t sent = 0; sent < size;) {
        ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    close(fd);
    return status;
}

Test(access, unauthenticated_16_mib_body_is_refused_before_it_is_read, .timeout = 120) {
    lf_h_t *h = lf_h_new(LF_H_INTAKE, 0);
    pid_t pid = lf_h_pid(h, LF_H_INTAKE, 0);
    /* Warm up (threads, connections, the key cache), then measure. */
    cr_expect_eq(s_big_unauthenticated(lf_h_http_port(h), ""), 401);
    long before = s_rss_kib(pid);
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(s_big_unauthenticated(lf_h_http_port(h), ""), 401,
                     "answered before the body was sent");
        cr_expect_eq(s_big_unauthenticated(lf_h_http_port(h),
                                           "Authorization: Bearer wrong-key\r\n"),
                     401);
    }
    long after = s_rss_kib(pid);
    cr_expect(before > 0 && after - before < 4096,
              "intake's RSS grew by %ld KiB over eight refused 16 MiB bodies",
              after - before);
    /* The service still works. */
    cr_expect_eq(lf_h_get_json(h, "/healthz", NULL), 200);
    lf_h_destroy(&h);
}

static int s_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Reads an HTTP status from fd within ms; 0 when the connection closes or nothing
 * comes. */
static int s_status(int fd, int ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char resp[512] = "";
    int status = 0;
    if (poll(&p, 1, ms) == 1) {
        ssize_t got = recv(fd, resp, sizeof resp - 1, 0);
        if (got > 0) {
            resp[got] = '\0';
            sscanf(resp, "HTTP/1.%*d %d", &status);
        }
    }
    return status;
}

/* The safe defaults and the per-address limits, against a real intake. */
Test(access, per_address_limits_timeouts_and_row_cap, .timeout = 120) {
    lf_h_t *h = lf_h_new(0, 0);
    lf_h_env(h, "LEADFLOW_RATE_PER_ADDR", "40");
    lf_h_env(h, "LEADFLOW_MAX_CONNECTIONS_PER_ADDR", "6");
    lf_h_env(h, "LEADFLOW_HTTP_REQUEST_TIMEOUT", "1");
    lf_h_env(h, "LEADFLOW_IMPORT_MAX_ROWS", "3");
    lf_h_start(h, LF_H_INTAKE, 0);
    int port = lf_h_http_port(h);

    /* An import over the row cap is refused whole; at the cap it goes in. */
    const char *csv[] = {"Content-Type: text/csv", NULL};
    const char *four = "phone\n13600000001\n13600000002\n13600000003\n13600000004\n";
    const char *three = "phone\n13600000001\n13600000002\n13600000003\n";
    cr_expect_eq(lf_h_http(h, "POST", "/v1/leads/import", csv, four, strlen(four), NULL),
                 413);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), 0);
    cr_expect_eq(
        lf_h_http(h, "POST", "/v1/leads/import", csv, three, strlen(three), NULL), 200);

    /* A body that trickles in past LEADFLOW_HTTP_REQUEST_TIMEOUT (1 s): the client is
     * still sending, byte by byte, so it is answered 408 and the connection closed;
     * nothing is stored. */
    long leads_before = lf_h_sql_long(h, "SELECT count(*) FROM leads");
    int fd = s_connect(port);
    const char *head = "POST /v1/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                       "test-admin-key\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100\r\n\r\n{\"phone\":";
    cr_assert(send(fd, head, strlen(head), MSG_NOSIGNAL) > 0);
    const char *trickle = "\"13900138000\", \"name\": \"slow\"";
    for (int i = 0; trickle[i] && i < 8; i++) { /* 8 x 200 ms: past the deadline */
        usleep(200 * 1000);
        send(fd, trickle + i, 1, MSG_NOSIGNAL);
    }
    char resp[1024] = "";
    size_t got = 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    while (got < sizeof resp - 1 && poll(&pf, 1, 3000) == 1) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    resp[got] = '\0';
    cr_expect(strncmp(resp, "HTTP/1.1 408 ", 13) == 0 && strstr(resp, "request_timeout"),
              "a trickling body is answered 408: %s", resp);
    cr_expect(strstr(resp, "Connection: close") != NULL, "%s", resp);
    close(fd);
    cr_expect_eq(lf_h_sql_long(h, "SELECT count(*) FROM leads"), leads_before);

    /* Connections per address: the seventh is closed unanswered; one closed frees a
     * place. */
    int fds[6];
    for (int i = 0; i < 6; i++)
        fds[i] = s_connect(port);
    usleep(200 * 1000);
    int extra = s_connect(port);
    const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    send(extra, get, strlen(get), MSG_NOSIGNAL);
    cr_expect_eq(s_status(extra, 2000), 0, "over the per-address cap: no answer");
    close(extra);
    close(fds[0]);
    usleep(200 * 1000);
    extra = s_connect(port);
    send(extra, get, strlen(get), MSG_NOSIGNAL);
    cr_expect_eq(s_status(extra, 3000), 200);
    close(extra);
    for (int i = 1; i < 6; i++)
        close(fds[i]);
    usleep(200 * 1000);

    /* Requests per address: wrong keys, then 429, whatever X-Forwarded-For says (the
     * peer is no trusted proxy). */
    int got429 = 0, n401 = 0;
    for (int i = 0; i < 60 && !got429; i++) {
        char xff[64];
        snprintf(xff, sizeof xff, "X-Forwarded-For: 198.51.100.%d", i);
        const char *hd[] = {"Authorization: Bearer guess", xff, NULL};
        int st = lf_h_http(h, "GET", "/v1/reps", hd, NULL, 0, NULL);
        got429 = st == 429;
        n401 += st == 401;
    }
    cr_expect(got429 && n401 <= 40, "429 after at most 40 requests (%d were 401)", n401);

    /* Behind a trusted proxy each forwarded address has its own allowance. */
    lf_h_stop(h, LF_H_INTAKE, 0, 0);
    lf_h_env(h, "LEADFLOW_TRUSTED_PROXIES", "127.0.0.1");
    lf_h_start(h, LF_H_INTAKE, 0);
    int limited = 0;
    for (int i = 0; i < 60; i++) {
        char xff[64];
        snprintf(xff, sizeof xff, "X-Forwarded-For: 6.6.6.6, 198.51.100.%d", i);
        const char *hd[] = {"Authorization: Bearer guess", xff, NULL};
        limited += lf_h_http(h, "GET", "/v1/reps", hd, NULL, 0, NULL) == 429;
    }
    cr_expect_eq(limited, 0);

    /* (Last: a short idle timeout would close the connections held above.) */
    lf_h_stop(h, LF_H_INTAKE, 0, 0);
    lf_h_env(h, "LEADFLOW_HTTP_IDLE_TIMEOUT", "2");
    lf_h_start(h, LF_H_INTAKE, 0);
    port = lf_h_http_port(h);
    /* A connection that goes silent in the middle of a body is closed by the idle
     * timeout (LEADFLOW_HTTP_IDLE_TIMEOUT, 2 s here), without an answer: there is no
     * upload callback to answer from. */
    fd = s_connect(port);
    cr_assert(send(fd, head, strlen(head), MSG_NOSIGNAL) > 0);
    char tmp[64];
    int64_t t0 = lf_mono_ms();
    pf = (struct pollfd){.fd = fd, .events = POLLIN};
    cr_expect(poll(&pf, 1, 8000) == 1 && recv(fd, tmp, sizeof tmp, 0) <= 0,
              "an idle connection is closed without an answer");
    int64_t waited = lf_mono_ms() - t0;
    cr_expect(waited >= 1500, "closed after the idle timeout, not before (%lld ms)",
              (long long)waited);
    close(fd);

    lf_h_destroy(&h);
}

/* An admin key shorter than 16 characters stops intake unless allowed. */
Test(access, short_admin_key_is_refused, .timeout = 30) {
    const char *bin = getenv("LF_TEST_BIN") ? getenv("LF_TEST_BIN") : "build/san/bin";
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "env -i PATH=/usr/bin:/bin LEADFLOW_ADMIN_KEY=short-key %s/leadflow-intake "
             "2>&1",
             bin);
    FILE *p = popen(cmd, "r");
    char out[2048] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit status %d: %s", st, out);
    cr_expect(strstr(out, "at least 16") && !strstr(out, "short-key"), "%s", out);
}

/* One POST of a lead with the key "key-web", from a thread of its own. */
typedef struct {
    lf_h_t *h;
    int n;      /* the lead's number (its phone) */
    int status; /* the answer */
} s_post_t;

static void *s_post_lead(void *arg) {
    s_post_t *p = arg;
    const char *as_web[] = {"Authorization: Bearer key-web",
                            "Content-Type: application/json", NULL};
    char body[64];
    snprintf(body, sizeof body, "{\"phone\":\"1390077%04d\"}", p->n);
    p->status = lf_h_http(p->h, "POST", "/v1/leads", as_web, body, strlen(body), NULL);
    return NULL;
}

/* Requests that come while intake's first read of the API keys is still running (it
 * has just started, or PostgreSQL is slow to answer) wait for that read and are
 * answered as usual. Here the read is held up by a lock on api_keys for a second, while
 * eight leads are posted at once. The old code answered every request but the one
 * doing the read with 503 "API keys cannot be read right now" - the answers that were
 * not 2xx in some whole-stack benchmark runs. */
Test(access, requests_during_the_first_read_of_the_keys_wait_for_it, .timeout = 90) {
    lf_h_t *h = lf_h_new(0, 1);
    s_sql(h, "INSERT INTO api_keys (id, key_hash, scope, channel, rate_per_minute)"
             " VALUES ('k-web', encode(sha256('key-web'::bytea), 'hex'), 'intake',"
             " 'web_form', 0)");
    PGconn *lock = PQconnectdb(lf_h_db_url(h));
    cr_assert_eq(PQstatus(lock), CONNECTION_OK);
    PGresult *r = PQexec(lock, "BEGIN; LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE");
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(lock));
    PQclear(r);
    lf_h_start(h, LF_H_INTAKE, 0); /* it reads no key until a request brings one */
    enum { N = 8 };
    s_post_t p[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        p[i] = (s_post_t){h, i, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, s_post_lead, &p[i]), 0);
    }
    cr_assert(lf_h_wait_sql(h,
                            "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename ="
                            " 'leadflow_intake' AND wait_event_type = 'Lock'",
                            "t", 20000),
              "intake does not wait for the keys");
    usleep(1000 * 1000); /* the other requests arrive meanwhile */
    r = PQexec(lock, "COMMIT");
    PQclear(r);
    PQfinish(lock);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(p[i].status, 201, "lead %d: %d", i, p[i].status);
    }
    cr_expect_eq(s_count(h, "SELECT count(*) FROM leads WHERE phone LIKE '%%1390077%%'"),
                 N);
    lf_h_destroy(&h);
}
