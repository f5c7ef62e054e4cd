/* clock — the one source of "now" (Unix seconds, UTC).
 *
 * Every module takes its time from a struct clock passed in; nothing calls
 * time() itself. The system clock is the default. Tests inject a fixed clock
 * (unit tests) or enable the server's test clock (`serve --test-clock`), an
 * offset that end-to-end tests move forward instead of sleeping.
 * Thread-safe: readers and the one writer of the offset use atomics.
 */
#pragma once
#include <stdint.h>
#include <time.h>

enum clock_mode { CLOCK_SYSTEM, CLOCK_FIXED };

struct clock {
    enum clock_mode mode;
    _Atomic int64_t value;   /* offset added to system time, or the fixed time */
};

void clock_init_system(struct clock *c);
void clock_init_fixed(struct clock *c, int64_t now);
int64_t clock_now(struct clock *c);
#define CLOCK_ADVANCE_MAX INT64_C(100000000000)   /* seconds: ~3,000 years; larger steps are ignored */
void clock_advance(struct clock *c, int64_t seconds);   /* never moves time back */
void clock_set(struct clock *c, int64_t now);           /* moves forward only; earlier is ignored */
/* Monotonic milliseconds and microseconds, for measuring waits (never the
 * domain's "now"). */
int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
/* Now on clock `id` (CLOCK_MONOTONIC, CLOCK_REALTIME) plus us microseconds:
 * a deadline for pthread_cond_timedwait on a condition of that clock. */
struct timespec clock_after_us(int id, int64_t us);
