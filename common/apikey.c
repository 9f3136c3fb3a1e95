/* apikey.c - API key creation (see lf/apikey.h).
 *
 * Keys are 256 random bits from the kernel (OpenSSL RAND_bytes), so a plain SHA-256
 * is enough to store them: there is nothing to brute-force that a slow password hash
 * would protect. The row is inserted only when the rep exists, in the same
 * statement, so a missing rep is told apart from a database error without parsing a
 * foreign-key message (which would carry the value). */
#include "lf/apikey.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/lead.h"
#include "lf/util.h"

/* Lower-case hex of n bytes, NUL-terminated (every request's key is hashed: no
 * snprintf per byte). */
static void s_hex(const unsigned char *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* SHA-256 fetched from OpenSSL's providers once: SHA256() looks the algorithm up at
 * every call in OpenSSL 3, 1% of intake's CPU when every request's key is hashed. */
static EVP_MD *s_sha256;
static pthread_once_t s_sha256_once = PTHREAD_ONCE_INIT;

static void s_fetch_sha256(void) {
    s_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void lf_apikey_hash(const char *key, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    pthread_once(&s_sha256_once, s_fetch_sha256);
    if (!s_sha256 || !EVP_Digest(key, strlen(key), md, &n, s_sha256, NULL) ||
        n != SHA256_DIGEST_LENGTH)
        SHA256((const unsigned char *)key, strlen(key), md);
    s_hex(md, SHA256_DIGEST_LENGTH, out);
}

static int s_fail(char *why, size_t whysz, const char *msg) {
    lf_strlcpy(why, msg, whysz);
    return LF_APIKEY_INVALID;
}

int lf_apikey_check(const lf_apikey_spec_t *spec, char *why, size_t whysz) {
    const char *sc = spec->scope;
    if (!sc || (strcmp(sc, "intake") && strcmp(sc, "rep") && strcmp(sc, "manager") &&
                strcmp(sc, "admin")))
        return s_fail(why, whysz, "scope must be intake, rep, manager or admin");
    int intake = !strcmp(sc, "intake"),
        person = !strcmp(sc, "rep") || !strcmp(sc, "manager");
    if (spec->channel && !intake)
        return s_fail(why, whysz, "channel is only for intake keys");
    if (intake && spec->channel && strcmp(spec->channel, "any") &&
        !lf_lead_channel_valid(spec->channel))
        return s_fail(why, whysz,
                      "channel must be web_form, phone, trade_show, partner, api, "
                      "referral or any");
    if (spec->origins) {
        if (!intake)
            return s_fail(why, whysz, "origins are only for intake keys");
        if (!json_is_array(spec->origins) || json_array_size(spec->origins) > 50)
            return s_fail(why, whysz, "origins must be an array of at most 50 URLs");
        size_t i;
        const json_t *o;
        json_array_foreach(spec->origins, i, o) {
            const char *s = json_string_value(o);
            size_t n = s ? strlen(s) : 0;
            if (!s || n > 200 || (strncmp(s, "http://", 7) && strncmp(s, "https://", 8)))
                return s_fail(why, whysz,
                              "each origin must look like https://www.example.com");
            if (strchr(s + 8, '/'))
                return s_fail(why, whysz,
                              "an origin has no path: https://www.example.com");
        }
    }
    if (person && (!spec->rep || !*spec->rep))
        return s_fail(why, whysz, "rep is required for rep and manager keys");
    if (!person && spec->rep)
        return s_fail(why, whysz, "rep is only for rep and manager keys");
    if (spec->rep && (strlen(spec->rep) > 64 ||
                      strspn(spec->rep, "abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789._-") != strlen(spec->rep)))
        return s_fail(why, whysz, "no such rep");
    if (spec->rate_per_minute < 0 || spec->rate_per_minute > 10000000)
        return s_fail(why, whysz, "rate_per_minute must be 0 (unlimited) .. 10000000");
    return LF_APIKEY_OK;
}

int lf_apikey_create(lf_db_t *db, const lf_apikey_spec_t *spec, char id[24], char key[72],
                     char *why, size_t whysz) {
    int rc = lf_apikey_check(spec, why, whysz);
    if (rc != LF_APIKEY_OK)
        return rc;
    unsigned char raw[32], idr[6];
    if (RAND_bytes(raw, sizeof raw) != 1 || RAND_bytes(idr, sizeof idr) != 1) {
        lf_strlcpy(why, "no random bytes", whysz);
        return LF_APIKEY_DB;
    }
    char hash[65], rate[16];
    memcpy(key, "lf_", 4);
    s_hex(raw, sizeof raw, key + 3);
    memcpy(id, "key_", 5);
    s_hex(idr, sizeof idr, id + 4);
    lf_apikey_hash(key, hash);
    snprintf(rate, sizeof rate, "%d", spec->rate_per_minute);
    const char *channel =
        spec->channel && strcmp(spec->channel, "any") ? spec->channel : NULL;
    char *olist = spec->origins ? json_dumps(spec->origins, JSON_COMPACT) : NULL;
    const char *p[] = {id,          hash,
                       spec->scope, channel,
                       spec->rep,   olist ? olist : "[]",
                       rate,        spec->created_by};
    PGresult *res = lf_db_exec(
        db,
        "INSERT INTO api_keys (id, key_hash, scope, channel, rep_id, is_admin,"
        " allowed_origins, rate_per_minute, created_by)"
        " SELECT $1, $2, $3, $4, $5, $3 = 'admin',"
        " coalesce(array(SELECT jsonb_array_elements_text($6::jsonb)), '{}'),"
        " $7::integer, $8"
        " WHERE $5::text IS NULL OR EXISTS (SELECT 1 FROM reps WHERE id = $5 AND active)"
        " RETURNING id",
        8, p);
    free(olist);
    if (!res) {
        lf_strlcpy(why, "the database cannot be reached", whysz);
        memset(key, 0, 72);
        return LF_APIKEY_DB;
    }
    int inserted = PQntuples(res) == 1;
    PQclear(res);
    if (inserted)
        return LF_APIKEY_OK;
    memset(key, 0, 72);
    /* Not inserted: the rep is missing or inactive. Tell which. */
    const char *q[] = {spec->rep};
    res = lf_db_exec(db, "SELECT active FROM reps WHERE id = $1", 1, q);
    int exists = res && PQntuples(res) == 1;
    PQclear(res);
    lf_strlcpy(why, exists ? "the rep is not active" : "no such rep", whysz);
    return exists ? LF_APIKEY_INVALID : LF_APIKEY_NO_REP;
}
