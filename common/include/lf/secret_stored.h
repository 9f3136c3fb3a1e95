/* lf/secret_stored.h - the notification secrets stored in PostgreSQL, as a whole: the
 * "secret" of each destination in reps.notify and notify_teams.notify, and
 * notify_dests.secret (lf/secret.h). */
#ifndef LF_SECRET_STORED_H
#define LF_SECRET_STORED_H

#include <jansson.h>
#include <stddef.h>

#include "lf/db.h"
#include "lf/secret.h"

/* Seals in place every plain "secret" of a list of destinations. Returns how many, or
 * -1 when one could not be sealed (OpenSSL failed; nothing is sealed then). */
long lf_secret_seal_list(const lf_secret_key_t *key, json_t *list);

/* Seals every secret stored in plain text (written before encryption, or while no key
 * was set), each row in its own short update that leaves a row changed meanwhile alone.
 * Returns how many were sealed, or -1 (db->errstr says why). */
long lf_secret_seal_stored(lf_db_t *db, const lf_secret_key_t *key);

/* How many secrets are stored in plain text, or -1. */
long lf_secret_count_plain(lf_db_t *db);

/* Does key open the secrets stored sealed? Tries one of them. Returns 0 when it does
 * (or none is stored), 1 when it does not, with the reason in err (no key, another
 * key), or -1 when PostgreSQL could not be asked. */
int lf_secret_check_stored(lf_db_t *db, const lf_secret_key_t *key, char *err,
                           size_t errsz);

/* What a rotation did: secrets re-sealed from the old key to the new one, plain ones
 * sealed with the new key, sealed ones that the new key opens already (a second run). */
typedef struct {
    long resealed, sealed_plain, already;
} lf_secret_rotation_t;

/* Puts every stored secret under new_key, in one transaction: each sealed one that
 * old_key opens is sealed again with new_key, each plain one sealed with new_key, each
 * one new_key opens already left as it is (so a second run with the same pair changes
 * nothing). Under the routing lock, the rows are locked (FOR NO KEY UPDATE) until
 * the commit. Returns 0 with
 * the counts in *out; 1 when a stored secret opens with neither key, with the row in
 * err (never a secret), and nothing changed; -1 when PostgreSQL failed (db->errstr),
 * nothing changed. */
int lf_secret_rotate_stored(lf_db_t *db, const lf_secret_key_t *old_key,
                            const lf_secret_key_t *new_key, lf_secret_rotation_t *out,
                            char *err, size_t errsz);

#endif
