/* db.c - libpq helpers.
 *
 * Timeouts: connect_timeout bounds connection set-up, tcp_user_timeout and
 * keepalives bound a peer that vanished, statement_timeout bounds a query stuck
 * behind a lock, client_connection_check_interval ends within a second the statement
 * of a service that died, and idle_in_transaction_session_timeout ends a transaction
 * that a stuck service left open: an open writing transaction holds every consumer's
 * cursor (consumer.h), so none may live long. The URI given by the operator overrides
 * these defaults because libpq applies the expanded dbname after the keywords listed
 * before it.
 *
 * Reconnecting: a broken connection is re-established on the next call - but never
 * inside a transaction. A transaction dies with its connection; running the rest of
 * it on a fresh connection would commit half of it (each statement on its own) and
 * let the final COMMIT "succeed". So once a connection breaks inside a transaction,
 * every call fails, COMMIT included, until the caller rolls back (lf_db_rollback) or
 * begins anew. */
#include "lf/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/log.h"
#include "lf/util.h"

static void s_set_err(lf_db_t *self, const char *what, const char *detail) {
    self->err = 1;
    snprintf(self->errstr, sizeof self->errstr, "%s: %s", what, detail ? detail : "");
    /* libpq messages end in newlines; log lines must not. */
    for (char *p = self->errstr; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    /* errstr goes to logs and error columns: no value a message quotes may stay. */
    lf_log_scrub(self->errstr);
}

/* Every connection's statement timeout: the bound on a query stuck behind a lock
 * or a plan gone wrong (lf_db_set_statement_timeout). */
static long s_statement_timeout_ms = 15000;

void lf_db_set_statement_timeout(long ms) {
    s_statement_timeout_ms = ms;
}

static int s_connect(lf_db_t *self) {
    char options[240];
    snprintf(options, sizeof options,
             "-c statement_timeout=%ld "
             "-c idle_in_transaction_session_timeout=10000 "
             "-c client_connection_check_interval=1000 "
             "-c jit=off "
             "-c client_min_messages=warning%s",
             s_statement_timeout_ms,
             self->custom_plans ? " -c plan_cache_mode=force_custom_plan" : "");
    const char *keys[] = {"connect_timeout",
                          "tcp_user_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "application_name",
                          "options",
                          "dbname",
                          NULL};
    const char *vals[] = {"5",       "10000", "10",      "5", "3",
                          self->app, options, self->url, NULL};
    /* client_connection_check_interval: a backend whose service died (kill -9, a
     * crash) while its statement waits for a lock notices within a second and ends,
     * instead of holding its locks until statement_timeout - and a consumer instance
     * starting next sees its predecessor dead (consumer.c, s_start). */
    /* jit=off: our statements are short and run many times; JIT compilation (on by
     * default in PostgreSQL 15 above a plan cost of 100,000) cost 0.9 s per call where
     * enable_seqscan = off inflates a plan's estimate (the router's pool tick, measured:
     * 932 ms with JIT, 0.3 ms without; docs/benchmarks.md). */
    self->conn = PQconnectdbParams(keys, vals, 1);
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK) {
        s_set_err(self, "connect",
                  self->conn ? PQerrorMessage(self->conn) : "out of memory");
        PQfinish(self->conn);
        self->conn = NULL;
        return -1;
    }
    /* Error messages without DETAIL, HINT or CONTEXT: those quote the row that failed
     * (a unique violation's DETAIL names the phone or e-mail). */
    PQsetErrorVerbosity(self->conn, PQERRORS_TERSE);
    self->err = 0;
    self->errstr[0] = '\0';
    self->gen++;
    return 0;
}

static lf_db_t *s_new(const char *url, const char *app, int custom_plans) {
    lf_db_t *self = lf_calloc(1, sizeof *self);
    self->url = lf_strdup(url);
    self->app = lf_strdup(app ? app : "leadflow");
    self->custom_plans = custom_plans;
    s_connect(self);
    return self;
}

lf_db_t *lf_db_connect(const char *url, const char *app) {
    return s_new(url, app, 0);
}

lf_db_t *lf_db_connect_custom_plans(const char *url, const char *app) {
    return s_new(url, app, 1);
}

void lf_db_destroy(lf_db_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_db_t *self = *self_p;
    PQfinish(self->conn);
    free(self->url);
    free(self->app);
    free(self);
    *self_p = NULL;
}

/* Closes a connection that broke; a transaction open on it is lost. */
static void s_drop(lf_db_t *self) {
    if (self->in_tx)
        self->tx_lost = 1;
    self->in_tx = 0;
    PQfinish(self->conn);
    self->conn = NULL;
}

/* Remembers whether a transaction is open, after a statement that reached the
 * server. */
static void s_track(lf_db_t *self) {
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        self->in_tx = PQtransactionStatus(self->conn) != PQTRANS_IDLE;
}

static int s_tx_lost(lf_db_t *self) {
    s_set_err(self, "connection",
              "lost inside a transaction; nothing of it was committed (roll back, "
              "then retry the whole transaction)");
    return -1;
}

int lf_db_ensure(lf_db_t *self) {
    if (self->tx_lost)
        return s_tx_lost(self);
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        return 0;
    if (self->conn) {
        s_drop(self);
        if (self->tx_lost)
            return s_tx_lost(self);
    }
    return s_connect(self);
}

static PGresult *s_result_err(lf_db_t *self, PGresult *res) {
    s_set_err(self, "query", self->conn ? PQerrorMessage(self->conn) : "not connected");
    /* The SQLSTATE goes at the end of errstr, where lf_db_sqlstate finds it. */
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (st) {
        size_t n = strlen(self->errstr);
        snprintf(self->errstr + n, sizeof self->errstr - n, " [%s]", st);
    }
    PQclear(res);
    /* A broken connection is dropped here so the next call reconnects (unless a
     * transaction was open on it). */
    if (self->conn && PQstatus(self->conn) != CONNECTION_OK)
        s_drop(self);
    else
        s_track(self);
    return NULL;
}

PGresult *lf_db_exec(lf_db_t *self, const char *sql, int nparams,
                     const char *const *params) {
    if (lf_db_ensure(self) < 0)
        return NULL;
    PGresult *res = PQexecParams(self->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return s_result_err(self, res);
    self->err = 0;
    s_track(self);
    return res;
}

PGresult *lf_db_exec_prepared(lf_db_t *self, const char *name, const char *sql,
                              int nparams, const char *const *params) {
    if (lf_db_ensure(self) < 0)
        return NULL;
    size_t slot = 0, n = sizeof self->prepared / sizeof self->prepared[0];
    while (slot < n && self->prepared[slot].name && self->prepared[slot].name != name)
        slot++;
    if (slot == n) /* more hot statements than slots: fall back to unprepared */
        return lf_db_exec(self, sql, nparams, params);
    if (self->prepared[slot].name != name || self->prepared[slot].gen != self->gen) {
        PGresult *res = PQprepare(self->conn, name, sql, nparams, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
            return s_result_err(self, res);
        PQclear(res);
        self->prepared[slot].name = name;
        self->prepared[slot].gen = self->gen;
    }
    PGresult *res = PQexecPrepared(self->conn, name, nparams, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return s_result_err(self, res);
    self->err = 0;
    return res;
}

long lf_db_cmd(lf_db_t *self, const char *sql, int nparams, const char *const *params) {
    PGresult *res = lf_db_exec(self, sql, nparams, params);
    if (!res)
        return -1;
    const char *t = PQcmdTuples(res);
    long n = (t && *t) ? strtol(t, NULL, 10) : 0;
    PQclear(res);
    return n;
}

int lf_db_begin(lf_db_t *self) {
    self->tx_lost = 0; /* the caller has moved on from the lost one */
    return lf_db_cmd(self, "BEGIN", 0, NULL) < 0 ? -1 : 0;
}

int lf_db_commit(lf_db_t *self) {
    if (self->tx_lost) {
        self->tx_lost = 0;
        s_tx_lost(self);
        return -1;
    }
    PGresult *res = lf_db_exec(self, "COMMIT", 0, NULL);
    if (!res)
        return -1;
    /* COMMIT of a transaction in which a statement failed answers "ROLLBACK". */
    int rolled_back = strcmp(PQcmdStatus(res), "COMMIT") != 0;
    PQclear(res);
    if (rolled_back) {
        s_set_err(self, "commit", "the transaction had failed and was rolled back");
        return -1;
    }
    return 0;
}

void lf_db_rollback(lf_db_t *self) {
    self->tx_lost = 0;
    self->in_tx = 0;
    if (!self->conn || PQstatus(self->conn) != CONNECTION_OK)
        return;
    if (PQtransactionStatus(self->conn) == PQTRANS_IDLE)
        return;
    PGresult *res = PQexec(self->conn, "ROLLBACK");
    PQclear(res);
}

const char *lf_db_sqlstate(const lf_db_t *self) {
    const char *p = strrchr(self->errstr, '[');
    static __thread char st[8];
    if (!p || strlen(p) < 7)
        return "";
    memcpy(st, p + 1, 5);
    st[5] = '\0';
    return st;
}
