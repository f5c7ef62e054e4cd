#include "http/peers.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>

struct slot {
    uint32_t addr;   /* 0: free */
    int n;
};

struct peers {
    pthread_mutex_t mu;
    size_t mask;     /* slots - 1; slots >= 2 * room, a power of two */
    uint32_t seed;   /* so that no client can choose addresses that collide */
    struct slot *s;
};

struct peers *peers_new(size_t room)
{
    size_t slots = 16;
    while (slots < 2 * room)
        slots *= 2;
    struct peers *p = calloc(1, sizeof *p);
    if (!p || !(p->s = calloc(slots, sizeof *p->s))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    p->mask = slots - 1;
    if (getrandom(&p->seed, sizeof p->seed, 0) != sizeof p->seed)
        p->seed = 0x2545f491u;
    return p;
}

void peers_free(struct peers *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p->s);
    free(p);
}

static size_t home(const struct peers *p, uint32_t addr)
{
    uint64_t h = (uint64_t)(addr ^ p->seed) * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & p->mask;
}

/* addr's slot, or the free slot where it would go. Caller holds mu. */
static size_t find(const struct peers *p, uint32_t addr)
{
    size_t i = home(p, addr);
    while (p->s[i].addr && p->s[i].addr != addr)
        i = (i + 1) & p->mask;
    return i;
}

int peers_take(struct peers *p, uint32_t addr, int limit)
{
    if (!addr)
        return 0;
    pthread_mutex_lock(&p->mu);
    struct slot *s = &p->s[find(p, addr)];
    int ok = !limit || s->n < limit;
    if (ok) {
        s->addr = addr;
        s->n++;
    }
    pthread_mutex_unlock(&p->mu);
    return ok ? 0 : -1;
}

/* Empties slot i, then moves back each later slot of its run whose home is
 * not between i and it, so that every address stays reachable from its
 * home without a marker for the slots emptied (linear probing). */
static void vacate(struct peers *p, size_t i)
{
    for (size_t j = (i + 1) & p->mask; p->s[j].addr; j = (j + 1) & p->mask) {
        size_t h = home(p, p->s[j].addr);
        if (((j - h) & p->mask) >= ((j - i) & p->mask)) {
            p->s[i] = p->s[j];
            i = j;
        }
    }
    p->s[i] = (struct slot){0};
}

void peers_give(struct peers *p, uint32_t addr)
{
    if (!addr)
        return;
    pthread_mutex_lock(&p->mu);
    size_t i = find(p, addr);
    if (p->s[i].addr && --p->s[i].n == 0)
        vacate(p, i);
    pthread_mutex_unlock(&p->mu);
}

int peers_count(struct peers *p, uint32_t addr)
{
    pthread_mutex_lock(&p->mu);
    int n = addr ? p->s[find(p, addr)].n : 0;
    pthread_mutex_unlock(&p->mu);
    return n;
}
