/* notify_api.h - notification destinations on reps, the notifications API and the
 * delivery metrics (api_notifications.c). */
#ifndef LF_INTAKE_NOTIFY_API_H
#define LF_INTAKE_NOTIFY_API_H

#include <jansson.h>

#include "intake.h"

extern const lf_route_t lf_routes_notifications[]; /* GET/POST /v1/notifications */

/* Checks and completes rep->notify before a rep is stored (POST: stored = NULL;
 * PATCH: the rep's current destinations as stored, secrets included): every
 * destination well-formed, a masked URL or secret sent back unchanged replaced by
 * the stored value, hosts allowed by LEADFLOW_NOTIFY_ALLOW_PRIVATE. Broken fields are
 * appended to errors (422). A list without errors has its new secrets sealed
 * (lf/secret.h). Returns 0; -1 when the caller may not make the change: webhook and
 * e-mail destinations are set by manager and admin keys only (403); -2 when a new
 * secret cannot be sealed (no usable LEADFLOW_SECRET_KEY: 503). */
int lf_notify_prepare(lf_intake_t *in, const lf_auth_t *auth, const char *rep_id,
                      json_t *rep, const json_t *stored, json_t *errors);

/* The answer to lf_notify_prepare's refusal rc (-1 or -2). */
enum MHD_Result lf_notify_refused(lf_intake_t *in, struct MHD_Connection *conn, int rc);

/* Appends the delivery counters (per destination type) to a /metrics text. Returns
 * the new text (caller owns; text is freed), or text unchanged when the database
 * cannot be read. */
char *lf_notify_metrics(lf_intake_t *in, char *text);

#endif
