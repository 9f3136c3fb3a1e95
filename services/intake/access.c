/* access.c - the route scope table and the caller's reach (see access.h).
 *
 * One table rather than a field in each handler file's routes: who may do what reads
 * in one place, next to the table in docs/intake.md (keys and scopes), and the
 * route-by-scope test matrix is driven from it. */
#include "access.h"

#include <string.h>

#include "lf/util.h"

static const struct {
    const char *method;
    const char *pattern;
    int scopes;
} s_table[] = {
    {"GET", "/healthz", LF_ACCESS_PUBLIC},
    {"GET", "/metrics", LF_ACCESS_PUBLIC},
    /* Leads come in from every intake key; a web-form key only makes web-form leads. */
    {"POST", "/v1/leads", LF_SCOPE_INTAKE | LF_SCOPE_WEB_FORM | LF_SCOPE_ADMIN},
    {"POST", "/v1/leads/import", LF_SCOPE_INTAKE | LF_SCOPE_ADMIN},
    {"POST", "/v1/calls", LF_SCOPE_INTAKE | LF_SCOPE_ADMIN},
    /* People work the leads they reach (404 for the others). */
    {"GET", "/v1/leads/{}", LF_ACCESS_PEOPLE},
    /* Lists, the pool and moves (api_lists.c, api_pool.c): a rep lists its own leads,
     * reads its team's pool and claims for itself; assigning and handing over is a
     * manager's or the admin's. */
    {"GET", "/v1/leads", LF_ACCESS_PEOPLE},
    {"GET", "/v1/me/agenda", LF_SCOPE_REP | LF_SCOPE_MANAGER},
    {"GET", "/v1/pool", LF_ACCESS_PEOPLE},
    {"POST", "/v1/leads/{}/claim", LF_SCOPE_REP | LF_SCOPE_MANAGER},
    {"POST", "/v1/leads/{}/assign", LF_SCOPE_MANAGER | LF_SCOPE_ADMIN},
    {"POST", "/v1/reps/{}/handover", LF_SCOPE_MANAGER | LF_SCOPE_ADMIN},
    {"PATCH", "/v1/leads/{}", LF_ACCESS_PEOPLE},
    {"POST", "/v1/leads/{}/stage", LF_ACCESS_PEOPLE},
    {"POST", "/v1/leads/{}/activities", LF_ACCESS_PEOPLE},
    {"GET", "/v1/pipeline", LF_ACCESS_PEOPLE},
    {"GET", "/v1/customers/{}", LF_ACCESS_PEOPLE},
    /* Reps: the admin makes them; people read and edit the reps they reach. */
    {"POST", "/v1/reps", LF_SCOPE_ADMIN},
    {"GET", "/v1/reps", LF_ACCESS_PEOPLE},
    {"GET", "/v1/reps/{}", LF_ACCESS_PEOPLE},
    {"PATCH", "/v1/reps/{}", LF_ACCESS_PEOPLE},
    /* Keys: the admin for anyone, a manager for the reps it reaches. */
    {"POST", "/v1/keys", LF_SCOPE_MANAGER | LF_SCOPE_ADMIN},
    {"GET", "/v1/keys", LF_SCOPE_MANAGER | LF_SCOPE_ADMIN},
    {"DELETE", "/v1/keys/{}", LF_SCOPE_MANAGER | LF_SCOPE_ADMIN},
    /* Notifications: people see (and retry) those of the reps they reach. */
    {"GET", "/v1/notifications", LF_ACCESS_PEOPLE},
    {"POST", "/v1/notifications/{}/retry", LF_ACCESS_PEOPLE},
};

static int s_find(const char *method, const char *pattern) {
    for (size_t i = 0; i < sizeof s_table / sizeof s_table[0]; i++)
        if (!strcmp(s_table[i].method, method) && !strcmp(s_table[i].pattern, pattern))
            return (int)i;
    return -1;
}

int lf_access_scopes(const char *method, const char *pattern) {
    int i = s_find(method, pattern);
    return i < 0 ? LF_SCOPE_ADMIN : s_table[i].scopes;
}

int lf_access_listed(const char *method, const char *pattern) {
    return s_find(method, pattern) >= 0;
}

const char *lf_access_scope_param(const lf_auth_t *auth) {
    return auth && auth->ok ? lf_scope_name(auth->scope) : "none";
}

const char *lf_access_rep_param(const lf_auth_t *auth) {
    return auth && auth->ok && auth->rep_id[0] ? auth->rep_id : NULL;
}

int lf_access_lead(lf_db_t *db, const lf_auth_t *auth, const char *lead_id) {
    const char *p[] = {lead_id, lf_access_scope_param(auth), lf_access_rep_param(auth)};
    PGresult *res = lf_db_exec(
        db, "SELECT 1 FROM leads l WHERE l.id = $1 AND lf_caller_sees($2, $3, l.owner)",
        3, p);
    if (!res)
        return -1;
    int n = PQntuples(res);
    PQclear(res);
    return n == 1;
}

const char *lf_access_rep_patch_denied(const lf_auth_t *auth, const char *rep_id,
                                       const json_t *patch, const json_t *current) {
    if (auth->scope == LF_SCOPE_ADMIN)
        return NULL;
    int self = auth->rep_id[0] && !strcmp(auth->rep_id, rep_id);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (!strcmp(k, "out_of_office") || !strcmp(k, "notify"))
            continue;
        /* Naming a field with its stored value changes nothing (a client that sends
         * the whole record back). */
        if (json_equal(v, json_object_get(current, k)) ||
            (json_is_null(v) && !json_object_get(current, k)))
            continue;
        if (self || auth->scope != LF_SCOPE_MANAGER || !strcmp(k, "manager"))
            return k;
    }
    return NULL;
}
