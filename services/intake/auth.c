/* auth.c - the API key cache and the per-key token buckets.
 *
 * The cache is an array rebuilt from api_keys on every refresh; the rate-limit state
 * of a key (its bucket) is carried over by id, so a refresh does not hand out a fresh
 * minute's burst. Lookups are linear: a deployment has tens of keys, not thousands,
 * and a scan of a few kilobytes is cheaper than keeping a hash table in sync. The
 * database query runs outside the lock, so other HTTP threads keep answering from
 * the old cache while one thread refreshes it. */
#include "auth.h"

#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/log.h"
#include "lf/util.h"

typedef struct {
    char hash[65];      /* hex SHA-256 of the key */
    lf_key_info_t info; /* what the caller gets */
    char **origins;     /* allowed origins (owned) */
    int norigins;
    double tokens;   /* token bucket: requests left */
    int64_t last_ms; /* when tokens was last topped up */
} s_entry_t;

struct lf_keys {
    pthread_mutex_t lock; /* guards everything below */
    s_entry_t *entries;   /* active keys (owned) */
    int n;
    int loaded;           /* 1 after the first successful refresh */
    int refreshing;       /* one thread at a time queries the table */
    int64_t refreshed_ms; /* monotonic time of the last refresh attempt */
    int refresh_ms;       /* cache lifetime */
};

static void s_free_entries(s_entry_t *e, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < e[i].norigins; j++)
            free(e[i].origins[j]);
        free(e[i].origins);
    }
    free(e);
}

void lf_keys_hash(const char *key, char out[65]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

lf_keys_t *lf_keys_new(int refresh_ms) {
    lf_keys_t *self = lf_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->refresh_ms = refresh_ms;
    return self;
}

void lf_keys_destroy(lf_keys_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_keys_t *self = *self_p;
    s_free_entries(self->entries, self->n);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Reads the active keys. Returns 0, or -1 when the table cannot be read (the old
 * cache stays). */
static int s_refresh(lf_keys_t *self, lf_db_t *db) {
    PGresult *res = lf_db_exec(
        db,
        "SELECT id, key_hash, coalesce(channel, ''), coalesce(rep_id, ''), is_admin,"
        " rate_per_minute, array_to_json(allowed_origins)::text"
        " FROM api_keys WHERE revoked_at IS NULL ORDER BY id",
        0, NULL);
    if (!res) {
        lf_warn("api keys not refreshed: %s", db->errstr);
        return -1;
    }
    int n = PQntuples(res);
    s_entry_t *e = lf_calloc((size_t)n + 1, sizeof *e);
    for (int i = 0; i < n; i++) {
        lf_strlcpy(e[i].info.id, PQgetvalue(res, i, 0), sizeof e[i].info.id);
        lf_strlcpy(e[i].hash, PQgetvalue(res, i, 1), sizeof e[i].hash);
        lf_strlcpy(e[i].info.channel, PQgetvalue(res, i, 2), sizeof e[i].info.channel);
        lf_strlcpy(e[i].info.rep_id, PQgetvalue(res, i, 3), sizeof e[i].info.rep_id);
        e[i].info.is_admin = PQgetvalue(res, i, 4)[0] == 't';
        e[i].info.rate_per_minute = atoi(PQgetvalue(res, i, 5));
        json_t *o = json_loads(PQgetvalue(res, i, 6), 0, NULL);
        size_t m = json_array_size(o);
        e[i].origins = lf_calloc(m + 1, sizeof(char *));
        for (size_t j = 0; j < m; j++) {
            const char *s = json_string_value(json_array_get(o, j));
            if (s)
                e[i].origins[e[i].norigins++] = lf_strdup(s);
        }
        json_decref(o);
        e[i].tokens = e[i].info.rate_per_minute;
        e[i].last_ms = -1;
    }
    PQclear(res);
    pthread_mutex_lock(&self->lock);
    /* Keep each surviving key's bucket. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < self->n; j++)
            if (!strcmp(e[i].info.id, self->entries[j].info.id)) {
                e[i].tokens = self->entries[j].tokens;
                e[i].last_ms = self->entries[j].last_ms;
                break;
            }
    s_free_entries(self->entries, self->n);
    self->entries = e;
    self->n = n;
    self->loaded = 1;
    pthread_mutex_unlock(&self->lock);
    return 0;
}

static s_entry_t *s_find_hash(lf_keys_t *self, const char *hash) {
    for (int i = 0; i < self->n; i++)
        if (!strcmp(self->entries[i].hash, hash))
            return &self->entries[i];
    return NULL;
}

static s_entry_t *s_find_id(lf_keys_t *self, const char *id) {
    for (int i = 0; i < self->n; i++)
        if (!strcmp(self->entries[i].info.id, id))
            return &self->entries[i];
    return NULL;
}

int lf_keys_lookup(lf_keys_t *self, lf_db_t *db, const char *key, lf_key_info_t *info) {
    char hash[65];
    lf_keys_hash(key, hash);
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t now = lf_mono_ms();
        pthread_mutex_lock(&self->lock);
        s_entry_t *e = s_find_hash(self, hash);
        int stale = !self->loaded || now - self->refreshed_ms >= self->refresh_ms;
        /* An unknown key may be one created a moment ago: look again, once a second. */
        int retry = !e && now - self->refreshed_ms >= 1000;
        int go = attempt == 0 && (stale || retry) && !self->refreshing;
        if (!go) {
            if (e)
                *info = e->info;
            int loaded = self->loaded;
            pthread_mutex_unlock(&self->lock);
            return e ? 1 : (loaded ? 0 : -1);
        }
        self->refreshing = 1;
        self->refreshed_ms = now;
        pthread_mutex_unlock(&self->lock);
        s_refresh(self, db);
        pthread_mutex_lock(&self->lock);
        self->refreshing = 0;
        pthread_mutex_unlock(&self->lock);
    }
    return 0;
}

int lf_keys_origin_allowed_for(lf_keys_t *self, const char *key_id, const char *origin) {
    int ok = 0;
    pthread_mutex_lock(&self->lock);
    s_entry_t *e = s_find_id(self, key_id);
    for (int j = 0; e && !ok && j < e->norigins; j++)
        ok = !strcmp(e->origins[j], origin);
    pthread_mutex_unlock(&self->lock);
    return ok;
}

int lf_keys_origin_allowed(lf_keys_t *self, const char *origin) {
    int ok = 0;
    pthread_mutex_lock(&self->lock);
    for (int i = 0; !ok && i < self->n; i++)
        for (int j = 0; !ok && j < self->entries[i].norigins; j++)
            ok = !strcmp(self->entries[i].origins[j], origin);
    pthread_mutex_unlock(&self->lock);
    return ok;
}

int lf_keys_rate(lf_keys_t *self, const char *key_id, int rate_per_minute,
                 int64_t now_ms) {
    if (rate_per_minute <= 0)
        return 0;
    int wait = 0;
    pthread_mutex_lock(&self->lock);
    s_entry_t *e = s_find_id(self, key_id);
    if (e) {
        double per_ms = rate_per_minute / 60000.0;
        if (e->last_ms >= 0)
            e->tokens += (double)(now_ms - e->last_ms) * per_ms;
        if (e->tokens > rate_per_minute)
            e->tokens = rate_per_minute;
        e->last_ms = now_ms;
        if (e->tokens >= 1.0) {
            e->tokens -= 1.0;
        } else {
            double ms = (1.0 - e->tokens) / per_ms;
            wait = (int)(ms / 1000.0) + 1;
        }
    }
    pthread_mutex_unlock(&self->lock);
    return wait;
}
