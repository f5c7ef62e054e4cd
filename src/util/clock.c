#include "util/clock.h"

#include <stdatomic.h>
#include <time.h>

void clock_init_system(struct clock *c)
{
    c->mode = CLOCK_SYSTEM;
    atomic_store(&c->value, 0);
}

void clock_init_fixed(struct clock *c, int64_t now)
{
    c->mode = CLOCK_FIXED;
    atomic_store(&c->value, now);
}

int64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_mono_ms(void) { return clock_mono_us() / 1000; }

struct timespec clock_after_us(int id, int64_t us)
{
    struct timespec at;
    clock_gettime((clockid_t)id, &at);
    at.tv_sec += (time_t)(us / 1000000);
    at.tv_nsec += (long)(us % 1000000) * 1000;
    if (at.tv_nsec >= 1000000000L)
        at.tv_sec++, at.tv_nsec -= 1000000000L;
    return at;
}

int64_t clock_now(struct clock *c)
{
    int64_t v = atomic_load(&c->value);
    return c->mode == CLOCK_FIXED ? v : (int64_t)time(NULL) + v;
}

void clock_advance(struct clock *c, int64_t seconds)
{
    /* Bounded so that now + offset stays far from overflow (and in four-digit years). */
    if (seconds > 0 && seconds <= CLOCK_ADVANCE_MAX && clock_now(c) <= CLOCK_ADVANCE_MAX)
        atomic_fetch_add(&c->value, seconds);
}

void clock_set(struct clock *c, int64_t now)
{
    int64_t cur = clock_now(c);
    if (now > cur)
        clock_advance(c, now - cur);
}
