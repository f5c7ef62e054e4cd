#include "http/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MAX 48
#define PROBES 8

struct bucket {
    char key[KEY_MAX];
    double tokens;
    int64_t last_ms;
};

struct ratelimit {
    pthread_mutex_t mu;
    double rate, burst;
    size_t cap;
    struct bucket *b;
};

struct ratelimit *ratelimit_new(double rate, double burst, size_t capacity)
{
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl || !(rl->b = calloc(capacity, sizeof *rl->b)))
        abort();
    pthread_mutex_init(&rl->mu, NULL);
    rl->rate = rate;
    rl->burst = burst;
    rl->cap = capacity;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->b);
    free(rl);
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Finds or claims the bucket of key, refilled to now. Caller holds mu. */
static struct bucket *find(struct ratelimit *rl, const char *key, int64_t now)
{
    size_t h = hash(key) % rl->cap, victim = h;
    for (size_t i = 0; i < PROBES; i++) {
        struct bucket *b = &rl->b[(h + i) % rl->cap];
        if (!strncmp(b->key, key, KEY_MAX - 1)) {
            b->tokens = fmin(rl->burst, b->tokens + (double)(now - b->last_ms) * rl->rate / 1000.0);
            b->last_ms = now;
            return b;
        }
        if (!b->key[0] || b->last_ms < rl->b[victim].last_ms)
            victim = (h + i) % rl->cap;
        if (!b->key[0])
            break;
    }
    struct bucket *b = &rl->b[victim];
    strncpy(b->key, key, KEY_MAX - 1);
    b->key[KEY_MAX - 1] = 0;
    b->tokens = rl->burst;
    b->last_ms = now;
    return b;
}

static int wait_secs(struct ratelimit *rl, double tokens)
{
    double s = (1.0 - tokens) / rl->rate;
    return s < 1 ? 1 : (int)ceil(s);
}

void ratelimit_give(struct ratelimit *rl, const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = find(rl, key, now_ms);
    b->tokens = fmin(rl->burst, b->tokens + 1);
    pthread_mutex_unlock(&rl->mu);
}

int ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms, int *retry_after)
{
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = find(rl, key, now_ms);
    int rc = 0;
    if (b->tokens >= 1) {
        b->tokens -= 1;
    } else {
        rc = -1;
        *retry_after = wait_secs(rl, b->tokens);
    }
    pthread_mutex_unlock(&rl->mu);
    return rc;
}

