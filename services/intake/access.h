/* access.h - who may call which route, and which leads and reps a caller reaches.
 *
 * Every route of intake is listed in one table (access.c) with the scopes it serves;
 * http.c checks it before the body is read: a known key outside those scopes gets
 * 403 {"error": "forbidden"}. A route missing from the table serves the admin only,
 * and a unit test fails until it is listed.
 *
 * Which leads and reps a caller reaches is decided in SQL, by the functions in
 * db/functions (lf_reps_reachable, lf_caller_sees, lf_caller_reaches), so a list
 * query filters with the same rule as a single read. Handlers pass the caller as two
 * parameters: lf_access_scope_param() and lf_access_rep_param(). A lead or rep the
 * caller does not reach answers 404, as if it did not exist. */
#ifndef LF_INTAKE_ACCESS_H
#define LF_INTAKE_ACCESS_H

#include <jansson.h>

#include "auth.h"
#include "lf/db.h"

/* A route that needs no key at all (health, metrics). */
#define LF_ACCESS_PUBLIC (1 << 8)
/* Shorthands for route tables. */
#define LF_ACCESS_PEOPLE (LF_SCOPE_REP | LF_SCOPE_MANAGER | LF_SCOPE_ADMIN)

/* The scope set of a route (its method and pattern as in the route tables, e.g.
 * "GET", "/v1/leads/{}"): LF_SCOPE_* bits, or LF_ACCESS_PUBLIC. A route that is not
 * listed serves LF_SCOPE_ADMIN only. */
int lf_access_scopes(const char *method, const char *pattern);
/* 1 when (method, pattern) is listed in the table (for the test that every route
 * is). */
int lf_access_listed(const char *method, const char *pattern);

/* The caller as SQL parameters for lf_caller_sees / lf_caller_reaches: the scope
 * name ("admin", "rep", ...; "none" when not authenticated) and the rep id (NULL when
 * the key has none). Borrowed from auth. */
const char *lf_access_scope_param(const lf_auth_t *auth);
const char *lf_access_rep_param(const lf_auth_t *auth);

/* 1 when the caller may see lead `lead_id` (and it exists), 0 when not, -1 when the
 * database failed (db->errstr). */
int lf_access_lead(lf_db_t *db, const lf_auth_t *auth, const char *lead_id);

/* Checks a PATCH of rep `rep_id` (current: the stored rep in API form, borrowed)
 * against the rules: admin changes anything; a manager changes the reps it reaches,
 * but not their `manager`; a rep or manager changes only its own out_of_office and
 * notify. Returns NULL when allowed, otherwise the first field the caller may not
 * change (borrowed from patch). The caller has already checked that it reaches the
 * rep at all. */
const char *lf_access_rep_patch_denied(const lf_auth_t *auth, const char *rep_id,
                                       const json_t *patch, const json_t *current);

#endif
