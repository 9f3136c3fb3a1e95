/* service.h - the start-up and shutdown boilerplate every service shares: --help,
 * the configuration table, logging, signals, and the health file. */
#ifndef LF_SERVICE_H
#define LF_SERVICE_H

#include "lf/config.h"

/* Parses --help, loads the configuration table, sets up logging and installs the
 * SIGINT/SIGTERM handlers (they only set a flag). Returns the config (caller owns),
 * or NULL with *exit_code set: 0 after --help, 2 on a bad value (already printed). */
lf_config_t *lf_service_init(const char *name, const lf_cfg_def_t *defs, int argc,
                             char **argv, int *exit_code);
/* 1 once SIGINT or SIGTERM arrived. */
int lf_service_stopping(void);
/* Touches LEADFLOW_HEALTH_FILE when set (container health checks read its age). */
void lf_service_healthy(const lf_config_t *cfg);
/* Writes <LEADFLOW_CONFIG_DIR>/<name> into out. Returns out, or NULL when it does
 * not fit. */
char *lf_service_config_path(const lf_config_t *cfg, const char *name, char *out,
                             size_t outsz);

#endif
