/* leadflow-migrate - brings the database schema up to date.
 *
 * Two kinds of SQL, as Flyway has them:
 *   - versioned migrations, db/migrations/NNNN_name.sql, change the schema. Each is
 *     applied once, in file-name order, in its own transaction together with the row
 *     that records it in schema_migrations, so a crash leaves the whole migration or
 *     none of it. A file whose first line is `-- leadflow:no-transaction` is sent
 *     statement by statement outside a transaction instead (CREATE INDEX
 *     CONCURRENTLY cannot run inside one); such a file must be safe to run again
 *     (IF NOT EXISTS), because a crash can leave part of it done.
 *   - repeatable files, the .sql files of db/functions, hold the functions and views.
 * After the versioned migrations, when any of them is new, changed or gone, the whole
 *     folder is re-applied in file-name order in one transaction, and each file's
 *     checksum is recorded in schema_repeatables. Re-applying all of them rather than
 *     the changed ones keeps views that another view's DROP ... CASCADE removed.
 *     A change to a function is then a diff of that function's file.
 *
 * An advisory lock makes concurrent runs (two containers starting at once) wait for
 * each other; running again applies nothing. A versioned file whose content changed
 * after it was applied is reported, because silently re-running or ignoring it would
 * both be wrong, unless it names the content it corrects (s_accept_correction). The
 * session runs without the services' statement timeout: a migration that rewrites a
 * large table may take long, and must not be cut off. */
#include <dirent.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/company.h"
#include "lf/config.h"
#include "lf/db.h"
#include "lf/log.h"
#include "lf/secret_stored.h"
#include "lf/sqlsplit.h"
#include "lf/util.h"

static const lf_cfg_def_t s_cfg[] = {
    LF_CFG_COMMON,
    {"LEADFLOW_MIGRATIONS_DIR", LF_CFG_STR, "db/migrations", 0, 0,
     "folder of NNNN_name.sql files (versioned schema changes)"},
    {"LEADFLOW_FUNCTIONS_DIR", LF_CFG_STR, "", 0, 0,
     "folder of repeatable function and view files (default: 'functions' beside the "
     "migrations folder)"},
    {"LEADFLOW_DB_SERVICE_PASSWORD", LF_CFG_STR, NULL, 0, 0,
     "when set, the service roles (leadflow_intake, _router, _scheduler, _analytics) "
     "may log in with this password"},
    {"LEADFLOW_DB_BI_PASSWORD", LF_CFG_STR, NULL, 0, 0,
     "when set, the read-only role leadflow_bi may log in with this password"},
    LF_CFG_SECRET_KEY,
    {"LEADFLOW_SECRET_KEY_OLD", LF_CFG_STR, NULL, 0, 0,
     "with --rotate-secret-key only: the key the stored secrets are encrypted with now "
     "(LEADFLOW_SECRET_KEY is then the new one)"},
    {NULL, 0, NULL, 0, 0, NULL}};

#define NO_TXN_MARK "-- leadflow:no-transaction"
#define CORRECTS_MARK "-- leadflow:corrects-sha256"

typedef struct {
    char *name;   /* file name (owned) */
    char *sql;    /* content (owned) */
    size_t len;   /* content length */
    char sum[65]; /* hex SHA-256 of the content */
} s_file_t;

/* Gives the service roles and the BI role (db/migrations/0012_roles.sql) LOGIN and a
 * password when the operator set one (compose does). libpq hashes the password (SCRAM)
 * before it is sent, so its clear text reaches neither the server nor its log.
 * Returns 0, or -1 after logging. */
static int s_role_passwords(lf_db_t *db, lf_config_t *cfg) {
    static const char *const roles[] = {"leadflow_intake",    "leadflow_router",
                                        "leadflow_scheduler", "leadflow_analytics",
                                        "leadflow_bi",        NULL};
    const char *svc = lf_config_str(cfg, "LEADFLOW_DB_SERVICE_PASSWORD");
    const char *bi = lf_config_str(cfg, "LEADFLOW_DB_BI_PASSWORD");
    for (int i = 0; roles[i]; i++) {
        const char *pw = strcmp(roles[i], "leadflow_bi") ? svc : bi;
        if (!pw || !*pw)
            continue;
        if (lf_db_ensure(db) < 0)
            return -1;
        char *verifier = PQencryptPasswordConn(db->conn, pw, roles[i], NULL);
        if (!verifier) {
            lf_error("cannot hash the password of role %s", roles[i]);
            return -1;
        }
        const char *p[] = {roles[i], verifier};
        PGresult *res = lf_db_exec(
            db, "SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", 2,
            p);
        PQfreemem(verifier);
        long n = res ? lf_db_cmd(db, PQgetvalue(res, 0, 0), 0, NULL) : -1;
        PQclear(res);
        if (n < 0) {
            lf_error("cannot set the password of role %s: %s", roles[i], db->errstr);
            return -1;
        }
        lf_info("role may log in role=%s", roles[i]);
    }
    return 0;
}

static int s_cmp(const void *a, const void *b) {
    return strcmp(((const s_file_t *)a)->name, ((const s_file_t *)b)->name);
}

static void s_sha256(const char *data, size_t len, char out[65]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

static void s_files_free(s_file_t *files, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(files[i].name);
        free(files[i].sql);
    }
    free(files);
}

/* Reads every .sql file of dir, sorted by name. Returns 0 or -1 (logged). A folder
 * that does not exist is empty when `optional`. */
static int s_read_dir(const char *dir, int optional, s_file_t **out, size_t *nout) {
    s_file_t *files = NULL;
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (optional) {
            *out = NULL, *nout = 0;
            return 0;
        }
        lf_error("cannot open folder %s", dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        char path[1024];
        if (lf_path_join(path, sizeof path, dir, e->d_name) < 0) {
            lf_error("path too long: %s/%s", dir, e->d_name);
            goto fail;
        }
        files = lf_realloc(files, (n + 1) * sizeof *files);
        s_file_t *f = &files[n];
        f->name = lf_strdup(e->d_name);
        f->sql = lf_read_file(path, &f->len);
        n++;
        if (!f->sql) {
            lf_error("cannot read %s", path);
            goto fail;
        }
        s_sha256(f->sql, f->len, f->sum);
    }
    closedir(d);
    if (n) /* an empty folder: files is NULL, which qsort must not get */
        qsort(files, n, sizeof *files, s_cmp);
    *out = files, *nout = n;
    return 0;
fail:
    closedir(d);
    s_files_free(files, n);
    return -1;
}

/* Runs a whole script as one simple-query string (inside the caller's transaction). */
static int s_exec_script(lf_db_t *db, const char *name, const char *sql) {
    PGresult *r = PQexec(db->conn, sql);
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        return 0;
    }
    lf_error("%s failed: %s", name,
             r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
    PQclear(r);
    return -1;
}

/* Sends a no-transaction migration statement by statement, then records it. */
static int s_apply_no_txn(lf_db_t *db, const s_file_t *f) {
    char **stmts;
    int n = lf_sql_split(f->sql, f->len, &stmts);
    if (n < 0) {
        lf_error("migration %s: unterminated quote, comment or dollar body", f->name);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char what[300];
        snprintf(what, sizeof what, "migration %s (statement %d)", f->name, i + 1);
        rc = s_exec_script(db, what, stmts[i]);
    }
    lf_sql_split_free(stmts, n);
    const char *q[] = {f->name, f->sum};
    if (rc == 0 &&
        lf_db_cmd(db, "INSERT INTO schema_migrations (version, sha256) VALUES ($1, $2)",
                  2, q) != 1)
        rc = -1;
    return rc;
}

/* The file and its record commit together. PQexec runs the whole file as one
 * simple-query string, so multi-statement files work as written. */
static int s_apply_in_txn(lf_db_t *db, const s_file_t *f) {
    const char *q[] = {f->name, f->sum};
    char what[300];
    snprintf(what, sizeof what, "migration %s", f->name);
    if (lf_db_begin(db) == 0 && s_exec_script(db, what, f->sql) == 0 &&
        lf_db_cmd(db, "INSERT INTO schema_migrations (version, sha256) VALUES ($1, $2)",
                  2, q) == 1 &&
        lf_db_commit(db) == 0)
        return 0;
    lf_db_rollback(db);
    return -1;
}

/* A versioned file corrected after it shipped says which content it replaces, with a
 * line `-- leadflow:corrects-sha256 <checksum of the shipped file>`. A database that ran
 * that content records the corrected checksum (nothing is re-run: what the correction
 * changes is explained in the file). Returns 0 when the recorded checksum was such a
 * predecessor, -1 when the difference is unexplained. */
static int s_accept_correction(lf_db_t *db, const s_file_t *f, const char *recorded,
                               int status_only) {
    char mark[128];
    snprintf(mark, sizeof mark, "%s %s\n", CORRECTS_MARK, recorded);
    if (strlen(recorded) != 64 || !strstr(f->sql, mark))
        return -1;
    if (status_only)
        return 0;
    const char *q[] = {f->name, f->sum};
    if (lf_db_cmd(db, "UPDATE schema_migrations SET sha256 = $2 WHERE version = $1", 2,
                  q) != 1)
        return -1;
    lf_info("migration corrected after it was applied file=%s (checksum updated, not "
            "re-run)",
            f->name);
    return 0;
}

/* Applies the versioned migrations not yet recorded. Returns the number applied
 * (or pending, with status_only), or -1. */
static int s_versioned(lf_db_t *db, const char *dir, int status_only) {
    s_file_t *files;
    size_t n;
    if (s_read_dir(dir, 0, &files, &n) < 0)
        return -1;
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        const s_file_t *f = &files[i];
        const char *p[] = {f->name};
        PGresult *res = lf_db_exec(
            db, "SELECT sha256 FROM schema_migrations WHERE version = $1", 1, p);
        if (!res)
            goto fail;
        int done = PQntuples(res) > 0;
        if (done && strcmp(PQgetvalue(res, 0, 0), f->sum) != 0 &&
            s_accept_correction(db, f, PQgetvalue(res, 0, 0), status_only) < 0)
            lf_warn("migration changed after it was applied file=%s (not re-run)",
                    f->name);
        PQclear(res);
        if (status_only) {
            printf("%-40s %s\n", f->name, done ? "applied" : "pending");
            count += !done;
            continue;
        }
        if (done)
            continue;
        int no_txn = strncmp(f->sql, NO_TXN_MARK, strlen(NO_TXN_MARK)) == 0;
        if ((no_txn ? s_apply_no_txn(db, f) : s_apply_in_txn(db, f)) < 0)
            goto fail;
        lf_info("applied migration %s%s", f->name,
                no_txn ? " (outside a transaction)" : "");
        count++;
    }
    s_files_free(files, n);
    return count;
fail:
    s_files_free(files, n);
    return -1;
}

/* Re-applies the repeatable folder when anything in it differs from what was
 * recorded. Returns the number of files applied (0 when up to date; with
 * status_only, 1 when a re-apply is pending), or -1. */
static int s_repeatables(lf_db_t *db, const char *dir, int status_only) {
    s_file_t *files;
    size_t n;
    if (s_read_dir(dir, 1, &files, &n) < 0)
        return -1;
    int rc = -1, changed = 0;
    PGresult *res =
        lf_db_exec(db, "SELECT name, sha256 FROM schema_repeatables", 0, NULL);
    if (!res)
        goto out;
    changed = (size_t)PQntuples(res) != n;
    for (size_t i = 0; i < n; i++) {
        int same = 0;
        for (int r = 0; r < PQntuples(res) && !same; r++)
            same = strcmp(PQgetvalue(res, r, 0), files[i].name) == 0 &&
                   strcmp(PQgetvalue(res, r, 1), files[i].sum) == 0;
        if (status_only)
            printf("%-40s %s\n", files[i].name, same ? "applied" : "pending");
        changed |= !same;
    }
    PQclear(res);
    if (!changed || status_only) {
        rc = changed;
        goto out;
    }
    if (lf_db_begin(db) < 0 ||
        lf_db_cmd(db, "DELETE FROM schema_repeatables", 0, NULL) < 0)
        goto rollback;
    for (size_t i = 0; i < n; i++) {
        char what[300];
        snprintf(what, sizeof what, "function file %s", files[i].name);
        const char *q[] = {files[i].name, files[i].sum};
        if (s_exec_script(db, what, files[i].sql) < 0 ||
            lf_db_cmd(db, "INSERT INTO schema_repeatables (name, sha256) VALUES ($1, $2)",
                      2, q) != 1)
            goto rollback;
    }
    if (lf_db_commit(db) < 0)
        goto rollback;
    lf_info("applied function files from %s count=%zu", dir, n);
    rc = (int)n;
    goto out;
rollback:
    lf_db_rollback(db);
out:
    s_files_free(files, n);
    return rc;
}

/* Encrypts the notification secrets stored in plain text (written before encryption,
 * or while no key was set) with LEADFLOW_SECRET_KEY; without a key, says how many wait
 * for one. A key that does not open the secrets already sealed is refused: sealing more
 * with it would leave two keys' secrets. Returns how many were sealed, or -1 after
 * logging. */
static long s_seal_secrets(lf_db_t *db, lf_config_t *cfg) {
    char err[256];
    lf_secret_key_t *key = NULL;
    if (lf_secret_key_parse(lf_config_str(cfg, "LEADFLOW_SECRET_KEY"), &key, err,
                            sizeof err) < 0) {
        lf_error("bad configuration: %s", err);
        return -1;
    }
    long n = 0;
    if (!key) {
        n = lf_secret_count_plain(db);
        if (n > 0)
            lf_warn("%ld notification secrets are stored in plain text: set "
                    "LEADFLOW_SECRET_KEY and run leadflow-migrate again to encrypt them",
                    n);
        if (n < 0)
            lf_error("secrets not counted: %s", db->errstr);
        return n < 0 ? -1 : 0;
    }
    int rc = lf_secret_check_stored(db, key, err, sizeof err);
    if (rc == 0)
        n = lf_secret_seal_stored(db, key);
    if (rc > 0)
        lf_error("LEADFLOW_SECRET_KEY: %s; nothing was encrypted", err);
    else if (rc < 0 || n < 0)
        lf_error("secrets not encrypted: %s", db->errstr);
    lf_secret_key_destroy(&key);
    return rc != 0 ? -1 : n;
}

/* --rotate-secret-key: every stored secret from LEADFLOW_SECRET_KEY_OLD to
 * LEADFLOW_SECRET_KEY in one transaction (lf_secret_rotate_stored), nothing else (no
 * migration). Returns the exit status: 0, 1 when a secret opens with neither key or a
 * key is missing (nothing changed). */
static int s_rotate(lf_db_t *db, lf_config_t *cfg) {
    char err[256];
    lf_secret_key_t *old_key = NULL, *new_key = NULL;
    int rc = 1;
    if (lf_secret_key_parse(lf_config_str(cfg, "LEADFLOW_SECRET_KEY_OLD"), &old_key, err,
                            sizeof err) < 0) {
        lf_error("bad configuration: LEADFLOW_SECRET_KEY_OLD: %s", err);
        goto out;
    }
    if (lf_secret_key_parse(lf_config_str(cfg, "LEADFLOW_SECRET_KEY"), &new_key, err,
                            sizeof err) < 0) {
        lf_error("bad configuration: %s", err);
        goto out;
    }
    if (!old_key || !new_key) {
        lf_error("--rotate-secret-key needs the old key in LEADFLOW_SECRET_KEY_OLD and "
                 "the new one in LEADFLOW_SECRET_KEY; nothing was changed");
        goto out;
    }
    lf_secret_rotation_t st;
    int r = lf_secret_rotate_stored(db, old_key, new_key, &st, err, sizeof err);
    if (r > 0)
        lf_error("secret key not rotated: %s; nothing was changed", err);
    else if (r < 0)
        lf_error("secret key not rotated: %s; nothing was changed", db->errstr);
    else
        lf_info("secret key rotated secrets_reencrypted=%ld plain_secrets_encrypted=%ld "
                "already_under_the_new_key=%ld",
                st.resealed, st.sealed_plain, st.already);
    rc = r == 0 ? 0 : 1;
out:
    lf_secret_key_destroy(&old_key);
    lf_secret_key_destroy(&new_key);
    return rc;
}

int main(int argc, char **argv) {
    int status_only = argc > 1 && strcmp(argv[1], "--status") == 0;
    int rotate = argc > 1 && strcmp(argv[1], "--rotate-secret-key") == 0;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: leadflow-migrate [--status | --rotate-secret-key]\n");
        lf_config_usage(s_cfg);
        return 0;
    }
    if (argc > 1 && !status_only && !rotate) {
        fprintf(stderr, "usage: leadflow-migrate [--status | --rotate-secret-key]\n");
        return 2;
    }
    char err[256];
    lf_config_t *cfg = lf_config_load(s_cfg, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "ERROR %s\n", err);
        return 2;
    }
    int lvl = lf_log_parse_level(lf_config_str(cfg, "LEADFLOW_LOG_LEVEL"));
    lf_log_init("migrate", lvl < 0 ? LF_LOG_INFO : (lf_log_level_t)lvl);
    const char *dir = lf_config_str(cfg, "LEADFLOW_MIGRATIONS_DIR");
    char fdir[1024];
    if (*lf_config_str(cfg, "LEADFLOW_FUNCTIONS_DIR"))
        lf_strlcpy(fdir, lf_config_str(cfg, "LEADFLOW_FUNCTIONS_DIR"), sizeof fdir);
    else
        snprintf(fdir, sizeof fdir, "%s/../functions", dir);
    int rc = 1;
    lf_db_t *db =
        lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"), "leadflow-migrate");
    if (db->err) {
        lf_error("cannot connect to PostgreSQL: %s", db->errstr);
        goto out;
    }
    if (lf_db_cmd(db, "SET statement_timeout = 0", 0, NULL) < 0 ||
        lf_db_cmd(db, "SET idle_in_transaction_session_timeout = 0", 0, NULL) < 0 ||
        lf_db_cmd(db, "SELECT pg_advisory_lock(727001)", 0, NULL) < 0 ||
        lf_db_cmd(
            db,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
            "sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            0, NULL) < 0 ||
        lf_db_cmd(db,
                  "CREATE TABLE IF NOT EXISTS schema_repeatables (name text PRIMARY KEY, "
                  "sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                  0, NULL) < 0) {
        lf_error("cannot prepare the migration tables: %s", db->errstr);
        goto out;
    }
    if (rotate) {
        rc = s_rotate(db, cfg);
        goto out;
    }
    int applied = s_versioned(db, dir, status_only);
    if (applied < 0)
        goto out;
    int functions = s_repeatables(db, fdir, status_only);
    if (functions < 0)
        goto out;
    if (status_only) {
        rc = (applied || functions) ? 3 : 0;
        goto out;
    }
    /* Values only C can compute (company keys need ICU) for rows written before. */
    long keyed = lf_company_backfill(db);
    if (keyed < 0 || s_role_passwords(db, cfg) < 0)
        goto out;
    long sealed = s_seal_secrets(db, cfg);
    if (sealed < 0)
        goto out;
    lf_info("schema up to date migrations_applied=%d function_files_applied=%d "
            "company_keys_backfilled=%ld secrets_encrypted=%ld",
            applied, functions, keyed, sealed);
    rc = 0;
out:
    lf_db_destroy(&db);
    lf_config_destroy(&cfg);
    return rc;
}
