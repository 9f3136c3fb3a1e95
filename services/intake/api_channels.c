/* api_channels.c - the HTTP API for imports (CSV, NDJSON), phone-system calls and web
 * forms. */
#include "intake.h"

const lf_route_t lf_routes_channels[] = {
    {NULL, NULL, NULL, 0, 0},
};
