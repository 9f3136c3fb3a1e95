/* replay.h - what-if runs of stored leads against a draft rule set. */
#ifndef LF_ROUTER_REPLAY_H
#define LF_ROUTER_REPLAY_H

#include <stdio.h>

typedef struct {
    const char *db_url;     /* borrowed */
    const char *config_dir; /* borrowed: where the current scorecard/routing live */
    const char *since;      /* "30d", "12h", "45m", "2w" */
    const char *draft;      /* borrowed path: a scorecard, a routing file, or
                               {"scorecard": {...}, "routing": {...}}; NULL = current */
    int json;               /* 1: print one JSON object instead of the text report */
} lf_replay_opts_t;

/* Replays the leads created in the window, in creation order, against the draft
 * rules inside a READ ONLY transaction: nothing in the database changes. Reps start
 * with no open leads; a replayed lead keeps a rep's capacity busy unless the real
 * lead is closed (won/lost) by now. Prints per-rep load, the grade mix (current and
 * draft) and how many leads would have found no eligible rep. Returns 0, or -1 with
 * the reason on stderr (bad window, bad draft, database error). */
int lf_replay_run(const lf_replay_opts_t *opts, FILE *out);

#endif
