/* redis.h - hiredis with timeouts and reconnect-on-next-call. */
#ifndef LF_REDIS_H
#define LF_REDIS_H

#include <hiredis/hiredis.h>

typedef struct {
    redisContext *ctx; /* live context, or NULL while disconnected */
    int err;           /* 0, or 1 after the last call failed */
    char errstr[256];  /* the last error */
    char *host;        /* owned */
    int port;
} lf_redis_t;

/* Never returns NULL; check err. Connect and command timeouts are 2 seconds. */
lf_redis_t *lf_redis_connect(const char *host, int port);
void lf_redis_destroy(lf_redis_t **self_p);
int lf_redis_ensure(lf_redis_t *self);
/* Runs a command. Returns the reply (caller owns: freeReplyObject), or NULL with
 * err set on a connection error or a Redis error reply. */
redisReply *lf_redis_cmd(lf_redis_t *self, const char *fmt, ...);
redisReply *lf_redis_cmdargv(lf_redis_t *self, int argc, const char **argv,
                             const size_t *lens);

#endif
