/* lf/secret.h - notification secrets encrypted at rest.
 *
 * The secrets that sign messages to chat robots and webhooks (a destination's "secret"
 * in reps.notify, notify_teams.notify and notify_dests.secret) are stored sealed with
 * AES-256-GCM under the key of LEADFLOW_SECRET_KEY (OpenSSL's EVP interface): the text
 * "enc:v1:" followed by the base64 of a random 12-byte nonce, the ciphertext and the
 * 16-byte tag. A stored value without that prefix is a secret written before
 * encryption: it is used as it is, and leadflow-migrate seals it (lf/secret_stored.h). */
#ifndef LF_SECRET_H
#define LF_SECRET_H

#include <stddef.h>

#define LF_SECRET_PREFIX "enc:v1:"

/* The setting, for the configuration tables (lf/config.h) of the programs that seal or
 * open secrets: intake, the scheduler and leadflow-migrate. */
#define LF_CFG_SECRET_KEY                                                                \
    {                                                                                    \
        "LEADFLOW_SECRET_KEY", LF_CFG_STR, NULL, 0, 0,                                   \
            "32 random bytes as 64 hex digits (openssl rand -hex 32): encrypts the "     \
            "notification secrets stored in PostgreSQL; the same in intake, scheduler "  \
            "and "                                                                       \
            "leadflow-migrate"                                                           \
    }

typedef struct lf_secret_key lf_secret_key_t;

/* Reads LEADFLOW_SECRET_KEY's value: 32 bytes written as 64 hex digits or 44 base64
 * characters. *out is NULL when text is NULL or empty (no key). Returns 0, or -1 with a
 * one-line reason in err (which never repeats the value). Caller owns *out. */
int lf_secret_key_parse(const char *text, lf_secret_key_t **out, char *err, size_t errsz);
void lf_secret_key_destroy(lf_secret_key_t **self_p);

/* Is a stored value sealed (begins with LF_SECRET_PREFIX)? */
int lf_secret_is_sealed(const char *stored);

/* The sealed form of plain (a new nonce each call). Caller frees. NULL only when
 * OpenSSL fails. */
char *lf_secret_seal(const lf_secret_key_t *key, const char *plain);

/* The secret behind a stored value: sealed values are opened with key, others copied.
 * Returns 0 with *plain set (caller frees), or -1 with a one-line reason in err: no
 * key, a key that does not open it (another key sealed it), or a damaged value. */
int lf_secret_open(const lf_secret_key_t *key, const char *stored, char **plain,
                   char *err, size_t errsz);

#endif
