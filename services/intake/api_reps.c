/* api_reps.c - the HTTP API for reps and updates of the facts of a lead. */
#include "intake.h"

const lf_route_t lf_routes_reps[] = {
    {NULL, NULL, NULL, 0, 0},
};
