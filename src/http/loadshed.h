/* loadshed — refuses commands the machine has no CPU left for.
 *
 * The engine's queue bounds how long a command waits for the writer (engine.h
 * E6), but under a flood the CPUs run out first: every request must still be
 * read, parsed and answered, and what is admitted competes with that. Then
 * requests wait in socket buffers, unseen by any queue, and everyone is late.
 * In a flood proper, net.c's ready stack (net.h) reads the newest requests
 * first and leaves the oldest unread; it asks loadshed_flood whether this is
 * one and loadshed_full whether to read more. The limit below is what else
 * holds: commands refused by the engine's bounds while the CPUs are busy.
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
 * to batch, which pure BBR would refuse.
 * p99_ms: what admitted commands may take (from admission to their answer)
 * for 99 in 100 of them; 0: no aim, and the product is the limit.
 * Throughput x latency is what the machine carries with nothing else to do,
 * but refusing a flood takes CPU too (and the load generator, on a test
 * machine), and then admitted requests wait for a CPU before and after their
 * command, where no queue of ours sees them. So the limit is the product x a
 * gain: while the limit applies, a 100 ms window with more than 1% of its
 * commands over p99_ms, or with the CPUs still busier than cpu_limit, cuts
 * the gain by 30%; any other window grows it back by 5% of the product, up
 * to all of it. While the limit does not apply, the gain is whole.
 * Measured by bench/overload (3x a 17-20k/s peak over 4,000 connections, the
 * load generator on the same two cores; admitted top-ups, p99 from their
 * scheduled time): with no gain, target 3 ms: 8.5-10.2k/s, p99 18-109 ms;
 * 1 ms: 5.3-7.3k/s, 25-92 ms; 0: 2.9-3.4k/s, 9-19 ms. Latency alone (p99_ms
 * 10): 6.3-8.5k/s, 34-94 ms: the wait is mostly outside the command. With
 * the CPUs too: 2.6-2.7k/s, p99 8.2-9.2 ms (the peak's: 13-16 ms); at
 * cpu_limit 95-97%: 3.9-4.1k/s, 15-37 ms. */
struct loadshed *loadshed_new(double cpu_limit, int64_t target_ms, int64_t p99_ms, int64_t flood_ms, int64_t flood_min);
void loadshed_free(struct loadshed *ls);

/* 1: admitted (counted in flight until loadshed_done); 0: refuse it. */
int loadshed_admit(struct loadshed *ls, int64_t now_ms);
/* An admitted command finished after took_us microseconds. */
void loadshed_done(struct loadshed *ls, int64_t now_ms, int64_t took_us);
/* 1 when the commands in flight and `waiting` requests not read yet are
 * more than the machine completes in flood_ms at its best (the throughput
 * above, once shown in at least ten windows: over less, it may be the
 * demand's), and more than flood_min (a light load's best is its demand's,
 * not the machine's: eight commands behind a long import were "50 ms' worth";
 * below flood_min the engine's queue bounds, E6, are what sheds): a flood,
 * which net.c meets with its ready stack (net.h). was: it was one at the
 * last asking; it then lasts until they are fewer than half that, so that
 * it does not flap. A client pool that merely keeps the
 * machine busy (a benchmark's closed loop of 1,024 connections at 45k/s:
 * 23 ms' worth) is not one. */
int loadshed_flood(struct loadshed *ls, int64_t now_ms, int64_t waiting, int was);
/* 1 while as many commands are in flight as the machine carries without
 * queueing (the product above; never below one), excess demand or not, or,
 * while the limit applies, as many as it admits (a command read then would
 * only be refused). In a flood, and for a connection just refused (net.h,
 * net_hold), net.c reads no more requests then. */
int loadshed_full(struct loadshed *ls, int64_t now_ms);
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
    double gain;
};
void loadshed_state(struct loadshed *ls, int64_t now_ms, struct loadshed_state *out);

/* Busy fraction of all CPUs between two readings of /proc/stat. The reader
 * keeps its previous reading in *prev (LOADSHED_CPU_INIT at first) and the file open
 * from its first reading on, so that a process out of descriptors (every
 * connection taken) still reads it; loadshed_cpu_close closes it. Returns
 * LOADSHED_CPU_NONE when nothing elapsed (or at the first reading), and
 * LOADSHED_CPU_UNREADABLE, errno set, when /proc/stat cannot be read. */
struct loadshed_cpu {
    uint64_t busy, total;
    int fd;       /* /proc/stat's, once opened; LOADSHED_CPU_INIT sets -1 */
};
#define LOADSHED_CPU_INIT {.fd = -1}
#define LOADSHED_CPU_NONE (-1.0)
#define LOADSHED_CPU_UNREADABLE (-2.0)
double loadshed_cpu_read(struct loadshed_cpu *prev);
void loadshed_cpu_close(struct loadshed_cpu *prev);
