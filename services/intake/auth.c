/* auth.c - scopes, the API key cache, its change listener and the per-key token
 * buckets.
 *
 * The cache is an array rebuilt from api_keys on every refresh; the rate-limit state
 * of a key (its bucket) is carried over by id, so a refresh does not hand out a fresh
 * minute's burst. Lookups are linear: a deployment has tens of keys, not thousands,
 * and a scan of a few kilobytes is cheaper than keeping a hash table in sync. The
 * database query runs outside the lock, so other HTTP threads keep answering from
 * the old cache while one thread refreshes it. */
#include "auth.h"

#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lf/apikey.h"
#include "lf/log.h"
#include "lf/util.h"

/* How long a request waits for the first read of the keys that another thread runs:
 * longer than that read takes when PostgreSQL answers (connect_timeout is 5 s). */
enum { S_FIRST_READ_WAIT_S = 10 };

typedef struct {
    char hash[65];      /* hex SHA-256 of the key */
    lf_key_info_t info; /* what the caller gets */
    char **origins;     /* allowed origins (owned) */
    int norigins;
    double tokens;      /* token bucket: requests left */
    int64_t last_ms;    /* when tokens was last topped up */
    int64_t used_ms;    /* wall-clock time of the last use, 0 never */
    int64_t written_ms; /* used_ms as last written to api_keys.last_used_at */
} s_entry_t;

struct lf_keys {
    pthread_mutex_t lock; /* guards everything below */
    s_entry_t *entries;   /* active keys (owned) */
    int n;
    int loaded;           /* 1 after the first successful refresh */
    int refreshing;       /* one thread at a time queries the table */
    pthread_cond_t done;  /* signalled when a refresh ends */
    int stale;            /* set by lf_keys_invalidate: refresh on the next lookup */
    int64_t refreshed_ms; /* monotonic time of the last refresh attempt */
    int refresh_ms;       /* cache lifetime */
    /* The watcher thread (lf_keys_watch). */
    pthread_t watcher;
    int watching; /* the thread was started */
    int stop;     /* asks the thread to end (under lock) */
    char *db_url; /* owned */
    int flush_ms; /* how often last-used times are written */
};

const char *lf_scope_name(int scope) {
    switch (scope) {
    case LF_SCOPE_INTAKE:
        return "intake";
    case LF_SCOPE_REP:
        return "rep";
    case LF_SCOPE_MANAGER:
        return "manager";
    case LF_SCOPE_ADMIN:
        return "admin";
    default:
        return "none";
    }
}

int lf_scope_parse(const char *name) {
    static const int all[] = {LF_SCOPE_INTAKE, LF_SCOPE_REP, LF_SCOPE_MANAGER,
                              LF_SCOPE_ADMIN};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(name, lf_scope_name(all[i])))
            return all[i];
    return 0;
}

int lf_auth_bit(const lf_auth_t *auth) {
    if (!auth || !auth->ok)
        return 0;
    if (auth->scope == LF_SCOPE_INTAKE && !strcmp(auth->channel, "web_form"))
        return LF_SCOPE_WEB_FORM;
    return auth->scope;
}

static void s_free_entries(s_entry_t *e, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < e[i].norigins; j++)
            free(e[i].origins[j]);
        free(e[i].origins);
    }
    free(e);
}

void lf_keys_hash(const char *key, char out[65]) {
    lf_apikey_hash(key, out);
}

lf_keys_t *lf_keys_new(int refresh_ms) {
    lf_keys_t *self = lf_calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->done, NULL);
    self->refresh_ms = refresh_ms;
    return self;
}

void lf_keys_destroy(lf_keys_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_keys_t *self = *self_p;
    if (self->watching) {
        pthread_mutex_lock(&self->lock);
        self->stop = 1;
        pthread_mutex_unlock(&self->lock);
        pthread_join(self->watcher, NULL);
    }
    free(self->db_url);
    s_free_entries(self->entries, self->n);
    pthread_cond_destroy(&self->done);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Reads the active keys: not revoked, and not of a rep who is inactive. Returns 0,
 * or -1 when the table cannot be read (the old cache stays). */
static int s_refresh(lf_keys_t *self, lf_db_t *db) {
    PGresult *res = lf_db_exec(
        db,
        "SELECT k.id, k.key_hash, coalesce(k.channel, ''), coalesce(k.rep_id, ''),"
        " k.scope, k.rate_per_minute, array_to_json(k.allowed_origins)::text"
        " FROM api_keys k LEFT JOIN reps r ON r.id = k.rep_id"
        " WHERE k.revoked_at IS NULL AND (k.rep_id IS NULL OR r.active) ORDER BY k.id",
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
        e[i].info.scope = lf_scope_parse(PQgetvalue(res, i, 4));
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
    /* Keep each surviving key's bucket and use. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < self->n; j++)
            if (!strcmp(e[i].info.id, self->entries[j].info.id)) {
                e[i].tokens = self->entries[j].tokens;
                e[i].last_ms = self->entries[j].last_ms;
                e[i].used_ms = self->entries[j].used_ms;
                e[i].written_ms = self->entries[j].written_ms;
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
        int stale =
            !self->loaded || self->stale || now - self->refreshed_ms >= self->refresh_ms;
        /* An unknown key may be one created a moment ago: look again, once a second. */
        int retry = !e && now - self->refreshed_ms >= 1000;
        int go = attempt == 0 && (stale || retry) && !self->refreshing;
        if (!go && !self->loaded && self->refreshing) {
            /* The first read of the keys runs in another thread (intake has just
             * started): wait for it instead of answering "cannot be read right now",
             * as requests that came in the first milliseconds used to be. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += S_FIRST_READ_WAIT_S;
            while (self->refreshing && !self->loaded)
                if (pthread_cond_timedwait(&self->done, &self->lock, &until) != 0)
                    break;
            e = s_find_hash(self, hash);
        }
        if (!go) {
            if (e) {
                *info = e->info;
                e->used_ms = lf_now_ms();
            }
            int loaded = self->loaded;
            pthread_mutex_unlock(&self->lock);
            return e ? 1 : (loaded ? 0 : -1);
        }
        self->refreshing = 1;
        self->stale = 0;
        self->refreshed_ms = now;
        pthread_mutex_unlock(&self->lock);
        s_refresh(self, db);
        pthread_mutex_lock(&self->lock);
        self->refreshing = 0;
        pthread_cond_broadcast(&self->done);
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

void lf_keys_invalidate(lf_keys_t *self) {
    pthread_mutex_lock(&self->lock);
    self->stale = 1;
    pthread_mutex_unlock(&self->lock);
}

/* Writes the last-used times that changed since the last write. */
static void s_flush_used(lf_keys_t *self, lf_db_t *db) {
    json_t *ids = json_array(), *ats = json_array();
    pthread_mutex_lock(&self->lock);
    for (int i = 0; i < self->n; i++) {
        s_entry_t *e = &self->entries[i];
        if (e->used_ms > e->written_ms) {
            json_array_append_new(ids, json_string(e->info.id));
            json_array_append_new(ats, json_real((double)e->used_ms / 1000.0));
        }
    }
    pthread_mutex_unlock(&self->lock);
    if (json_array_size(ids) > 0) {
        char *a = json_dumps(ids, JSON_COMPACT), *b = json_dumps(ats, JSON_COMPACT);
        const char *p[] = {a, b};
        /* last_used_at is not among the columns whose change notifies (db/functions),
         * so this write does not make every intake refresh its cache. */
        long n = lf_db_cmd(db,
                           "UPDATE api_keys k SET last_used_at = to_timestamp(x.t)"
                           " FROM (SELECT jsonb_array_elements_text($1::jsonb) AS id,"
                           "  jsonb_array_elements_text($2::jsonb)::float8 AS t) x"
                           " WHERE k.id = x.id AND (k.last_used_at IS NULL OR"
                           "  k.last_used_at < to_timestamp(x.t))",
                           2, p);
        free(a);
        free(b);
        if (n < 0) {
            lf_warn("key last-used times not written: %s", db->errstr);
        } else {
            /* Mark what was written; a use since then is written next time. */
            pthread_mutex_lock(&self->lock);
            size_t i;
            json_t *v;
            json_array_foreach(ids, i, v) {
                s_entry_t *e = s_find_id(self, json_string_value(v));
                int64_t at =
                    (int64_t)(json_real_value(json_array_get(ats, i)) * 1000.0 + 0.5);
                if (e && e->written_ms < at)
                    e->written_ms = at;
            }
            pthread_mutex_unlock(&self->lock);
        }
    }
    json_decref(ids);
    json_decref(ats);
}

static int s_should_stop(lf_keys_t *self) {
    pthread_mutex_lock(&self->lock);
    int stop = self->stop;
    pthread_mutex_unlock(&self->lock);
    return stop;
}

/* The watcher: LISTEN leadflow_keys on a connection of its own; every notification
 * (and every reconnect, which may have missed some) marks the cache stale. */
static void *s_watch(void *arg) {
    lf_keys_t *self = arg;
    lf_db_t *db = lf_db_connect(self->db_url, "leadflow-intake-keys");
    int listening = 0;
    int64_t flushed = lf_mono_ms(), retry_at = 0;
    while (!s_should_stop(self)) {
        int64_t now = lf_mono_ms();
        if (!listening && now >= retry_at) {
            if (lf_db_ensure(db) == 0 &&
                lf_db_cmd(db, "LISTEN leadflow_keys", 0, NULL) >= 0) {
                listening = 1;
                lf_keys_invalidate(self);
            } else {
                retry_at = now + 1000;
            }
        }
        if (listening && now - flushed >= self->flush_ms) {
            s_flush_used(self, db);
            flushed = now;
        }
        if (!listening || !db->conn) {
            listening = 0;
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd pfd = {.fd = PQsocket(db->conn), .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            if (!PQconsumeInput(db->conn)) {
                lf_warn("key change listener lost its connection; reconnecting");
                PQfinish(db->conn);
                db->conn = NULL;
                listening = 0;
                continue;
            }
            PGnotify *n;
            int seen = 0;
            while ((n = PQnotifies(db->conn)) != NULL) {
                seen = 1;
                PQfreemem(n);
            }
            if (seen)
                lf_keys_invalidate(self);
        }
    }
    s_flush_used(self, db);
    lf_db_destroy(&db);
    return NULL;
}

int lf_keys_watch(lf_keys_t *self, const char *db_url, int flush_ms) {
    if (self->watching)
        return 0;
    self->db_url = lf_strdup(db_url);
    self->flush_ms = flush_ms > 0 ? flush_ms : 2000;
    if (pthread_create(&self->watcher, NULL, s_watch, self) != 0) {
        lf_error("cannot start the key change listener");
        return -1;
    }
    self->watching = 1;
    return 0;
}
