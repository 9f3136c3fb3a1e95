/* db.c - libpq helpers.
 *
 * Timeouts: connect_timeout bounds connection set-up, tcp_user_timeout and
 * keepalives bound a peer that vanished, and statement_timeout bounds a query
 * stuck behind a lock. The URI given by the operator overrides these defaults
 * because libpq applies the expanded dbname after the keywords listed before it. */
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

static int s_connect(lf_db_t *self) {
    const char *keys[] = {"connect_timeout",
                          "tcp_user_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "application_name",
                          "options",
                          "dbname",
                          NULL};
    const char *vals[] = {"5",
                          "10000",
                          "10",
                          "5",
                          "3",
                          self->app,
                          "-c statement_timeout=15000 -c client_min_messages=warning",
                          self->url,
                          NULL};
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

lf_db_t *lf_db_connect(const char *url, const char *app) {
    lf_db_t *self = lf_calloc(1, sizeof *self);
    self->url = lf_strdup(url);
    self->app = lf_strdup(app ? app : "leadflow");
    s_connect(self);
    return self;
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

int lf_db_ensure(lf_db_t *self) {
    if (self->conn && PQstatus(self->conn) == CONNECTION_OK)
        return 0;
    if (self->conn) {
        PQfinish(self->conn);
        self->conn = NULL;
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
    /* A broken connection is dropped here so the next call reconnects. */
    if (self->conn && PQstatus(self->conn) != CONNECTION_OK) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
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
    return lf_db_cmd(self, "BEGIN", 0, NULL) < 0 ? -1 : 0;
}

int lf_db_commit(lf_db_t *self) {
    return lf_db_cmd(self, "COMMIT", 0, NULL) < 0 ? -1 : 0;
}

void lf_db_rollback(lf_db_t *self) {
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
