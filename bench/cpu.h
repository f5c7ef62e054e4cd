/* cpu — who used the machine's CPUs during a measured window.
 *
 * The bench shares its two cores with whatever else runs on the machine; a
 * figure taken while something else was busy is lower than the program can
 * do. Each bench program snapshots the whole machine (/proc/stat), itself
 * (getrusage) and optionally a watched process (/proc/PID/stat) at the start
 * and the end of its window and reports, in cores (1.0 = one core busy all
 * the time): its own use, the watched process's, everybody else's, and idle.
 * The watched process's threads are summed by name as well (topupd names
 * its own: topupd-writer, -http, -ckpt, -sync...), so that a figure can say
 * which thread's CPU per operation moved (cpu_print_threads). Header-only;
 * Linux. */
#pragma once
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CPU_THREAD_NAMES 16

struct cpu_snap {
    double t;                      /* CLOCK_MONOTONIC seconds */
    double busy, idle;             /* whole machine, seconds of CPU */
    double self, watched;          /* seconds of CPU */
    double wchar;                  /* bytes the watched process (or self) handed to write() */
    int nthreads;                  /* the watched process's thread names (the first CPU_THREAD_NAMES) */
    struct {
        char name[16];             /* a thread name is at most 15 bytes */
        double s;                  /* seconds of CPU of its threads alive at the snapshot */
    } thread[CPU_THREAD_NAMES];
};

/* CPU seconds in a /proc stat file; its command name into name (may be NULL). */
static inline double cpu__stat(const char *path, char *name, size_t name_size)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');   /* the command name may contain spaces */
    const char *q = strchr(buf, '(');
    unsigned long long ut = 0, st = 0;
    if (!p || !q || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    if (name)
        snprintf(name, name_size, "%.*s", (int)(p - q - 1), q + 1);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static inline double cpu__proc_pid(int pid)
{
    char path[64];
    if (pid <= 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    return cpu__stat(path, NULL, 0);
}

/* The watched process's threads, their CPU summed by name. */
static inline void cpu__threads(struct cpu_snap *s, int pid)
{
    char path[64], name[16];
    s->nthreads = 0;
    if (pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char stat[300];
        snprintf(stat, sizeof stat, "/proc/%d/task/%.255s/stat", pid, e->d_name);
        double v = cpu__stat(stat, name, sizeof name);
        int i = 0;
        while (i < s->nthreads && strcmp(s->thread[i].name, name))
            i++;
        if (i == CPU_THREAD_NAMES)
            continue;
        if (i == s->nthreads) {
            memcpy(s->thread[i].name, name, sizeof name);
            s->thread[i].s = 0;
            s->nthreads++;
        }
        s->thread[i].s += v;
    }
    closedir(d);
}

/* wchar of /proc/PID/io (PID 0: self): every byte written, to files or sockets. */
static inline double cpu__wchar(int pid)
{
    char path[64], line[128];
    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/io", pid);
    else
        snprintf(path, sizeof path, "/proc/self/io");
    FILE *f = fopen(path, "r");
    double v = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "wchar:", 6))
            v = (double)strtoull(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static inline void cpu_snap(struct cpu_snap *s, int watched_pid)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    unsigned long long v[10] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8], &v[9]) < 8)
            memset(v, 0, sizeof v);
        fclose(f);
    }
    double hz = (double)sysconf(_SC_CLK_TCK);
    /* user nice system idle iowait irq softirq steal (guest time is inside user) */
    s->busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
    s->idle = (double)(v[3] + v[4]) / hz;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s->self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
              (double)ru.ru_stime.tv_usec / 1e6;
    s->watched = cpu__proc_pid(watched_pid);
    s->wchar = cpu__wchar(watched_pid);
    cpu__threads(s, watched_pid);
}

/* Bytes written per second by the watched process (or self) in the window. */
static inline double cpu_write_rate(const struct cpu_snap *a, const struct cpu_snap *b)
{
    double dt = b->t - a->t;
    return dt > 0 ? (b->wchar - a->wchar) / dt : 0;
}

/* Prints "\"cpu\":{...}" (no leading comma) for the window a..b. */
static inline void cpu_print(FILE *out, const struct cpu_snap *a, const struct cpu_snap *b, const char *self_name,
                             const char *watched_name)
{
    double dt = b->t - a->t;
    if (dt <= 0)
        dt = 1e-9;
    double self = (b->self - a->self) / dt, watched = (b->watched - a->watched) / dt;
    double busy = (b->busy - a->busy) / dt, idle = (b->idle - a->idle) / dt;
    double other = busy - self - watched;
    if (other < 0)
        other = 0;
    fprintf(out, "\"cpu\":{\"cores\":%ld,\"%s\":%.2f,", sysconf(_SC_NPROCESSORS_ONLN), self_name, self);
    if (watched_name)
        fprintf(out, "\"%s\":%.2f,", watched_name, watched);
    fprintf(out, "\"others\":%.2f,\"idle\":%.2f}", other, idle);
}

/* Prints "\"NAME\":{\"thread name\":us,...}" (no leading comma): each of the
 * watched process's thread names, its CPU microseconds per operation in the
 * window a..b, ops operations having completed in it. A thread that ended
 * within the window is left out of it (its time is no longer in /proc). */
static inline void cpu_print_threads(FILE *out, const char *name, const struct cpu_snap *a, const struct cpu_snap *b,
                                     double ops)
{
    fprintf(out, "\"%s\":{", name);
    for (int i = 0; i < b->nthreads; i++) {
        double was = 0;
        for (int j = 0; j < a->nthreads; j++)
            if (!strcmp(a->thread[j].name, b->thread[i].name))
                was = a->thread[j].s;
        double us = ops > 0 && b->thread[i].s > was ? (b->thread[i].s - was) * 1e6 / ops : 0;
        fprintf(out, "%s\"%s\":%.2f", i ? "," : "", b->thread[i].name, us);
    }
    fprintf(out, "}");
}
