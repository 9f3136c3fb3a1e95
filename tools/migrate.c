/* leadflow-migrate - applies db/migrations/NNNN_name.sql in order.
 *
 * Each file runs in its own transaction together with the row that records it in
 * schema_migrations, so a crash leaves either the whole migration or none of it.
 * An advisory lock makes concurrent runs (two containers starting at once) wait for
 * each other; running again applies nothing. A file whose content changed after it
 * was applied is reported, because silently re-running or ignoring it would both
 * be wrong. */
#include <dirent.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/config.h"
#include "lf/db.h"
#include "lf/log.h"
#include "lf/util.h"

static const lf_cfg_def_t s_cfg[] = {LF_CFG_COMMON,
                                     {"LEADFLOW_MIGRATIONS_DIR", LF_CFG_STR,
                                      "db/migrations", 0, 0,
                                      "folder of NNNN_name.sql files"},
                                     {NULL, 0, NULL, 0, 0, NULL}};

static int s_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_sha256(const char *data, size_t len, char out[65]) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

int main(int argc, char **argv) {
    int status_only = argc > 1 && strcmp(argv[1], "--status") == 0;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: leadflow-migrate [--status]\n");
        lf_config_usage(s_cfg);
        return 0;
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
    int rc = 1;
    char **files = NULL;
    size_t nfiles = 0;
    lf_db_t *db =
        lf_db_connect(lf_config_str(cfg, "LEADFLOW_DATABASE_URL"), "leadflow-migrate");
    if (db->err) {
        lf_error("cannot connect to PostgreSQL: %s", db->errstr);
        goto out;
    }
    DIR *d = opendir(dir);
    if (!d) {
        lf_error("cannot open migrations folder %s", dir);
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".sql") == 0) {
            files = lf_realloc(files, (nfiles + 1) * sizeof *files);
            files[nfiles++] = lf_strdup(e->d_name);
        }
    }
    closedir(d);
    qsort(files, nfiles, sizeof *files, s_cmp);

    if (lf_db_cmd(db, "SELECT pg_advisory_lock(727001)", 0, NULL) < 0 ||
        lf_db_cmd(
            db,
            "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, "
            "sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
            0, NULL) < 0) {
        lf_error("cannot prepare schema_migrations: %s", db->errstr);
        goto out;
    }
    int applied = 0, pending = 0;
    for (size_t i = 0; i < nfiles; i++) {
        char path[1024];
        if (lf_path_join(path, sizeof path, dir, files[i]) < 0)
            goto out;
        size_t len = 0;
        char *sql = lf_read_file(path, &len);
        if (!sql) {
            lf_error("cannot read %s", path);
            goto out;
        }
        char sum[65];
        s_sha256(sql, len, sum);
        const char *p[] = {files[i]};
        PGresult *res = lf_db_exec(
            db, "SELECT sha256 FROM schema_migrations WHERE version = $1", 1, p);
        if (!res) {
            free(sql);
            goto out;
        }
        int done = PQntuples(res) > 0;
        if (done && strcmp(PQgetvalue(res, 0, 0), sum) != 0)
            lf_warn("migration changed after it was applied file=%s (not re-run)",
                    files[i]);
        PQclear(res);
        if (done || status_only) {
            if (!done)
                pending++;
            if (status_only)
                printf("%-40s %s\n", files[i], done ? "applied" : "pending");
            free(sql);
            continue;
        }
        /* The file and its record commit together. PQexec runs the whole file as
         * one simple-query string, so multi-statement files work as written. */
        PGresult *r = NULL;
        if (lf_db_begin(db) == 0 && (r = PQexec(db->conn, sql)) &&
            PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            const char *q[] = {files[i], sum};
            if (lf_db_cmd(
                    db, "INSERT INTO schema_migrations (version, sha256) VALUES ($1, $2)",
                    2, q) == 1 &&
                lf_db_commit(db) == 0) {
                lf_info("applied migration %s", files[i]);
                applied++;
                free(sql);
                continue;
            }
        } else {
            lf_error("migration %s failed: %s", files[i],
                     r ? PQresultErrorMessage(r) : db->errstr);
            PQclear(r);
        }
        lf_db_rollback(db);
        free(sql);
        goto out;
    }
    if (!status_only)
        lf_info("migrations up to date applied=%d total=%zu", applied, nfiles);
    rc = (status_only && pending) ? 3 : 0;
out:
    for (size_t i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    lf_db_destroy(&db);
    lf_config_destroy(&cfg);
    return rc;
}
