/* metrics — what topupd counts of its answers for an operator's monitoring;
 * GET /metrics (api/metrics.c) shows it in Prometheus's text format beside
 * the engine's and the network's own counts.
 *
 *  M1. Counting writes nothing another thread writes: each thread counts
 *      into a block of its own (one writer, relaxed atomics), and a reader
 *      sums the blocks. A thread's block outlives it, so no count is lost.
 *  M2. Counts only grow and start at zero with the process, as Prometheus
 *      takes counters. A reader sees each count as it was at some moment
 *      while it read, not all of them at one moment.
 */
#pragma once
#include <stdint.h>

#define METRICS_ROUTES 48   /* routes counted apart: api_route_count must be below */
#define METRICS_BUCKETS 12  /* upper bounds of the latency histogram, the last +Inf */

/* The bounds, in microseconds (the last is INT64_MAX). */
extern const int64_t metrics_bounds_us[METRICS_BUCKETS];

/* An answer with status, us microseconds after its request's head came.
 * route: its index in the route table; -1 for one answered before it had a
 * route (404, 405, a refusal at the door). */
void metrics_answered(int route, int status, int64_t us);

struct metrics_route {
    uint64_t by_class[5];                 /* 1xx .. 5xx */
    uint64_t buckets[METRICS_BUCKETS];    /* cumulative, as Prometheus has them */
    uint64_t count, sum_us;
};
/* The sums over every thread for route (or -1). */
void metrics_route_sum(int route, struct metrics_route *out);
