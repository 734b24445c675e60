/* reqstats.h — private to api/: counts of API requests by route template,
 * method and status, with a duration histogram per route and method, for
 * /metrics. */
#ifndef VD_API_REQSTATS_H
#define VD_API_REQSTATS_H

#include <stdint.h>
#include <stdio.h>

/* A request to route (the router's template, e.g. "volumes/{volume}";
 * NULL when no route matched) with method was answered with status after
 * ns nanoseconds. Any thread. */
void api_reqstats_record(const char *route, const char *method, unsigned status,
                         uint64_t ns);
/* Write the families vdiskd_api_requests_total and
 * vdiskd_api_request_duration_seconds in the text exposition format. */
void api_reqstats_render(FILE *f);

#endif
