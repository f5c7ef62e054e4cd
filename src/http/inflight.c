#include "http/inflight.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct node {
    struct node *next;
    char key[];
};

static struct node *table[BUCKETS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static size_t bucket(const char *s)
{
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h % BUCKETS;
}

int inflight_claim(const char *key)
{
    size_t b = bucket(key), n = strlen(key);
    pthread_mutex_lock(&mu);
    for (struct node *x = table[b]; x; x = x->next)
        if (!strcmp(x->key, key)) {
            pthread_mutex_unlock(&mu);
            return -1;
        }
    struct node *x = malloc(sizeof *x + n + 1);
    if (!x)
        abort();
    memcpy(x->key, key, n + 1);
    x->next = table[b];
    table[b] = x;
    pthread_mutex_unlock(&mu);
    return 0;
}

void inflight_release(const char *key)
{
    size_t b = bucket(key);
    pthread_mutex_lock(&mu);
    for (struct node **p = &table[b]; *p; p = &(*p)->next)
        if (!strcmp((*p)->key, key)) {
            struct node *x = *p;
            *p = x->next;
            free(x);
            break;
        }
    pthread_mutex_unlock(&mu);
}
