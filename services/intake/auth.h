/* auth.h - API keys (table api_keys) and per-key rate limits for leadflow-intake.
 *
 * Keys are stored as the hex SHA-256 of the key text; the cache holds those hashes,
 * never the keys. The whole table is small (one row per form, phone system and
 * script), so it is read at once and refreshed every few seconds: a new or revoked
 * key takes effect within LEADFLOW_KEYS_REFRESH_MS. An unknown key triggers an early
 * refresh, at most once a second, so a key created a moment ago works at once and a
 * flood of wrong keys cannot flood PostgreSQL. */
#ifndef LF_INTAKE_AUTH_H
#define LF_INTAKE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "lf/db.h"

typedef struct lf_keys lf_keys_t;

/* One key as the cache knows it (a copy for the caller). */
typedef struct {
    char id[64];      /* api_keys.id */
    char channel[32]; /* "" for any */
    char rep_id[64];  /* "" for none */
    int is_admin;
    int rate_per_minute; /* 0: unlimited */
} lf_key_info_t;

/* Creates an empty cache refreshed every refresh_ms. Caller owns the result. */
lf_keys_t *lf_keys_new(int refresh_ms);
void lf_keys_destroy(lf_keys_t **self_p);

/* Looks up a presented key (refreshing from db when the cache is old, or when the key
 * is unknown and the last refresh is more than a second old). Returns 1 and fills
 * *info when the key is active, 0 when it is unknown or revoked, -1 when the cache
 * is empty and the database cannot be read. */
int lf_keys_lookup(lf_keys_t *self, lf_db_t *db, const char *key, lf_key_info_t *info);

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
