/* company_backfill.c - company keys for rows written before intake computed them.
 *
 * The company key needs ICU and leadflow's own rules (company.c), so SQL cannot compute
 * it; leadflow-migrate calls this after the migrations instead. Leads without a key get
 * one (a thousand per statement, so a large table is done in short transactions), and
 * customers keyed by the old rule (lower-cased company) are re-keyed. Both steps only
 * write rows that still need it, so running it again costs a scan of each table and
 * nothing else. */
#include "lf/company.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lf/log.h"

#define S_BATCH 1000

/* Keys of up to S_BATCH leads without one. Returns the number done, or -1. */
static long s_leads_batch(lf_db_t *db) {
    PGresult *res = lf_db_exec(db,
                               "SELECT id, company FROM leads WHERE company_key IS NULL"
                               " AND company IS NOT NULL LIMIT 1000",
                               0, NULL);
    if (!res)
        return -1;
    int n = PQntuples(res);
    json_t *ids = json_array(), *keys = json_array();
    for (int i = 0; i < n; i++) {
        char key[LF_COMPANY_KEY_SIZE];
        /* A name without a key gets '' so that it is not looked at again. */
        if (lf_company_key(PQgetvalue(res, i, 1), key, sizeof key, NULL) != 0)
            key[0] = '\0';
        json_array_append_new(ids, json_string(PQgetvalue(res, i, 0)));
        json_array_append_new(keys, json_string(key));
    }
    PQclear(res);
    char *ti = json_dumps(ids, JSON_COMPACT), *tk = json_dumps(keys, JSON_COMPACT);
    const char *p[] = {ti, tk};
    long done =
        n == 0 ? 0
               : lf_db_cmd(db,
                           "UPDATE leads l SET company_key = v.k FROM"
                           " (SELECT jsonb_array_elements_text($1::jsonb)::uuid AS id,"
                           "  jsonb_array_elements_text($2::jsonb) AS k) v"
                           " WHERE l.id = v.id AND l.company_key IS NULL",
                           2, p);
    free(ti);
    free(tk);
    json_decref(ids);
    json_decref(keys);
    return done < 0 ? -1 : n;
}

/* Re-keys customers whose key was made from the company by the old rule. A customer
   whose new key another customer already has keeps its old key (two records of one
   company: a person should merge them); it is logged. Returns 0 or -1. */
static int s_customers(lf_db_t *db) {
    PGresult *res = lf_db_exec(db,
                               "SELECT id, key, company FROM customers"
                               " WHERE key LIKE 'company:%' AND company IS NOT NULL",
                               0, NULL);
    if (!res)
        return -1;
    int rc = 0, n = PQntuples(res);
    for (int i = 0; i < n && rc == 0; i++) {
        char key[LF_COMPANY_KEY_SIZE], full[LF_COMPANY_KEY_SIZE + 16];
        if (lf_company_key(PQgetvalue(res, i, 2), key, sizeof key, NULL) != 0)
            continue;
        snprintf(full, sizeof full, "company:%s", key);
        if (!strcmp(full, PQgetvalue(res, i, 1)))
            continue;
        const char *p[] = {PQgetvalue(res, i, 0), full};
        long k = lf_db_cmd(db,
                           "UPDATE customers SET key = $2 WHERE id = $1::bigint AND NOT "
                           "EXISTS (SELECT 1 FROM customers c WHERE c.key = $2)",
                           2, p);
        if (k < 0)
            rc = -1;
        else if (k == 0)
            lf_warn(
                "customer %s keeps its old key: another customer has the same company "
                "key; merge them by hand",
                PQgetvalue(res, i, 0));
    }
    PQclear(res);
    return rc;
}

long lf_company_backfill(lf_db_t *db) {
    long total = 0, n;
    while ((n = s_leads_batch(db)) > 0)
        total += n;
    if (n < 0 || s_customers(db) < 0) {
        lf_error("company keys not backfilled: %s", db->errstr);
        return -1;
    }
    return total;
}
