/* deliver.c - notifications leave here, at least once each, never twice at a time.
 *
 * Each (notification, destination) is a notify_deliveries row (the fan-out trigger
 * writes them with the notification). A worker thread, with its own PostgreSQL
 * connection and curl handle, loops:
 *   1. lease (lf_notify_lease, one short committed transaction): destinations that
 *      may send now are locked with SKIP LOCKED, the rows of one message each turn
 *      'sending' with a lease naming this worker - so several schedulers never send
 *      one row at the same time - and the destination is held until that lease runs
 *      out, so no other message to it starts while this one may be in flight;
 *   2. send with no transaction open: render (notify_format.c), POST or SMTP, read
 *      the answer (robots say 200 with an error code in the body);
 *   3. record (lf_notify_record): sent; or back to pending after an exponential
 *      backoff with jitter (Retry-After honoured) until the maximum age; or dead for
 *      a permanent refusal. The destination's hold ends: its next message may start
 *      one gap (below: per type) after this moment, or after a Retry-After if later.
 *      A destination failing again and again is paused and its owner's manager told.
 * A worker that dies between 2 and 3 leaves rows 'sending', and their destination
 * held, until their lease runs out; they are then sent again with the same
 * X-Leadflow-Delivery id (their batch): at-least-once, and receivers can drop the
 * repeat. Rate limits live on the destination row (next_send_at, gap_ms), so they hold
 * across workers and schedulers, and whatever waits for a rate-limited robot is merged
 * into its next message. The gap counts from the recorded answer, not from the lease:
 * a message that reached the target late (slow connect, network or machine) still
 * leaves the target a whole gap before the next one. A worker asked to stop while
 * it holds leases it has not sent yet gives them back (lf_notify_release): the rows
 * are pending again and their destinations free at once, so a restart does not hold
 * them for a lease's length.
 * Timer firing never waits for any of this: it runs on other connections, in the
 * main thread. */
#include "deliver.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lf/log.h"
#include "lf/netguard.h"
#include "lf/secret_ref.h"
#include "lf/secret_stored.h"
#include "lf/util.h"
#include "notify_format.h"

#define S_MAX_WORKERS 16
#define S_BODY_MAX 4096

typedef struct {
    lf_deliver_t *d;  /* the deliverer it belongs to */
    pthread_t thread; /* the worker */
    int started;      /* thread running (joined at stop) */
    char name[96];    /* leased_by: host:pid:n */
    unsigned seed;    /* jitter */
} s_worker_t;

struct lf_deliver {
    lf_deliver_cfg_t cfg;              /* copy of the settings */
    char gap[160];                     /* per-type gap after a message (ms), JSON */
    atomic_int stop;                   /* set by lf_deliver_stop */
    s_worker_t workers[S_MAX_WORKERS]; /* the threads */
    int nworkers;
};

static void s_nap(lf_deliver_t *d, int ms) {
    for (int i = 0; i < ms && !atomic_load(&d->stop); i += 50)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
}

/* ---- one HTTP request ---- */

typedef struct {
    char body[S_BODY_MAX + 1]; /* the start of the answer */
    size_t len;
    long retry_after; /* seconds, -1 none */
    lf_deliver_t *d;
} s_answer_t;

static size_t s_on_body(char *p, size_t size, size_t n, void *arg) {
    s_answer_t *a = arg;
    size_t k = size * n, room = S_BODY_MAX - a->len;
    memcpy(a->body + a->len, p, k < room ? k : room);
    a->len += k < room ? k : room;
    a->body[a->len] = '\0';
    return size * n;
}

static size_t s_on_header(char *p, size_t size, size_t n, void *arg) {
    s_answer_t *a = arg;
    size_t k = size * n;
    if (k > 12 && !strncasecmp(p, "Retry-After:", 12)) {
        char v[64];
        size_t vl = k - 12 < sizeof v - 1 ? k - 12 : sizeof v - 1;
        memcpy(v, p + 12, vl);
        v[vl] = '\0';
        char *s = v + strspn(v, " \t");
        s[strcspn(s, "\r\n")] = '\0';
        char *end = NULL;
        long secs = strtol(s, &end, 10);
        if (end != s && *end == '\0' && secs >= 0) {
            a->retry_after = secs;
        } else {
            time_t t = curl_getdate(s, NULL);
            if (t > 0)
                a->retry_after = t > time(NULL) ? (long)(t - time(NULL)) : 0;
        }
    }
    return k;
}

/* Refuses a connection to an address the policy does not allow (checked on the
 * address connected to, so a DNS change since the URL was set does not matter). */
static int s_on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port) {
    (void)local_ip;
    (void)port;
    (void)local_port;
    const lf_deliver_t *d = arg;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        return CURL_PREREQFUNC_ABORT;
    return lf_net_addr_allowed((struct sockaddr *)&ss, d->cfg.net_policy)
               ? CURL_PREREQFUNC_OK
               : CURL_PREREQFUNC_ABORT;
}

static int s_on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
                         curl_off_t e) {
    (void)a;
    (void)b;
    (void)c;
    (void)e;
    const lf_deliver_t *d = arg;
    return atomic_load(&d->stop) ? 1 : 0; /* stopping: abort the request */
}

static lf_send_result_t s_post(lf_deliver_t *d, CURL *c, int type,
                               const lf_notify_msg_t *m, char *err, size_t errsz,
                               long *retry_after_s) {
    s_answer_t *a = lf_calloc(1, sizeof *a);
    a->retry_after = -1;
    a->d = d;
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/json; charset=utf-8");
    h = curl_slist_append(h, "User-Agent: leadflow");
    for (int i = 0; i < m->nheaders; i++)
        h = curl_slist_append(h, m->headers[i]);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, m->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, m->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(m->body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, d->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     d->cfg.timeout_ms < 5000 ? d->cfg.timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_PREREQFUNCTION, s_on_prereq);
    curl_easy_setopt(c, CURLOPT_PREREQDATA, d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, s_on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    lf_send_result_t r;
    if (cc == CURLE_ABORTED_BY_CALLBACK && !atomic_load(&d->stop)) {
        snprintf(err, errsz,
                 "address refused: private or loopback (see "
                 "LEADFLOW_NOTIFY_ALLOW_PRIVATE)");
        *retry_after_s = -1;
        r = LF_SEND_DEAD;
    } else if (cc != CURLE_OK) {
        snprintf(err, errsz, "%s", curl_easy_strerror(cc));
        *retry_after_s = -1;
        r = LF_SEND_RETRY;
    } else {
        r = lf_notify_classify(type, status, a->body, a->retry_after, err, errsz,
                               retry_after_s);
    }
    free(a);
    return r;
}

/* ---- lease, send, record ---- */

/* The delay before the next try: backoff * 2^(attempts-1), capped, then a random
 * point in its upper half (jitter: retries of many rows do not arrive together);
 * never less than what the target asked for. */
static long s_delay_ms(s_worker_t *w, int attempts, long retry_after_s) {
    const lf_deliver_cfg_t *cfg = &w->d->cfg;
    long d = cfg->backoff_ms;
    for (int i = 1; i < attempts && d < cfg->backoff_max_ms; i++)
        d *= 2;
    if (d > cfg->backoff_max_ms)
        d = cfg->backoff_max_ms;
    d = d / 2 + (long)(rand_r(&w->seed) % (unsigned)(d / 2 + 1));
    if (retry_after_s >= 0 && retry_after_s * 1000 > d)
        d = retry_after_s * 1000;
    return d;
}

static const char *const s_outcome[] = {"sent", "retry", "dead"};

/* Row r of a lease that will not be sent (the scheduler is stopping): its rows go back
 * to pending and its destination is free again now, not when the lease runs out (a
 * restart would otherwise hold every destination leased and not sent for the lease's
 * length, 50 s by default). When this fails the lease runs out as after a crash. */
static void s_release(s_worker_t *w, lf_db_t *db, PGresult *res, int r) {
    const char *p[] = {w->name, PQgetvalue(res, r, 7), PQgetvalue(res, r, 0)};
    PGresult *x = lf_db_exec(db, "SELECT lf_notify_release($1, $2::bigint[], $3)", 3, p);
    if (!x)
        lf_warn("leased notifications not released (sent when the lease runs out): %s",
                db->errstr);
    PQclear(x);
}

/* Sends one leased message (row r of the lease result) and records what came of it. */
static void s_one(s_worker_t *w, lf_db_t *db, CURL *c, PGresult *res, int r) {
    lf_deliver_t *d = w->d;
    const char *key = PQgetvalue(res, r, 0);
    int type = lf_dest_type_parse(PQgetvalue(res, r, 1));
    lf_dest_t dest = {
        .type = type,
        .url = PQgetisnull(res, r, 2) ? NULL : PQgetvalue(res, r, 2),
        .secret = PQgetisnull(res, r, 3) ? NULL : PQgetvalue(res, r, 3),
        .to = PQgetisnull(res, r, 4) ? NULL : PQgetvalue(res, r, 4),
        .format = PQgetisnull(res, r, 5) ? NULL : PQgetvalue(res, r, 5),
    };
    const char *batch = PQgetvalue(res, r, 6), *ids = PQgetvalue(res, r, 7);
    json_t *items = json_loads(PQgetvalue(res, r, 8), 0, NULL);
    int attempts = atoi(PQgetvalue(res, r, 9));
    lf_notify_style_t st = {d->cfg.templates, d->cfg.link, d->cfg.max_lines};
    lf_notify_msg_t m;
    memset(&m, 0, sizeof m);
    char err[400] = "";
    long retry_after = -1;
    lf_send_result_t out;
    int64_t t0 = lf_mono_ms();
    /* The secret is stored sealed (lf/secret.h): opened for this message only. A key
     * that cannot open it is a setting to fix, not a fault of the destination: the
     * rows wait with the reason as their error (retried until their maximum age, so
     * they go out once the scheduler runs with the right key). */
    char *secret = NULL;
    int opened = !dest.secret || lf_secret_open(d->cfg.secret_key, dest.secret, &secret,
                                                err, sizeof err) == 0;
    dest.secret = secret;
    if (!opened) {
        out = LF_SEND_RETRY;
    } else if (lf_notify_render(&dest, items, &st, batch, lf_now_ms(), &m) < 0) {
        snprintf(err, sizeof err, "cannot build the message (type %s, URL %s)",
                 lf_dest_type_name(type), dest.url ? "set" : "missing");
        out = LF_SEND_DEAD;
    } else if (type == LF_DEST_EMAIL) {
        out = lf_smtp_send(c, &d->cfg.smtp, dest.to, m.subject, m.body, batch, err,
                           sizeof err);
    } else {
        out = s_post(d, c, type, &m, err, sizeof err, &retry_after);
    }
    lf_notify_msg_clear(&m);
    if (secret) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    size_t n = json_array_size(items);
    json_decref(items);
    char delay[24], ra[24], age[24], pa[16], ps[24];
    snprintf(delay, sizeof delay, "%ld",
             out == LF_SEND_RETRY ? s_delay_ms(w, attempts, retry_after) : 0L);
    snprintf(ra, sizeof ra, "%ld", retry_after);
    snprintf(age, sizeof age, "%ld", d->cfg.max_age_s);
    snprintf(pa, sizeof pa, "%d", d->cfg.pause_after_s);
    snprintf(ps, sizeof ps, "%ld", d->cfg.pause_s);
    const char *p[] = {w->name, ids, key, s_outcome[out], out ? err : NULL, delay, ra,
                       age,     pa,  ps};
    PGresult *rec = lf_db_exec(db,
                               "SELECT sent, retried, dead, paused FROM lf_notify_record("
                               "$1, $2::bigint[], $3, $4, $5, $6::bigint, $7::int,"
                               " $8::int, $9::int, $10::int)",
                               10, p);
    if (!rec) {
        /* The rows stay leased; when the lease runs out they are sent again. */
        lf_warn("notification result not recorded (will be sent again) dest=%s: %s",
                lf_dest_type_name(type), db->errstr);
        return;
    }
    if (out == LF_SEND_OK)
        lf_debug("notification sent type=%s items=%zu ms=%lld", lf_dest_type_name(type),
                 n, (long long)(lf_mono_ms() - t0));
    else
        lf_warn("notification %s type=%s items=%zu attempt=%d dead=%s paused=%s: %s",
                out == LF_SEND_DEAD ? "refused" : "failed", lf_dest_type_name(type), n,
                attempts, PQgetvalue(rec, 0, 2), PQgetvalue(rec, 0, 3), err);
    PQclear(rec);
}

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;

static void s_curl_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void *s_worker_main(void *arg) {
    s_worker_t *w = arg;
    lf_deliver_t *d = w->d;
    lf_db_t *db = lf_db_connect(d->cfg.db_url, "leadflow-scheduler-deliver");
    /* libcurl (and with it OpenSSL's set-up, ~3 MiB resident) only once there is
     * something to send: a scheduler with nothing to deliver stays small. */
    CURL *c = NULL;
    char merge[24], lease[24];
    snprintf(merge, sizeof merge, "%d", d->cfg.merge_max);
    /* A lease outlives the longest send, so nobody else takes the rows, or another
     * message to their destination, meanwhile. */
    snprintf(lease, sizeof lease, "%ld", d->cfg.timeout_ms * 2 / 1000 + 30);
    int64_t next_expire = 0, next_sync = lf_mono_ms() + 3600 * 1000;
    while (!atomic_load(&d->stop)) {
        if (lf_db_ensure(db) < 0) {
            s_nap(d, 1000);
            continue;
        }
        if (w == &d->workers[0] && lf_mono_ms() >= next_sync) {
            /* Working time is written two weeks ahead: move it on every hour. */
            char why[256];
            if (lf_deliver_sync_teams(db, d->cfg.routing, d->cfg.teams, d->cfg.global_url,
                                      d->cfg.global_secret, d->cfg.secret_key, why,
                                      sizeof why) < 0)
                lf_warn("%s", why);
            next_sync = lf_mono_ms() + 3600 * 1000;
        }
        if (lf_mono_ms() >= next_expire) {
            char age[24];
            snprintf(age, sizeof age, "%ld", d->cfg.max_age_s);
            const char *p[] = {age};
            PGresult *x = lf_db_exec(db, "SELECT lf_notify_expire($1::int)", 1, p);
            if (x && atoi(PQgetvalue(x, 0, 0)) > 0)
                lf_warn("notifications past their maximum age are dead n=%s",
                        PQgetvalue(x, 0, 0));
            PQclear(x);
            next_expire = lf_mono_ms() + 10000;
        }
        const char *p[] = {w->name, "4", merge, lease, d->gap};
        PGresult *res = lf_db_exec(db,
                                   "SELECT dest_key, type, url, secret, to_addr, format,"
                                   " batch, ids, items, attempts FROM lf_notify_lease("
                                   "$1, $2::int, $3::int, $4::int, $5::jsonb)",
                                   5, p);
        if (!res) {
            lf_warn("notification lease failed: %s", db->errstr);
            s_nap(d, 1000);
            continue;
        }
        int n = PQntuples(res);
        if (n > 0 && !c) {
            pthread_once(&s_curl_once, s_curl_init);
            c = curl_easy_init();
        }
        if (n > 0 && !c) { /* the leases run out and the rows are sent later */
            lf_warn("notifications not sent: libcurl could not start");
            s_nap(d, 1000);
        }
        int i = 0;
        for (; i < n && c && !atomic_load(&d->stop); i++)
            s_one(w, db, c, res, i);
        for (; i < n && c; i++) /* asked to stop: what was not sent goes back */
            s_release(w, db, res, i);
        PQclear(res);
        if (n == 0)
            s_nap(d, d->cfg.poll_ms);
    }
    if (c)
        curl_easy_cleanup(c);
    lf_db_destroy(&db);
    return NULL;
}

lf_deliver_t *lf_deliver_start(const lf_deliver_cfg_t *cfg) {
    lf_deliver_t *d = lf_calloc(1, sizeof *d);
    d->cfg = *cfg;
    atomic_init(&d->stop, 0);
    long robot_gap = 60000L / (cfg->robot_per_minute > 0 ? cfg->robot_per_minute : 20);
    snprintf(d->gap, sizeof d->gap,
             "{\"wecom\": %ld, \"dingtalk\": %ld, \"feishu\": %ld, \"slack\": 1000,"
             " \"webhook\": 0, \"email\": 0}",
             robot_gap, robot_gap, robot_gap);
    char host[64] = "scheduler";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    int n = cfg->workers < S_MAX_WORKERS ? cfg->workers : S_MAX_WORKERS;
    for (int i = 0; i < n; i++) {
        s_worker_t *w = &d->workers[i];
        w->d = d;
        snprintf(w->name, sizeof w->name, "%.60s:%d:%d", host, (int)getpid(), i);
        w->seed = (unsigned)(lf_now_ms() ^ (getpid() << 8) ^ i);
        if (pthread_create(&w->thread, NULL, s_worker_main, w) != 0) {
            lf_error("cannot start notification worker %d", i);
            lf_deliver_stop(&d);
            return NULL;
        }
        w->started = 1;
        d->nworkers = i + 1;
    }
    return d;
}

void lf_deliver_stop(lf_deliver_t **self_p) {
    lf_deliver_t *d = self_p ? *self_p : NULL;
    if (!d)
        return;
    atomic_store(&d->stop, 1);
    for (int i = 0; i < d->nworkers; i++)
        if (d->workers[i].started)
            pthread_join(d->workers[i].thread, NULL);
    free(d);
    *self_p = NULL;
}

/* ---- team destinations from the configuration ---- */

/* The working windows of cal from `from` for `days` days: [[open, close], ...] in
 * epoch seconds (minute steps: calendars are set in HH:MM). */
static json_t *s_open_windows(const lf_bizcal_t *cal, int64_t from, int days) {
    json_t *a = json_array();
    int64_t end = from + (int64_t)days * 86400, t = from;
    while (t < end) {
        int64_t open = lf_bizcal_next_open(cal, t);
        if (open < 0 || open >= end)
            break;
        int64_t close = open - open % 60 + 60;
        while (close < end + 86400 && lf_bizcal_is_open(cal, close))
            close += 60;
        json_array_append_new(a,
                              json_pack("[I, I]", (json_int_t)open, (json_int_t)close));
        t = close;
    }
    return a;
}

int lf_deliver_sync_teams(lf_db_t *db, const json_t *routing, const lf_teams_t *cals,
                          const char *global_url, const char *global_secret,
                          const lf_secret_key_t *key, char *why, size_t whysz) {
    json_t *teams = json_object();
    int64_t now = lf_now_ms() / 1000;
    const char *id;
    json_t *t;
    json_object_foreach(json_object_get(routing, "teams"), id, t) {
        json_t *list = json_object_get(t, "notify");
        if (!list)
            continue;
        size_t i;
        json_t *dest;
        if (!json_is_array(list)) {
            snprintf(why, whysz, "teams.%s.notify must be a list of destinations", id);
            goto bad;
        }
        json_array_foreach(list, i, dest) {
            const char *type = json_string_value(json_object_get(dest, "type"));
            int ty = lf_dest_type_parse(type);
            if (ty < 0 ||
                (ty != LF_DEST_EMAIL &&
                 !json_string_value(json_object_get(dest, "url"))) ||
                (ty == LF_DEST_EMAIL &&
                 !json_string_value(json_object_get(dest, "to")))) {
                snprintf(why, whysz,
                         "teams.%s.notify[%zu]: needs a type (wecom, dingtalk, feishu, "
                         "slack, webhook, email) and a url (a \"to\" address for email)",
                         id, i);
                goto bad;
            }
        }
    }
    /* Every listed team (destinations, manager, working time) and the defaults ("")
     * for the teams that are not. */
    json_object_foreach(json_object_get(routing, "teams"), id, t) {
        json_t *list = json_object_get(t, "notify");
        json_t *mgr = json_object_get(t, "manager");
        const lf_team_t *tm = cals ? lf_teams_get(cals, id) : NULL;
        /* A copy, its secrets read from where the file points (secret_env,
         * secret_file) and sealed: the configuration itself stays as read. */
        json_t *copy = list ? json_deep_copy(list) : json_array();
        size_t i;
        json_t *dest;
        json_array_foreach(copy, i, dest) {
            char ref[300];
            if (lf_secret_ref_resolve(dest, ref, sizeof ref) < 0) {
                json_decref(copy);
                snprintf(why, whysz, "teams.%s.notify[%zu]: %s", id, i, ref);
                goto bad;
            }
        }
        if (key && lf_secret_seal_list(key, copy) < 0) {
            json_decref(copy);
            snprintf(why, whysz,
                     "team destinations not saved: a secret could not be "
                     "encrypted");
            goto bad;
        }
        json_object_set_new(teams, id,
                            json_pack("{s:o, s:O, s:o}", "notify", copy, "manager",
                                      json_is_string(mgr) ? mgr : json_null(), "open",
                                      tm && tm->calendar
                                          ? s_open_windows(tm->calendar, now, 14)
                                          : json_null()));
    }
    const lf_team_t *def = cals ? lf_teams_get(cals, NULL) : NULL;
    json_object_set_new(teams, "",
                        json_pack("{s:[], s:n, s:o}", "notify", "manager", "open",
                                  def && def->calendar
                                      ? s_open_windows(def->calendar, now, 14)
                                      : json_null()));
    if (global_url && *global_url) {
        json_t *g = json_pack("{s:s, s:s}", "type", "webhook", "url", global_url);
        if (global_secret && *global_secret) {
            char *sealed = key ? lf_secret_seal(key, global_secret) : NULL;
            json_object_set_new(g, "secret",
                                json_string(sealed ? sealed : global_secret));
            free(sealed);
        }
        json_object_set_new(
            teams, "*", json_pack("{s:[o], s:n, s:n}", "notify", g, "manager", "open"));
    }
    char *text = json_dumps(teams, JSON_COMPACT);
    json_decref(teams);
    const char *p[] = {text};
    long rc = lf_db_cmd(
        db,
        "WITH t AS (SELECT key AS team, value -> 'notify' AS notify,"
        "  value ->> 'manager' AS manager,"
        "  CASE WHEN jsonb_typeof(value -> 'open') = 'array' THEN"
        "   coalesce((SELECT range_agg(tstzrange("
        "     to_timestamp((w ->> 0)::float8), to_timestamp((w ->> 1)::float8)))"
        "     FROM jsonb_array_elements(value -> 'open') w),"
        "    '{}'::tstzmultirange) END AS open_hours"
        "  FROM jsonb_each($1::jsonb)),"
        " del AS (DELETE FROM notify_teams WHERE team NOT IN"
        "  (SELECT team FROM t))"
        " INSERT INTO notify_teams (team, notify, manager, open_hours)"
        " SELECT team, notify, manager, open_hours FROM t"
        " ON CONFLICT (team) DO UPDATE SET notify = EXCLUDED.notify,"
        "  manager = EXCLUDED.manager, open_hours = EXCLUDED.open_hours,"
        "  updated_at = now()",
        1, p);
    free(text);
    if (rc < 0) {
        snprintf(why, whysz, "team destinations not saved: %s", db->errstr);
        return -1;
    }
    return 0;
bad:
    json_decref(teams);
    return -1;
}
