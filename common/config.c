/* config.c - environment configuration tables.
 *
 * Values are copied at load time so that later setenv() calls (tests do that)
 * cannot change a running service's view of its configuration. */
#include "lf/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lf/util.h"

struct lf_config {
    const lf_cfg_def_t *defs; /* borrowed: the service's static table */
    size_t count;             /* entries in defs */
    char **strs;              /* copied string values (NULL when unset) */
    long *ints;               /* parsed integer values */
};

lf_config_t *lf_config_load(const lf_cfg_def_t *defs, char *err, size_t errsz) {
    lf_config_t *self = lf_calloc(1, sizeof *self);
    self->defs = defs;
    while (defs[self->count].name)
        self->count++;
    self->strs = lf_calloc(self->count, sizeof(char *));
    self->ints = lf_calloc(self->count, sizeof(long));
    for (size_t i = 0; i < self->count; i++) {
        const lf_cfg_def_t *d = &defs[i];
        const char *v = getenv(d->name);
        if (v && !*v)
            v = NULL;
        if (!v)
            v = d->def;
        if (d->type == LF_CFG_STR) {
            self->strs[i] = v ? lf_strdup(v) : NULL;
            continue;
        }
        if (!v) {
            snprintf(err, errsz, "%s must be set (an integer from %ld to %ld)", d->name,
                     d->min, d->max);
            goto fail;
        }
        char *end = NULL;
        errno = 0;
        long n = strtol(v, &end, 10);
        /* strtol skips leading blanks; a value that starts with one is a typo. */
        if (errno || end == v || *end || n < d->min || n > d->max ||
            !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))) {
            snprintf(err, errsz, "%s=\"%s\" is not an integer from %ld to %ld", d->name,
                     v, d->min, d->max);
            goto fail;
        }
        self->ints[i] = n;
        self->strs[i] = lf_strdup(v);
    }
    return self;
fail:
    lf_config_destroy(&self);
    return NULL;
}

void lf_config_destroy(lf_config_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_config_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++)
        free(self->strs[i]);
    free(self->strs);
    free(self->ints);
    free(self);
    *self_p = NULL;
}

static ssize_t s_find(const lf_config_t *self, const char *name) {
    for (size_t i = 0; i < self->count; i++)
        if (strcmp(self->defs[i].name, name) == 0)
            return (ssize_t)i;
    fprintf(stderr, "FATAL config key %s is not in the service's table\n", name);
    abort();
}

const char *lf_config_str(const lf_config_t *self, const char *name) {
    return self->strs[s_find(self, name)];
}

long lf_config_int(const lf_config_t *self, const char *name) {
    return self->ints[s_find(self, name)];
}

void lf_config_usage(const lf_cfg_def_t *defs) {
    printf("Configuration (environment variables):\n");
    for (const lf_cfg_def_t *d = defs; d->name; d++)
        printf("  %-32s default %-10s %s\n", d->name, d->def ? d->def : "(unset)",
               d->help);
}
