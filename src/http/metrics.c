#include "http/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const int64_t metrics_bounds_us[METRICS_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, INT64_MAX};

struct counts {
    _Atomic uint64_t by_class[5];
    _Atomic uint64_t in_bucket[METRICS_BUCKETS];   /* not cumulative: one add an answer */
    _Atomic uint64_t sum_us;
};

struct block {
    struct block *next;
    struct counts route[METRICS_ROUTES + 1];       /* [0]: no route */
};

static pthread_mutex_t blocks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct block *_Atomic blocks;
static __thread struct block *mine;

static void bump(_Atomic uint64_t *c, uint64_t by)
{
    /* M1: this thread alone writes c, so a load and a store do; no locked add */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by, memory_order_relaxed);
}

void metrics_answered(int route, int status, int64_t us)
{
    if (!mine) {
        struct block *b = calloc(1, sizeof *b);
        if (!b)
            return;   /* uncounted: never worth failing an answer for */
        pthread_mutex_lock(&blocks_mu);
        b->next = atomic_load(&blocks);
        atomic_store(&blocks, b);
        pthread_mutex_unlock(&blocks_mu);
        mine = b;
    }
    struct counts *c = &mine->route[route >= 0 && route < METRICS_ROUTES ? route + 1 : 0];
    int cls = status / 100 - 1;
    bump(&c->by_class[cls < 0 ? 0 : cls > 4 ? 4 : cls], 1);
    if (us < 0)
        us = 0;
    int b = 0;
    while (us > metrics_bounds_us[b])
        b++;
    bump(&c->in_bucket[b], 1);
    bump(&c->sum_us, (uint64_t)us);
}

void metrics_route_sum(int route, struct metrics_route *out)
{
    memset(out, 0, sizeof *out);
    int at = route >= 0 && route < METRICS_ROUTES ? route + 1 : 0;
    for (struct block *b = atomic_load(&blocks); b; b = b->next) {
        const struct counts *c = &b->route[at];
        for (int i = 0; i < 5; i++)
            out->by_class[i] += atomic_load_explicit(&c->by_class[i], memory_order_relaxed);
        for (int i = 0; i < METRICS_BUCKETS; i++)
            out->buckets[i] += atomic_load_explicit(&c->in_bucket[i], memory_order_relaxed);
        out->sum_us += atomic_load_explicit(&c->sum_us, memory_order_relaxed);
    }
    for (int i = 1; i < METRICS_BUCKETS; i++)
        out->buckets[i] += out->buckets[i - 1];
    out->count = out->buckets[METRICS_BUCKETS - 1];
}
