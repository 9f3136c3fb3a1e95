/* intake.h - what the intake modules share: the service context, the per-request
 * state and the HTTP helpers. */
#ifndef LF_INTAKE_H
#define LF_INTAKE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "auth.h"
#include "commit.h"
#include "limits.h"
#include "workers.h"
#include "mapping.h"
#include "lf/config.h"
#include "lf/db.h"
#include "lf/pipeline.h"
#include "lf/secret.h"
#include "lf/teams.h"

typedef struct lf_intake {
    lf_config_t *cfg;          /* owned */
    const char *db_url;        /* borrowed from cfg */
    const char *admin_key;     /* borrowed from cfg; NULL when unset */
    size_t max_body;           /* bytes for one lead */
    size_t max_import;         /* bytes for an import */
    size_t xlsx_max_unpacked;  /* bytes an .xlsx import may inflate to (zip bombs) */
    void *zctx;                /* ZeroMQ context */
    void *pub;                 /* PUB socket; used under pub_lock */
    pthread_mutex_t pub_lock;  /* ZeroMQ sockets are not thread-safe */
    lf_committer_t *committer; /* group commit of new leads */
    lf_workers_t *workers;     /* database work of the db routes (workers.h) */
    pthread_mutex_t dbs_lock;  /* guards dbs */
    lf_db_t *dbs[64];          /* per-thread read connections, closed at exit */
    int ndbs;
    atomic_long requests, responses_2xx, responses_4xx, responses_5xx;
    lf_pipeline_t *pipeline; /* owned: config/pipeline.json, read-only after start */
    lf_teams_t *teams; /* owned: config/routing.json's teams, read-only after start */
    atomic_long published, publish_dropped;
    atomic_int health_ok; /* last health probe result */
    atomic_int closing;   /* shutting down: new connections are refused (lf_http_close) */
    atomic_long health_checked_ms;
    lf_keys_t *keys;          /* api_keys cache and rate limits (owned) */
    lf_mapping_t *mapping;    /* config/channels.json: partners, call numbers (owned) */
    const char *twilio_token; /* borrowed from cfg; NULL: no signature check */
    const char *public_url;   /* borrowed from cfg; base URL Twilio signs */
    int import_window;        /* import rows in the committer at once */
    int import_max_rows;      /* most rows one import may have */
    lf_limits_t *limits;      /* per-address connections and rates (owned) */
    int request_timeout_ms;   /* a body not complete by then: 408, then closed */
    lf_secret_key_t *secret_key; /* owned: LEADFLOW_SECRET_KEY; NULL when unset */
    char secret_problem[256];    /* why new secrets cannot be sealed ("": they can) */
} lf_intake_t;

typedef struct lf_req lf_req_t;

/* A route: method and path pattern ("{}" matches one path segment, captured into
 * req->params in order), the handler, whether a key is required, and whether the
 * body may be import-sized. Each api_*.c file exports one table, terminated by an
 * entry whose method is NULL; http.c tries the tables in order. */
typedef enum MHD_Result (*lf_route_fn)(lf_intake_t *in, lf_req_t *req,
                                       const lf_auth_t *auth);
typedef struct {
    const char *method;
    const char *pattern;
    lf_route_fn fn;
    int auth;
    int import; /* also: the body is parsed as it arrives (lf_import_body) */
    /* The handler talks to PostgreSQL: it runs on a database worker (workers.h), never
     * on an HTTP thread. Its replies (lf_reply_*) are kept and sent when the suspended
     * connection resumes. */
    int db;
} lf_route_t;

extern const lf_route_t lf_routes_core[];     /* http.c: healthz, metrics */
extern const lf_route_t lf_routes_leads[];    /* api_leads.c: POST/GET leads */
extern const lf_route_t lf_routes_channels[]; /* api_channels.c: calls */
extern const lf_route_t lf_routes_import[];   /* import.c: POST /v1/leads/import */
extern const lf_route_t lf_routes_reps[];     /* api_reps.c: reps, lead fact updates */
extern const lf_route_t lf_routes_pipeline[]; /* api_pipeline.c: stage, activities */
extern const lf_route_t lf_routes_keys[];     /* api_keys.c: POST/GET/DELETE keys */
extern const lf_route_t lf_routes_lists[];    /* api_lists.c: GET leads, agenda */
extern const lf_route_t lf_routes_pool[]; /* api_pool.c: pool, claim, assign, handover */

/* Per-request state, kept in MHD's con_cls between callbacks. */
struct lf_req {
    struct MHD_Connection *conn; /* borrowed */
    char method[8];
    char *url;              /* owned copy of the path */
    char *target;           /* owned: the request target as sent, query string included */
    char *body;             /* owned, NUL-terminated */
    size_t len, cap, limit; /* body size, buffer size, allowed size */
    int too_large;          /* the body went over limit and was discarded */
    size_t received;        /* body bytes received so far (buffered or streamed) */
    int streaming; /* lf_import_body: 1 takes the body, -1 declined, 0 not asked */
    lf_job_t job;  /* the pending commit, when job_active */
    int job_active;
    const lf_route_t *route;     /* the matched route, NULL none */
    char params[2][96];          /* path parameters ({id}) */
    lf_auth_t auth;              /* the caller, checked before the body is read */
    int authed;                  /* auth is settled (else: key in a form body) */
    int answered;                /* a response was queued before the body */
    int64_t started_ms;          /* monotonic time of the first callback */
    char client[48];             /* the client address (limits.h) */
    void *ext;                   /* a handler's own state across resume (owned) */
    void (*ext_free)(void *ext); /* frees ext when the request completes */
    /* A db route's run on a worker (http.c): the reply it made, sent on resume. */
    lf_intake_t *in; /* borrowed, for the worker and the committer's hand-off */
    int on_worker;   /* handed to a worker; the connection is suspended */
    int reply_ready; /* the worker finished; reply_* is what to send */
    unsigned reply_status;
    char *reply_text;       /* owned */
    const char *reply_type; /* static Content-Type */
    int reply_retry_after;  /* Retry-After seconds for 429/503 */
};

/* Sends `body` (stolen) as JSON with status. Returns MHD's result. */
enum MHD_Result lf_reply_json(lf_intake_t *in, struct MHD_Connection *conn,
                              unsigned status, json_t *body);
/* Sends the API error shape (docs/openapi.yaml, Error); fields (stolen) may be NULL. */
enum MHD_Result lf_reply_error(lf_intake_t *in, struct MHD_Connection *conn,
                               unsigned status, const char *code, const char *message,
                               json_t *fields);
/* The import route's body as it arrives (import.c), from the upload callback once the
 * key is checked: first the first bytes (at least 8, so that a file signature can be
 * seen), then every further piece. Returns 1 when it took the bytes, 0 when the body is
 * to be buffered whole as for other routes (asked once: after a 0 the body is
 * buffered). Either way the route's handler runs once the body is in. */
int lf_import_body(lf_intake_t *in, lf_req_t *req, const char *data, size_t len);
/* The slot of the import's same-person table for a phone ('p') or e-mail ('e') in its
 * canonical form: values sharing a slot are ordered as one person's (import.c). */
size_t lf_import_person_slot(char kind, const char *value);
/* Sends a JSON body that read (MHD's content reader, cls passed to it) writes piece by
 * piece as the client takes it, with status (Retry-After: 1 on 503). Only from a
 * handler that runs on the HTTP thread (not a db route: its replies are kept). */
enum MHD_Result lf_reply_stream_json(lf_intake_t *in, struct MHD_Connection *conn,
                                     unsigned status, MHD_ContentReaderCallback read,
                                     void *cls);
/* Like lf_reply_error with a Retry-After of retry_after seconds (429, 503). */
enum MHD_Result lf_reply_error_retry(lf_intake_t *in, struct MHD_Connection *conn,
                                     unsigned status, const char *code,
                                     const char *message, int retry_after);
/* Hands the request to another thread (a database worker, the committer): suspends
 * its connection, then calls queue(arg), which returns 0 or -1 when it refuses.
 * Suspended first, so that the other thread can never resume a connection that is not
 * suspended yet; when queue refuses, the connection is resumed at once and -1 returned
 * (the caller answers). The other thread resumes the connection when it is done. */
int lf_req_hand_off(lf_req_t *req, int (*queue)(void *arg), void *arg);
/* The calling thread's read connection (created on first use). Never NULL. */
lf_db_t *lf_intake_db(lf_intake_t *in);
/* Publishes an envelope text on the PUB socket. */
void lf_intake_publish(void *arg, const char *type, const char *env, size_t len);
/* 1 when a lead can be committed now (cached for a second). */
int lf_intake_healthy(lf_intake_t *in);

/* Shared by the POST handlers (api_leads.c). */
/* The committer row for a canonical lead, its new id, the raw submission (borrowed) and
 * the scoped idempotency key or NULL. Takes the caller's reference to `lead` (the row is
 * the lead, changed in place); caller owns the result. */
json_t *lf_lead_row(json_t *lead, const char *id, const json_t *raw, const char *idem);
/* Suspends the connection and queues req->job (its row set); the route is called
 * again when the job is done and answers with lf_job_answer. */
enum MHD_Result lf_job_submit(lf_intake_t *in, lf_req_t *req);
enum MHD_Result lf_job_answer(lf_intake_t *in, lf_req_t *req);
/* Parses a JSON (or, when allow_form, a form) body after checking Content-Type.
 * Returns the object (caller owns; *form says which) or NULL after answering
 * 415/400 (*answered is MHD's result). */
json_t *lf_body_parse(lf_intake_t *in, lf_req_t *req, int allow_form, int *form,
                      enum MHD_Result *answered);
/* Writes "<key id>:<Idempotency-Key>" into out. Returns 1, 0 when there is no
 * header, -1 after answering 400 (too long). */
int lf_idempotency(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth, char *out,
                   size_t outsz, enum MHD_Result *answered);

/* Request lifecycle (http.c). Listens on addr (an IPv4 or IPv6 address; "" or NULL
 * for every interface) and port; idle_s closes a connection silent that long.
 * Returns NULL when it cannot listen. */
struct MHD_Daemon *lf_http_start(lf_intake_t *in, const char *addr, int port, int idle_s);
/* Intake is shutting down: from now on the HTTP threads refuse every new connection
 * (closed as soon as it is accepted); those already open go on. This, not
 * MHD_quiesce_daemon(): with epoll and a pool of threads that call races a thread waking
 * up meanwhile for the listening socket's removal from its epoll set, and
 * libmicrohttpd 0.9.75 aborts the process when the call loses that race. */
void lf_http_close(lf_intake_t *in);

#endif
