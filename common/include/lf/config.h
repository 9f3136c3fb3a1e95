/* config.h - service configuration from environment variables, one table per
 * service ({name, type, default, min, max}), validated once at start-up as redis'
 * config.c does. A bad value stops the service with one clear line. */
#ifndef LF_CONFIG_H
#define LF_CONFIG_H

#include <stddef.h>

typedef enum { LF_CFG_STR, LF_CFG_INT } lf_cfg_type_t;

typedef struct {
    const char *name;   /* environment variable, e.g. "LEADFLOW_INTAKE_PORT" */
    lf_cfg_type_t type; /* how the value is parsed */
    const char *def;    /* default as text; NULL means "no value" (strings only) */
    long min, max;      /* inclusive bounds for integers */
    const char *help;   /* one sentence for --help and the docs */
} lf_cfg_def_t;

/* Entries every service shares: database, log level, config directory. Services
 * list them by concatenating LF_CFG_COMMON into their own table. */
#define LF_CFG_COMMON                                                                    \
    {"LEADFLOW_DATABASE_URL",                                                            \
     LF_CFG_STR,                                                                         \
     "postgresql://leadflow@127.0.0.1:55432/leadflow",                                   \
     0,                                                                                  \
     0,                                                                                  \
     "libpq connection URI of the system of record"},                                    \
        {"LEADFLOW_LOG_LEVEL", LF_CFG_STR, "info", 0, 0, "debug, info, warn or error"},  \
        {"LEADFLOW_CONFIG_DIR",                                                          \
         LF_CFG_STR,                                                                     \
         "config",                                                                       \
         0,                                                                              \
         0,                                                                              \
         "folder with scorecard.json, routing.json, pipeline.json, channels.json, "      \
         "sla.json"},                                                                    \
        {"LEADFLOW_HEALTH_FILE",                                                         \
         LF_CFG_STR,                                                                     \
         NULL,                                                                           \
         0,                                                                              \
         0,                                                                              \
         "file touched every loop while the service is healthy (for container "          \
         "checks)"},                                                                     \
    {                                                                                    \
        "LEADFLOW_STATEMENT_TIMEOUT_MS", LF_CFG_INT, "15000", 100, 3600000,              \
            "longest a statement of the program may run before PostgreSQL cancels it"    \
    }

typedef struct lf_config lf_config_t;

/* Reads every entry of defs (terminated by an entry with name NULL) from the
 * environment. Returns NULL and writes a one-line reason into err on a bad value.
 * Caller owns the result. */
lf_config_t *lf_config_load(const lf_cfg_def_t *defs, char *err, size_t errsz);
void lf_config_destroy(lf_config_t **self_p);
/* Borrowed: valid until the config is destroyed. NULL when unset without default. */
const char *lf_config_str(const lf_config_t *self, const char *name);
long lf_config_int(const lf_config_t *self, const char *name);
/* Prints the table (name, default, help) to stdout for --help. */
void lf_config_usage(const lf_cfg_def_t *defs);

#endif
