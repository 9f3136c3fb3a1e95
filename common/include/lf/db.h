/* db.h - a thin libpq wrapper in hiredis' shape: the handle carries err and errstr,
 * every connection has connect, TCP, statement and idle-in-transaction timeouts, and a
 * broken connection is re-established on the next call instead of killing the
 * service - except inside a transaction: then every call fails, lf_db_commit
 * included, until lf_db_rollback or lf_db_begin. */
#ifndef LF_DB_H
#define LF_DB_H

#include <libpq-fe.h>

typedef struct {
    PGconn *conn;     /* the live connection, or NULL while disconnected */
    int err;          /* 0, or 1 after the last call failed */
    char errstr[512]; /* the last error, one line */
    char *url;        /* connection URI (owned) */
    char *app;        /* application_name shown in pg_stat_activity (owned) */
    unsigned gen;     /* bumped on every (re)connect: prepared statements die with it */
    int in_tx;        /* a transaction was open after the last statement */
    int tx_lost;      /* the connection broke inside a transaction (see above) */
    int custom_plans; /* plan every prepared statement with its values (below) */
    struct {
        const char *name; /* static statement name */
        unsigned gen;     /* connection generation it was prepared on */
    } prepared[16];
} lf_db_t;

/* The statement timeout of every connection made from now on, in milliseconds
 * (LEADFLOW_STATEMENT_TIMEOUT_MS; 15000 unless set). Called once at start-up, before
 * any thread connects. */
void lf_db_set_statement_timeout(long ms);

/* Creates a handle and tries to connect once. Never returns NULL: check err, as
 * with redisConnect. Caller owns the result. */
lf_db_t *lf_db_connect(const char *url, const char *app);
/* The same, for a connection whose prepared statements must be planned at every call
 * with their parameters' values and the tables' present size (plan_cache_mode =
 * force_custom_plan), never with a generic plan kept from the first calls: one made
 * while the table was new and nearly empty reads all of it once it has grown (the
 * router's batches on a new installation until autovacuum's first ANALYZE of leads:
 * docs/benchmarks.md). */
lf_db_t *lf_db_connect_custom_plans(const char *url, const char *app);
void lf_db_destroy(lf_db_t **self_p);
/* Makes sure the connection is up, reconnecting when needed. Returns 0 or -1. */
int lf_db_ensure(lf_db_t *self);
/* Runs a parameterised statement (text parameters, NULL entries are SQL NULL).
 * Returns the result (caller owns: PQclear) when the status is COMMAND_OK or
 * TUPLES_OK, otherwise NULL with err/errstr set. */
PGresult *lf_db_exec(lf_db_t *self, const char *sql, int nparams,
                     const char *const *params);
/* Like lf_db_exec, for a hot statement: prepared once per connection under `name`
 * (a static string), so PostgreSQL parses and plans it once, not per call. */
PGresult *lf_db_exec_prepared(lf_db_t *self, const char *name, const char *sql,
                              int nparams, const char *const *params);
/* Like lf_db_exec for statements whose rows are not needed: returns the number of
 * affected rows, or -1. */
long lf_db_cmd(lf_db_t *self, const char *sql, int nparams, const char *const *params);
int lf_db_begin(lf_db_t *self);
/* Returns 0 when the transaction committed; -1 when it did not (a failed statement
 * inside it, a lost connection, a failed COMMIT). */
int lf_db_commit(lf_db_t *self);
/* Rolls back if a transaction is open; safe to call on a broken connection. Ends a
 * transaction lost with its connection. */
void lf_db_rollback(lf_db_t *self);
/* SQLSTATE of the last failed statement ("" when unknown). */
const char *lf_db_sqlstate(const lf_db_t *self);

#endif
