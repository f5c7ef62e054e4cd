/* loadshed — see loadshed.h. */
#include "http/loadshed.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define WINDOW_MS 100
#define WINDOWS 100      /* remembered: ten seconds, for the best throughput */
#define RTT_WINDOWS 10   /* one second, for the shortest latency */
#define SLOW_MIN 20      /* a window is judged on at least this many commands */
#define GAIN_CUT 0.7     /* more than 1% of a window's commands slow: the limit x this */
#define GAIN_STEP 0.05   /* otherwise it grows back by this share of the product, per window */
#define GAIN_MIN 0.02
#define FLOOD_EXIT 0.5   /* a flood lasts until fewer than this share of flood_ms' worth wait */

struct window {
    int64_t start;      /* ms; -1: unused */
    int64_t done;       /* commands completed in it */
    int64_t slow;       /* ... of which slower than p99_us */
    int64_t min_us;     /* the fastest of them */
};

struct loadshed {
    pthread_mutex_t mu;
    double cpu_limit, cpu_busy;
    int64_t target_us;
    int64_t p99_us;       /* 0: the product is the limit, whatever the latency */
    int64_t flood_ms, flood_min;
    double gain;          /* the share of the product admitted, GAIN_MIN..1 */
    int64_t inflight;
    int64_t refused_at;   /* ms; 0: never */
    int64_t busy_at;      /* ms of the last sample busier than cpu_limit; 0: never */
    int64_t product_at;   /* the window the product below was taken in; -1: none */
    double product;       /* commands carried without queueing (gain aside); -1: unknown */
    int64_t max_done;     /* the most completed in one window, of those the product was taken over */
    int known;            /* ... and how many of them completed any */
    struct window w[WINDOWS];
};

struct loadshed *loadshed_new(double cpu_limit, int64_t target_ms, int64_t p99_ms, int64_t flood_ms, int64_t flood_min)
{
    struct loadshed *ls = calloc(1, sizeof *ls);
    if (!ls)
        return NULL;
    pthread_mutex_init(&ls->mu, NULL);
    ls->cpu_limit = cpu_limit;
    ls->target_us = target_ms * 1000;
    ls->p99_us = p99_ms * 1000;
    ls->flood_ms = flood_ms;
    ls->flood_min = flood_min;
    ls->gain = 1;
    ls->product_at = -1;
    for (int i = 0; i < WINDOWS; i++)
        ls->w[i].start = -1;
    return ls;
}

void loadshed_free(struct loadshed *ls)
{
    if (!ls)
        return;
    pthread_mutex_destroy(&ls->mu);
    free(ls);
}

/* Whether the limit applies: commands refused and the CPUs busier than
 * cpu_limit, both within the last second (loadshed.h). */
static int applies(const struct loadshed *ls, int64_t now_ms)
{
    return ls->refused_at && now_ms - ls->refused_at < RTT_WINDOWS * WINDOW_MS && ls->busy_at &&
           now_ms - ls->busy_at < RTT_WINDOWS * WINDOW_MS;
}

/* The window just ended, at now_ms, moves the gain while the limit applies:
 * cut when more than 1% of its commands took longer than p99_us, or the CPUs
 * are still busier than cpu_limit; grown back a step otherwise. While the
 * limit does not apply the gain is whole again: busy CPUs that keep up with
 * their demand (a closed loop at its peak) say nothing about an overload to
 * come, and would otherwise have the first refusal of one apply GAIN_MIN of
 * the product at once. */
static void judge(struct loadshed *ls, const struct window *w, int64_t now_ms)
{
    if (!applies(ls, now_ms)) {
        ls->gain = 1;
        return;
    }
    if (!ls->p99_us || w->done < SLOW_MIN)
        return;
    if (w->slow * 100 > w->done || ls->cpu_busy > ls->cpu_limit)
        ls->gain = ls->gain * GAIN_CUT < GAIN_MIN ? GAIN_MIN : ls->gain * GAIN_CUT;
    else
        ls->gain = ls->gain + GAIN_STEP > 1 ? 1 : ls->gain + GAIN_STEP;
}

/* The window now_ms falls in, started afresh if it held an older one (the
 * one before it, if it is the last, is judged then). */
static struct window *current(struct loadshed *ls, int64_t now_ms)
{
    int64_t start = now_ms - now_ms % WINDOW_MS;
    struct window *w = &ls->w[(start / WINDOW_MS) % WINDOWS];
    if (w->start != start) {
        const struct window *prev = &ls->w[(start / WINDOW_MS + WINDOWS - 1) % WINDOWS];
        if (prev->start == start - WINDOW_MS)
            judge(ls, prev, now_ms);
        *w = (struct window){.start = start, .done = 0, .slow = 0, .min_us = INT64_MAX};
    }
    return w;
}

/* maxPass (over ten seconds: a throughput, once shown, is not forgotten
 * because the limit itself held it down) x minRT (over the last second, but
 * at least the target: a group commit needs commands in flight to batch), of
 * the full windows; -1 when nothing is known. Taken once per window: the
 * full windows change only when a new one starts. */
static double product(struct loadshed *ls, int64_t now_ms)
{
    int64_t cur = now_ms - now_ms % WINDOW_MS, max_done = 0, min_us = INT64_MAX;
    int known = 0;
    if (ls->product_at == cur)
        return ls->product;
    for (int i = 0; i < WINDOWS; i++) {
        const struct window *w = &ls->w[i];
        if (w->start < 0 || w->start >= cur || w->start < cur - WINDOWS * WINDOW_MS || !w->done)
            continue;
        known++;
        if (w->done > max_done)
            max_done = w->done;
        if (w->start >= cur - RTT_WINDOWS * WINDOW_MS && w->min_us < min_us)
            min_us = w->min_us;
    }
    ls->product_at = cur;
    ls->max_done = max_done;
    ls->known = known;
    ls->product = -1;
    if (max_done && min_us != INT64_MAX) {
        if (min_us < ls->target_us)
            min_us = ls->target_us;
        ls->product = (double)max_done * (double)min_us / (WINDOW_MS * 1000.0);   /* per us x us */
    }
    return ls->product;
}

/* The product x the gain, rounded up, never below one; -1 when nothing is known. */
static int64_t limit(struct loadshed *ls, int64_t now_ms)
{
    double p = product(ls, now_ms);
    if (p < 0)
        return -1;
    int64_t n = (int64_t)(p * ls->gain + 0.999999);
    return n < 1 ? 1 : n;
}

int loadshed_admit(struct loadshed *ls, int64_t now_ms)
{
    pthread_mutex_lock(&ls->mu);
    int ok = 1;
    if (applies(ls, now_ms)) {
        int64_t n = limit(ls, now_ms);
        ok = n < 0 || ls->inflight < n;
    }
    if (ok)
        ls->inflight++;
    else
        ls->refused_at = now_ms;
    pthread_mutex_unlock(&ls->mu);
    return ok;
}

int loadshed_full(struct loadshed *ls, int64_t now_ms)
{
    pthread_mutex_lock(&ls->mu);
    double p = product(ls, now_ms);
    int full = 0;
    if (p >= 0)   /* while the limit applies, a command read past it would only be refused */
        full = applies(ls, now_ms) ? ls->inflight >= limit(ls, now_ms) : (double)ls->inflight >= (p < 1 ? 1 : p);
    pthread_mutex_unlock(&ls->mu);
    return full;
}

int loadshed_flood(struct loadshed *ls, int64_t now_ms, int64_t waiting, int was)
{
    pthread_mutex_lock(&ls->mu);
    product(ls, now_ms);
    double worth = (double)ls->max_done * (double)ls->flood_ms / WINDOW_MS;
    if (worth < (double)ls->flood_min)
        worth = (double)ls->flood_min;
    /* a throughput shown over less than a second may be the demand's, not the machine's */
    int flood = ls->known >= RTT_WINDOWS && (double)(ls->inflight + waiting) > (was ? FLOOD_EXIT * worth : worth);
    pthread_mutex_unlock(&ls->mu);
    return flood;
}

void loadshed_refused(struct loadshed *ls, int64_t now_ms)
{
    pthread_mutex_lock(&ls->mu);
    ls->refused_at = now_ms;
    pthread_mutex_unlock(&ls->mu);
}

void loadshed_done(struct loadshed *ls, int64_t now_ms, int64_t took_us)
{
    pthread_mutex_lock(&ls->mu);
    if (ls->inflight > 0)
        ls->inflight--;
    struct window *w = current(ls, now_ms);
    w->done++;
    if (ls->p99_us && took_us > ls->p99_us)
        w->slow++;
    if (took_us < w->min_us)
        w->min_us = took_us < 1 ? 1 : took_us;
    pthread_mutex_unlock(&ls->mu);
}

void loadshed_cancel(struct loadshed *ls)
{
    pthread_mutex_lock(&ls->mu);
    if (ls->inflight > 0)
        ls->inflight--;
    pthread_mutex_unlock(&ls->mu);
}

void loadshed_sample(struct loadshed *ls, int64_t now_ms, double cpu_busy)
{
    pthread_mutex_lock(&ls->mu);
    ls->cpu_busy = cpu_busy;
    if (cpu_busy > ls->cpu_limit)
        ls->busy_at = now_ms ? now_ms : 1;
    pthread_mutex_unlock(&ls->mu);
}

void loadshed_state(struct loadshed *ls, int64_t now_ms, struct loadshed_state *out)
{
    pthread_mutex_lock(&ls->mu);
    out->cpu_busy = ls->cpu_busy;
    out->inflight = ls->inflight;
    out->gain = ls->gain;
    out->limit = applies(ls, now_ms) ? limit(ls, now_ms) : -1;
    pthread_mutex_unlock(&ls->mu);
}

double loadshed_cpu_read(struct loadshed_cpu *prev)
{
    if (prev->fd < 0 && (prev->fd = open("/proc/stat", O_RDONLY | O_CLOEXEC)) < 0)
        return LOADSHED_CPU_UNREADABLE;
    char line[512];   /* the first line, "cpu  ..." with the machine's totals */
    ssize_t got = pread(prev->fd, line, sizeof line - 1, 0);   /* procfs makes it afresh at offset 0 */
    if (got < 0)
        return LOADSHED_CPU_UNREADABLE;
    line[got] = 0;
    unsigned long long v[8] = {0};
    int n = sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    if (n < 4) {
        errno = EINVAL;   /* not the format it has */
        return LOADSHED_CPU_UNREADABLE;
    }
    /* user nice system idle iowait irq softirq steal: idle and iowait are not busy */
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total += v[i];
    uint64_t busy = total - v[3] - v[4];
    struct loadshed_cpu was = *prev;
    prev->busy = busy;
    prev->total = total;
    if (!was.total || total <= was.total)
        return LOADSHED_CPU_NONE;
    return (double)(busy - was.busy) / (double)(total - was.total);
}

void loadshed_cpu_close(struct loadshed_cpu *prev)
{
    if (prev->fd >= 0)
        close(prev->fd);
    prev->fd = -1;
}
