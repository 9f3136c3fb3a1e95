/* auth.h - who is calling: API keys (table api_keys), their scopes, the key cache
 * and per-key rate limits for leadflow-intake.
 *
 * Every key has one scope (docs/intake.md, "Keys and scopes"): `intake` (with a channel;
 * a web_form key also with origins) creates leads and nothing else, `rep` (with a rep id)
 * works the leads that rep owns, `manager` (with a rep id) those of every rep it reaches
 * through the reps.manager chain, `admin` everything.
 *
 * Keys are stored as the hex SHA-256 of the key text; the cache holds those hashes,
 * never the keys. The table is small (one row per form, phone system, script and
 * person), so it is read at once. A change to api_keys, or a rep deactivated, is
 * announced by PostgreSQL (NOTIFY leadflow_keys, see db/functions) to a listener
 * thread that marks the cache stale, so a revoked key is refused on the next
 * request; LEADFLOW_KEYS_REFRESH_MS bounds the staleness should the listener be
 * disconnected. An unknown key triggers an early refresh, at most once a second, so
 * a key created a moment ago works at once and a flood of wrong keys cannot flood
 * PostgreSQL. The same thread writes each key's last-used time, a few seconds late. */
#ifndef LF_INTAKE_AUTH_H
#define LF_INTAKE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "lf/db.h"

/* Scopes as bits, so a route can declare the set it serves. LF_SCOPE_WEB_FORM is not
 * a scope of its own: it is the `intake` scope of a web_form key, which a route
 * serves only when it says so (a public key may only create web-form leads). */
enum {
    LF_SCOPE_INTAKE = 1 << 0,
    LF_SCOPE_REP = 1 << 1,
    LF_SCOPE_MANAGER = 1 << 2,
    LF_SCOPE_ADMIN = 1 << 3,
    LF_SCOPE_WEB_FORM = 1 << 4,
};

/* Who is calling, from the Authorization header (or a web form's leadflow_key). */
typedef struct {
    int ok;              /* 1 when a valid key was presented */
    int scope;           /* LF_SCOPE_INTAKE, _REP, _MANAGER or _ADMIN; 0 when !ok */
    int is_admin;        /* scope == LF_SCOPE_ADMIN */
    char key_id[64];     /* "admin" or the api_keys id (scopes Idempotency-Key) */
    char channel[32];    /* intake: the key's channel, "" for any */
    char rep_id[64];     /* rep and manager: the rep the key speaks for, else "" */
    int rate_per_minute; /* the key's limit, 0 unlimited */
    int via_form_field;  /* the key came in the body's leadflow_key field */
} lf_auth_t;

/* "intake", "rep", "manager", "admin" for one scope bit; "none" otherwise. Static. */
const char *lf_scope_name(int scope);
/* The scope bit of a name, or 0 when it names none. */
int lf_scope_parse(const char *name);
/* The bit a route's scope set is tested against: the caller's scope, or
 * LF_SCOPE_WEB_FORM for an intake key of the web_form channel; 0 when !auth->ok. */
int lf_auth_bit(const lf_auth_t *auth);

typedef struct lf_keys lf_keys_t;

/* One key as the cache knows it (a copy for the caller). */
typedef struct {
    char id[64];         /* api_keys.id */
    int scope;           /* LF_SCOPE_* */
    char channel[32];    /* "" for any */
    char rep_id[64];     /* "" for none */
    int rate_per_minute; /* 0: unlimited */
} lf_key_info_t;

/* Creates an empty cache refreshed at least every refresh_ms. Caller owns the
 * result. */
lf_keys_t *lf_keys_new(int refresh_ms);
/* Stops the watcher thread (if started) and frees the cache. Accepts NULL. */
void lf_keys_destroy(lf_keys_t **self_p);

/* Starts the thread that LISTENs for key changes on its own connection to db_url
 * (reconnecting with a back-off) and writes last-used times every flush_ms.
 * Returns 0, or -1 when the thread cannot be started. */
int lf_keys_watch(lf_keys_t *self, const char *db_url, int flush_ms);

/* Looks up a presented key (refreshing from db when the cache is stale, or when the
 * key is unknown and the last refresh is more than a second old) and notes its use.
 * Keys of inactive reps are not in the cache. Returns 1 and fills *info when the key
 * is active, 0 when it is unknown, revoked or disabled, -1 when the cache is empty
 * and the database cannot be read. */
int lf_keys_lookup(lf_keys_t *self, lf_db_t *db, const char *key, lf_key_info_t *info);

/* Marks the cache stale: the next lookup reads api_keys again. For a change this
 * process made itself (a key revoked, a rep deactivated), so the very next request
 * sees it without waiting for the notification. */
void lf_keys_invalidate(lf_keys_t *self);

/* 1 when origin is in the allowed_origins of key `key_id`. */
int lf_keys_origin_allowed_for(lf_keys_t *self, const char *key_id, const char *origin);
/* 1 when origin is allowed by any active key (for CORS preflight, which carries no
 * key, and for the Access-Control-Allow-Origin header of responses). */
int lf_keys_origin_allowed(lf_keys_t *self, const char *origin);

/* Token bucket of key_id (rate per minute, burst = one minute's worth). Returns 0 when
 * the request may go on, otherwise the seconds to wait (>= 1) for Retry-After. */
int lf_keys_rate(lf_keys_t *self, const char *key_id, int rate_per_minute,
                 int64_t now_ms);

/* Hex SHA-256 of key into out (65 bytes). */
void lf_keys_hash(const char *key, char out[65]);

#endif
