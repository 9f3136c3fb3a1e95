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

#endif
