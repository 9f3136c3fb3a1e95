/* redis.c - hiredis helpers. Redis only holds the timer index in leadflow, so a
 * lost connection is simply re-made on the next call; nothing is lost with it. */
#include "lf/redis.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "lf/util.h"

static int s_connect(lf_redis_t *self) {
    struct timeval tv = {2, 0};
    self->ctx = redisConnectWithTimeout(self->host, self->port, tv);
    if (!self->ctx || self->ctx->err) {
        self->err = 1;
        snprintf(self->errstr, sizeof self->errstr, "connect %s:%d: %s", self->host,
                 self->port, self->ctx ? self->ctx->errstr : "out of memory");
        if (self->ctx)
            redisFree(self->ctx);
        self->ctx = NULL;
        return -1;
    }
    redisSetTimeout(self->ctx, tv);
    self->err = 0;
    self->errstr[0] = '\0';
    return 0;
}

lf_redis_t *lf_redis_connect(const char *host, int port) {
    lf_redis_t *self = lf_calloc(1, sizeof *self);
    self->host = lf_strdup(host);
    self->port = port;
    s_connect(self);
    return self;
}

void lf_redis_destroy(lf_redis_t **self_p) {
    if (!self_p || !*self_p)
        return;
    lf_redis_t *self = *self_p;
    if (self->ctx)
        redisFree(self->ctx);
    free(self->host);
    free(self);
    *self_p = NULL;
}

int lf_redis_ensure(lf_redis_t *self) {
    if (self->ctx && !self->ctx->err)
        return 0;
    if (self->ctx) {
        redisFree(self->ctx);
        self->ctx = NULL;
    }
    return s_connect(self);
}

static redisReply *s_check(lf_redis_t *self, redisReply *r) {
    if (!r) {
        self->err = 1;
        snprintf(self->errstr, sizeof self->errstr, "redis: %s",
                 self->ctx ? self->ctx->errstr : "not connected");
        redisFree(self->ctx);
        self->ctx = NULL;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        self->err = 1;
        snprintf(self->errstr, sizeof self->errstr, "redis: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    self->err = 0;
    return r;
}

redisReply *lf_redis_cmd(lf_redis_t *self, const char *fmt, ...) {
    if (lf_redis_ensure(self) < 0)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(self->ctx, fmt, ap);
    va_end(ap);
    return s_check(self, r);
}

redisReply *lf_redis_cmdargv(lf_redis_t *self, int argc, const char **argv,
                             const size_t *lens) {
    if (lf_redis_ensure(self) < 0)
        return NULL;
    return s_check(self, redisCommandArgv(self->ctx, argc, argv, lens));
}
