/* service.c - shared service start-up. The signal handler only sets a flag; each
 * service's poll loop checks it with a bounded timeout and shuts down in order. */
#include "lf/service.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lf/db.h"
#include "lf/log.h"
#include "lf/util.h"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig) {
    (void)sig;
    s_stop = 1;
}

lf_config_t *lf_service_init(const char *name, const lf_cfg_def_t *defs, int argc,
                             char **argv, int *exit_code) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: leadflow-%s\n", name);
            lf_config_usage(defs);
            *exit_code = 0;
            return NULL;
        }
    }
    char err[256];
    lf_config_t *cfg = lf_config_load(defs, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "ERROR bad configuration: %s\n", err);
        *exit_code = 2;
        return NULL;
    }
    int lvl = lf_log_parse_level(lf_config_str(cfg, "LEADFLOW_LOG_LEVEL"));
    if (lvl < 0) {
        fprintf(stderr,
                "ERROR bad configuration: LEADFLOW_LOG_LEVEL must be debug, info, "
                "warn or error\n");
        lf_config_destroy(&cfg);
        *exit_code = 2;
        return NULL;
    }
    lf_log_init(name, (lf_log_level_t)lvl);
    lf_db_set_statement_timeout(lf_config_int(cfg, "LEADFLOW_STATEMENT_TIMEOUT_MS"));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return cfg;
}

int lf_service_stopping(void) {
    return s_stop != 0;
}

void lf_service_healthy(const lf_config_t *cfg) {
    const char *path = lf_config_str(cfg, "LEADFLOW_HEALTH_FILE");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

char *lf_service_config_path(const lf_config_t *cfg, const char *name, char *out,
                             size_t outsz) {
    if (lf_path_join(out, outsz, lf_config_str(cfg, "LEADFLOW_CONFIG_DIR"), name) < 0)
        return NULL;
    return out;
}
