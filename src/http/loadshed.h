/* loadshed — refuses commands the machine has no CPU left for.
 *
 * The engine's queue bounds how long a command waits for the writer (engine.h
 * E6), but under a flood the CPUs run out first: every request must still be
 * read, parsed and answered, and what is admitted competes with that. Then
 * requests wait in socket buffers, unseen by any queue, and everyone is late.
 *
 * So, as BBR does for a network path: the limiter remembers the most commands
 * completed in one 100 ms window over the last ten seconds (the throughput
 * the machine has shown) and the shortest time one took over the last second
 * (the latency with nothing queued). Their product is the number of commands the machine can
 * have in flight without queueing. The limit applies only while demand is in
 * excess, that is while the machine's CPUs were busier than cpu_limit and
 * commands were refused (by the engine's bounds or by this limit), both
 * within the last second: then a command is refused when more than that are
 * in flight. Otherwise everything is admitted, so a busy machine that keeps up
 * (a closed-loop benchmark at its peak) is never throttled by it. The CPUs
 * count as busy for a second after a busy sample because a flood idles them
 * whenever the writer waits for the disk: a limit that lapsed then let
 * thousands of commands into that wait (bench/overload, traced: the engine's
 * p99 wait 81 ms, 11 ms with the limit held).
 *
 * Thread-safe. Time is passed in (monotonic ms); CPU busyness is fed by
 * loadshed_sample() from whoever reads it (server.c: a thread, every 100 ms).
 */
#pragma once
#include <stdint.h>

struct loadshed;

/* cpu_limit: fraction of all CPUs busy (0..1) above which the limit applies.
 * target_ms: the latency used instead of the shortest seen when that is
 * shorter: a group commit only reaches its throughput with commands in flight
 * to batch, which pure BBR would refuse. Measured at 3x a 19k/s peak over
 * 4,000 connections (net.c; the load generator on the same two cores),
 * admitted top-ups: 10 ms: 8.7-10.1k/s, p50 78-113 ms, p99 235-308 ms; 3 ms:
 * 6.3-8.2k/s, p50 3.8-5.3 ms, p99 81-125 ms; none: 6.8k/s, p50 0.8 ms, p99
 * 232 ms. (With libmicrohttpd: 692/s with none, 4.5k/s at 10 ms.) */
struct loadshed *loadshed_new(double cpu_limit, int64_t target_ms);
void loadshed_free(struct loadshed *ls);

/* 1: admitted (counted in flight until loadshed_done); 0: refuse it. */
int loadshed_admit(struct loadshed *ls, int64_t now_ms);
/* An admitted command finished after took_us microseconds. */
void loadshed_done(struct loadshed *ls, int64_t now_ms, int64_t took_us);
/* A command was refused (by anyone): demand exceeds what is served. */
void loadshed_refused(struct loadshed *ls, int64_t now_ms);
/* An admitted request ended without running as a command (refused before the
 * engine, say): no longer in flight, and its time says nothing. */
void loadshed_cancel(struct loadshed *ls);
/* The machine's CPUs were this busy (0..1) over the interval up to now_ms. */
void loadshed_sample(struct loadshed *ls, int64_t now_ms, double cpu_busy);

/* For tests and /healthz-style reports. */
struct loadshed_state {
    double cpu_busy;
    int64_t inflight, limit;   /* limit: -1 while it does not apply */
};
void loadshed_state(struct loadshed *ls, int64_t now_ms, struct loadshed_state *out);

/* Busy fraction of all CPUs between two readings of /proc/stat. The reader
 * keeps its previous reading in *prev (zeroed at first); returns -1 when
 * /proc/stat cannot be read or nothing elapsed. */
struct loadshed_cpu {
    uint64_t busy, total;
};
double loadshed_cpu_read(struct loadshed_cpu *prev);
