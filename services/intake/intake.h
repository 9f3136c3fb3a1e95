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

/* Who is calling, from the Authorization header. */
typedef struct {
    int ok;             /* 1 when a valid key was presented */
    int is_admin;       /* the admin key, or a key with admin rights */
    char key_id[64];    /* "admin" or the api_keys id (scopes Idempotency-Key) */
    char channel[32];   /* the key's channel, "" for any */
    char rep_id[64];    /* the rep the key belongs to, "" for none */
} lf_auth_t;

typedef struct lf_intake {
    lf_config_t *cfg;            /* owned */
    const char *db_url;          /* borrowed from cfg */
    const char *admin_key;       /* borrowed from cfg; NULL when unset */
    size_t max_body;             /* bytes for one lead */
    size_t max_import;           /* bytes for an import */
    void *zctx;                  /* ZeroMQ context */
    void *pub;                   /* PUB socket; used under pub_lock */
    pthread_mutex_t pub_lock;    /* ZeroMQ sockets are not thread-safe */
    lf_committer_t *committer;   /* group commit of new leads */
    pthread_mutex_t dbs_lock;    /* guards dbs */
    lf_db_t *dbs[64];            /* per-thread read connections, closed at exit */
    int ndbs;
    atomic_long requests, responses_2xx, responses_4xx, responses_5xx;
    atomic_long published, publish_dropped;
    atomic_int health_ok;        /* last health probe result */
    atomic_long health_checked_ms;
} lf_intake_t;

/* Per-request state, kept in MHD's con_cls between callbacks. */
typedef struct lf_req {
    struct MHD_Connection *conn; /* borrowed */
    char method[8];
    char *url;                   /* owned copy of the path */
    char *body;                  /* owned, NUL-terminated */
    size_t len, cap, limit;      /* body size, buffer size, allowed size */
    int too_large;               /* the body went over limit and was discarded */
    lf_job_t job;                /* the pending commit, when job_active */
    int job_active;
    int route;                   /* index of the matched route, -1 none */
    char params[2][96];          /* path parameters ({id}) */
} lf_req_t;

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

/* Route handlers (api_*.c). */
enum MHD_Result lf_api_post_lead(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth);
enum MHD_Result lf_api_get_lead(lf_intake_t *in, lf_req_t *req, const lf_auth_t *auth);

/* Request lifecycle (http.c). */
struct MHD_Daemon *lf_http_start(lf_intake_t *in, int port);

#endif
