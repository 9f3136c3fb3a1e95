/* deliver.h - notification delivery: worker threads that lease, send and record
 * notify_deliveries rows, apart from timer firing. */
#ifndef LF_SCHEDULER_DELIVER_H
#define LF_SCHEDULER_DELIVER_H

#include <jansson.h>

#include "lf/db.h"
#include "lf/teams.h"
#include "lf/secret.h"
#include "smtp.h"

typedef struct lf_deliver lf_deliver_t;

typedef struct {
    const char *db_url;        /* borrowed: each worker has its own connection */
    int workers;               /* threads (0: no delivery from this scheduler) */
    long timeout_ms;           /* one HTTP request, connect included */
    int merge_max;             /* rows merged into one message */
    int max_lines;             /* items a merged chat message lists */
    long max_age_s;            /* a row not delivered by then is dead */
    long backoff_ms;           /* first retry delay; doubles per attempt */
    long backoff_max_ms;       /* cap of the delay (before jitter) */
    int pause_after_s;         /* failing this long (3+ messages) pauses a destination */
    long pause_s;              /* how long a pause lasts */
    int robot_per_minute;      /* messages a robot (WeCom, DingTalk, Feishu) may take */
    int poll_ms;               /* idle wait between leases */
    int net_policy;            /* LF_NET_* for the addresses connected to */
    const char *link;          /* borrowed: LEADFLOW_LINK_TEMPLATE or NULL */
    const json_t *templates;   /* borrowed: config/notify.json "templates" or NULL */
    lf_smtp_t smtp;            /* e-mail settings (strings borrowed) */
    const json_t *routing;     /* borrowed: config/routing.json (team destinations) */
    const lf_teams_t *teams;   /* borrowed: the teams' business calendars (quiet hours) */
    const char *global_url;    /* borrowed: LEADFLOW_WEBHOOK_URL or NULL */
    const char *global_secret; /* borrowed: LEADFLOW_WEBHOOK_SECRET or NULL */
    const lf_secret_key_t *secret_key; /* borrowed: LEADFLOW_SECRET_KEY or NULL */
} lf_deliver_cfg_t;

/* Starts cfg->workers threads. Returns the deliverer (caller owns; also when
 * workers is 0), or NULL when a thread could not start. cfg is copied; what it
 * borrows must outlive the deliverer. */
lf_deliver_t *lf_deliver_start(const lf_deliver_cfg_t *cfg);
/* Asks the workers to stop (a request in flight is aborted), joins them, frees. */
void lf_deliver_stop(lf_deliver_t **self_p);

/* Copies team destinations (routing.json teams.<id>.notify and .manager), the global
 * webhook (url, secret; url NULL for none) and each team's working time for the next
 * two weeks (teams' business calendars; teams NULL: never quiet) into notify_teams,
 * their secrets sealed with key (lf/secret.h; key NULL: as they are).
 * The first delivery thread does it again every hour, as the weeks move on. Returns 0,
 * or -1 with the reason in why (a bad destination in the config, or a database error:
 * "not saved"). */
int lf_deliver_sync_teams(lf_db_t *db, const json_t *routing, const lf_teams_t *teams,
                          const char *global_url, const char *global_secret,
                          const lf_secret_key_t *key, char *why, size_t whysz);

#endif
