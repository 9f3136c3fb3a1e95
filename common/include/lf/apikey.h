/* apikey.h - making API keys: the random key text, its id and hash, and the api_keys
 * row with its scope. Shared by leadflow-keys and intake's POST /v1/keys, so a key
 * made either way follows the same rules. */
#ifndef LF_APIKEY_H
#define LF_APIKEY_H

#include <jansson.h>
#include <stddef.h>

#include "lf/db.h"

/* What a new key is for. Borrowed strings; NULL where a field does not apply. */
typedef struct {
    const char *scope;      /* "intake", "rep", "manager" or "admin" */
    const char *channel;    /* intake: a lead channel, or NULL / "any" for any */
    const char *rep;        /* rep and manager: the rep the key speaks for */
    const json_t *origins;  /* intake: array of allowed browser origins, or NULL */
    int rate_per_minute;    /* 0: unlimited */
    const char *created_by; /* who made it ("admin", a key id, "leadflow-keys") */
} lf_apikey_spec_t;

enum {
    LF_APIKEY_OK = 0,
    LF_APIKEY_INVALID = -1, /* the spec breaks a rule; why says which */
    LF_APIKEY_NO_REP = -2,  /* rep names no rep ("no such rep") */
    LF_APIKEY_DB = -3,      /* the database failed; db->errstr says why */
};

/* Checks a spec without the database. Returns LF_APIKEY_OK or LF_APIKEY_INVALID with
 * a one-line reason in why (field names as in POST /v1/keys). */
int lf_apikey_check(const lf_apikey_spec_t *spec, char *why, size_t whysz);

/* Creates the key: checks the spec, draws 32 random bytes for the key ("lf_" + hex)
 * and 6 for its id ("key_" + hex), stores the SHA-256 only. Returns LF_APIKEY_OK and
 * fills id and key (shown to the caller once, never stored), or an LF_APIKEY_* error
 * with a one-line reason in why. An inactive rep cannot get a key. */
int lf_apikey_create(lf_db_t *db, const lf_apikey_spec_t *spec, char id[24], char key[72],
                     char *why, size_t whysz);

/* Hex SHA-256 of key into out (65 bytes). */
void lf_apikey_hash(const char *key, char out[65]);

#endif
