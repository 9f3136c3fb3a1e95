/* api_pipeline.c - the HTTP API for stage moves, activities and the pipeline definition. */
#include "intake.h"

const lf_route_t lf_routes_pipeline[] = {
    {NULL, NULL, NULL, 0, 0},
};
