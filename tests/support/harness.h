/* harness.h - service and end-to-end test support.
 *
 * scripts/test.sh starts one real PostgreSQL and one real Redis on free loopback
 * ports and exports LF_TEST_PG_PORT, LF_TEST_REDIS_PORT and LF_TEST_BIN (the folder
 * of the service binaries under test). Each test then gets a fresh database of its
 * own (migrated with leadflow-migrate), its own Redis key prefix, its own free ports
 * and its own copy of config/, and runs the real service binaries as child
 * processes. Nothing is mocked. */
#ifndef LF_TEST_HARNESS_H
#define LF_TEST_HARNESS_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

enum {
    LF_H_INTAKE = 1 << 0,
    LF_H_ROUTER = 1 << 1,
    LF_H_SCHEDULER = 1 << 2,
    LF_H_ANALYTICS = 1 << 3,
    LF_H_ALL = 15,
};

typedef struct lf_h lf_h_t;

/* Creates the database, migrates it, loads db/seed/demo_reps.sql when seed is 1,
 * copies config/ to a private folder and starts the services in `services`.
 * Aborts the test (cr_assert) when anything fails. */
lf_h_t *lf_h_new(int services, int seed);
/* Stops every service with SIGTERM and checks each exited with status 0 (so a
 * sanitizer report fails the test), then drops the database. */
void lf_h_destroy(lf_h_t **self_p);
/* lf_h_destroy also checks, after stopping the services, that no row points at
 * nothing (SELECT * FROM lf_orphans(): the links no foreign key guards) and fails the
 * test otherwise. A test that writes such rows itself (events of made-up leads) says
 * so with this. */
void lf_h_allow_orphans(lf_h_t *self);

/* Criterion .fini for suites using the harness: when a test failed before it called
 * lf_h_destroy, this prints the service logs and cleans up (services, database). */
void lf_h_fini(void);

/* Writes a file into the test's config folder (before starting a service). */
void lf_h_config(lf_h_t *self, const char *name, const char *content);
/* The LEADFLOW_SECRET_KEY services get unless a test sets another with lf_h_env. */
#define LF_H_SECRET_KEY "6c6630612d746573742d6b65792d6f6e6c792d6e6f742d666f722d7573652d21"

/* Sets an extra environment variable for services started from now on. */
void lf_h_env(lf_h_t *self, const char *name, const char *value);
/* Starts one service (LF_H_*); waits until it is ready. A second instance of the
 * same service is started with instance = 1. */
void lf_h_start(lf_h_t *self, int service, int instance);
/* Starts instance 0 of each service in services (LF_H_* bits), in the order intake,
 * router, scheduler, analytics: the services of lf_h_new, for a test that writes its
 * configuration first. */
void lf_h_start_all(lf_h_t *self, int services);
/* Stops one service: SIGTERM and a clean exit expected, or SIGKILL when kill9. */
void lf_h_stop(lf_h_t *self, int service, int instance, int kill9);
pid_t lf_h_pid(lf_h_t *self, int service, int instance);

/* HTTP to intake. headers: NULL-terminated "Name: value" list or NULL; the admin
 * key is sent unless a header starting with "Authorization:" is given (use
 * "Authorization:" alone for none). Returns the status; *body (caller frees) gets
 * the response body when body != NULL. */
int lf_h_http(lf_h_t *self, const char *method, const char *path,
              const char *const *headers, const char *req_body, size_t req_len,
              char **body);
/* POST JSON with the admin key. Returns status; *out (caller owns) the parsed body. */
int lf_h_post_json(lf_h_t *self, const char *path, const char *json, json_t **out);
/* GET with the admin key; returns status and the parsed body in *out. */
int lf_h_get_json(lf_h_t *self, const char *path, json_t **out);

/* Runs SQL in the test database; returns the first column of the first row as a new
 * string (caller frees), "" when no rows, NULL on error. */
char *lf_h_sql(lf_h_t *self, const char *sql);
/* Integer convenience: the first cell as a long (-1 on error or no rows). */
long lf_h_sql_long(lf_h_t *self, const char *sql);
/* Polls sql until its first cell equals expect or timeout_ms passes. Returns 1 when
 * it matched. */
int lf_h_wait_sql(lf_h_t *self, const char *sql, const char *expect, int timeout_ms);

/* Fault injection on PostgreSQL: only in suites run with LF_TEST_PG_DIR set (the
 * test script gives the fault suite a PostgreSQL of its own). */
void lf_h_pg_stop(lf_h_t *self);
void lf_h_pg_start(lf_h_t *self);
/* Points services started from now on at another Redis port (a private Redis the
 * test starts and kills). */
void lf_h_use_redis(lf_h_t *self, int port);

/* How many lines of the file at path, from byte `from` on, contain needle (0 when the
 * file is missing). A service's log is <lf_h_dir>/<service>.<instance>.log. */
long lf_h_file_count(const char *path, long from, const char *needle);

/* A TCP port on 127.0.0.1 that nothing listens on now (below the kernel's ephemeral
 * range, so no outgoing connection takes it meanwhile). */
int lf_h_free_port(void);

/* The ZeroMQ PUB port that service (LF_H_INTAKE, LF_H_ROUTER or LF_H_SCHEDULER) binds
 * and the others connect to. While that service is not running, a test may bind it to
 * play the producer. */
int lf_h_zmq_port(const lf_h_t *self, int service);

const char *lf_h_admin_key(const lf_h_t *self);
const char *lf_h_db_url(const lf_h_t *self);
int lf_h_http_port(const lf_h_t *self);
int lf_h_redis_port(const lf_h_t *self);
const char *lf_h_redis_prefix(const lf_h_t *self);
const char *lf_h_dir(const lf_h_t *self);
/* Prints the last lines of every service log (call on failure). */
void lf_h_dump_logs(lf_h_t *self);

#endif
