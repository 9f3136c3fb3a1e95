/* intake.h - what the intake modules share: the service context, the per-request
 * state and the HTTP helpers. */
#ifndef LF_INTAKE_H
#define LF_INTAKE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "commit.h"
#include "lf/config.h"
#include "lf/db.h"
#include "lf/pipeline.h"

/* Who is calling, from the Authorization header. */
typedef struct {
    int ok;           /* 1 when a valid key was presented */
    int is_admin;     /* the admin key, or a key with admin rights */
    char key_id[64];  /* "admin" or the api_keys id (scopes Idempotency-Key) */
    char channel[32]; /* the key's channel, "" for any */
    char rep_id[64];  /* the rep the key belongs to, "" for none */
} lf_auth_t;

typedef struct lf_intake {
    lf_config_t *cfg;          /* owned */
    const char *db_url;        /* borrowed from cfg */
    const char *admin_key;     /* borrowed from cfg; NULL when unset */
    size_t max_body;           /* bytes for one lead */
    size_t max_import;         /* bytes for an import */
    void *zctx;                /* ZeroMQ context */
    void *pub;                 /* PUB socket; used under pub_lock */
    pthread_mutex_t pub_lock;  /* ZeroMQ sockets are not thread-safe */
    lf_committer_t *committer; /* group commit of new leads */
    pthread_mutex_t dbs_lock;  /* guards dbs */
    lf_db_t *dbs[64];          /* per-thread read connections, closed at exit */
    int ndbs;
    atomic_long requests, responses_2xx, responses_4xx, responses_5xx;
    lf_pipeline_t *pipeline; /* owned: config/pipeline.json, read-only after start */
    atomic_long published, publish_dropped;
    atomic_int health_ok; /* last health probe result */
    atomic_long health_checked_ms;
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
    int import;
} lf_route_t;

extern const lf_route_t lf_routes_core[];     /* http.c: healthz, metrics */
extern const lf_route_t lf_routes_leads[];    /* api_leads.c: POST/GET leads */
extern const lf_route_t lf_routes_channels[]; /* api_channels.c: import, calls, forms */
extern const lf_route_t lf_routes_reps[];     /* api_reps.c: reps, lead fact updates */
extern const lf_route_t lf_routes_pipeline[]; /* api_pipeline.c: stage, activities */

/* Per-request state, kept in MHD's con_cls between callbacks. */
struct lf_req {
    struct MHD_Connection *conn; /* borrowed */
    char method[8];
    char *url;              /* owned copy of the path */
    char *body;             /* owned, NUL-terminated */
    size_t len, cap, limit; /* body size, buffer size, allowed size */
    int too_large;          /* the body went over limit and was discarded */
    lf_job_t job;           /* the pending commit, when job_active */
    int job_active;
    const lf_route_t *route; /* the matched route, NULL none */
    char params[2][96];      /* path parameters ({id}) */
};

/* Sends `body` (stolen) as JSON with status. Returns MHD's result. */
enum MHD_Result lf_reply_json(lf_intake_t *in, struct MHD_Connection *conn,
                              unsigned status, json_t *body);
/* Sends the API.md error shape; fields (stolen) may be NULL. */
enum MHD_Result lf_reply_error(lf_intake_t *in, struct MHD_Connection *conn,
                               unsigned status, const char *code, const char *message,
                               json_t *fields);
/* The calling thread's read connection (created on first use). Never NULL. */
lf_db_t *lf_intake_db(lf_intake_t *in);
/* Publishes an envelope text on the PUB socket. */
void lf_intake_publish(void *arg, const char *type, const char *env, size_t len);
/* 1 when a lead can be committed now (cached for a second). */
int lf_intake_healthy(lf_intake_t *in);

/* Request lifecycle (http.c). */
struct MHD_Daemon *lf_http_start(lf_intake_t *in, int port);

#endif
