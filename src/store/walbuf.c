/* walbuf — a SQLite VFS shim that gathers the engine's log writes (store.h S8).
 *
 * SQLite appends a frame to the write-ahead log as two writes: its 24-byte
 * header, then the page. Each write is a system call that lands across two
 * file-system blocks; on this kind of machine that costs 8.3 us a frame, and
 * a top-up writes two or three frames. Gathered into writes of 124 KiB, a
 * frame costs 0.5 us (bench/README.md: "The log's writes").
 *
 * Only files opened as a write-ahead log are buffered; everything else goes
 * straight through to the VFS beneath (the default one, or the fault shim).
 *
 * Invariants
 *  W1. The file, read through the shim, always holds what was written: a
 *      read, size, truncate, sync or close first writes out what is buffered.
 *  W2. A commit is in the file before SQLite can publish it: the write that
 *      completes a commit frame (a frame header whose "database size after
 *      commit" is not zero, then its page) writes out everything buffered
 *      and fails if that fails, so COMMIT fails and nothing is published.
 *      (SQLite publishes frames to readers only afterwards, in the wal-index.)
 *      So does a commit frame's header written again over the log already
 *      written: a transaction that spilled pages and changed them again has
 *      its frames' checksums rewritten at COMMIT, the commit frame's header
 *      last, and no page follows it.
 *  W3. Writes reach the file in the order they were made: a write that does
 *      not continue the buffer, or overwrite a part of it, first writes the
 *      buffer out.
 *  W4. One mutex per file: the engine's syncer syncs the log (store_log_sync)
 *      while the writer appends to it.
 *  W5. Only SQLite's own calls write the buffer out, so a write that fails
 *      is reported to SQLite, which rolls its transaction back. The engine's
 *      syncer syncs with STORE_SYNC_WRITTEN: what is written (every commit,
 *      by W2), not the writer's open transaction, which a failed write
 *      behind SQLite's back could leave with a hole under a later commit.
 *  W6. Writes to the database file itself (a checkpoint's copies) have the
 *      kernel start writing them out every HINT_AFTER bytes (sync_file_range,
 *      as PostgreSQL's checkpoint_flush_after), instead of holding them all
 *      until the checkpoint syncs the file: that burst would sit in the
 *      disk's queue in front of the log's syncs, which every answer waits on.
 *      A hint changes nothing of what is durable or when SQLite syncs.
 *  W7. A thread that set a pace (store_pace_writes) writes the database
 *      file at most that fast, measured over each HINT_AFTER bytes: it
 *      sleeps between them. The checkpointer's copy is then a steady
 *      trickle, not a burst that takes a CPU from the threads answering
 *      requests. Pacing only delays writes; it changes nothing of what is
 *      written or synced.
 *  W8. A sync with STORE_SYNC_WRITTEN that finds nothing has reached the
 *      file since a sync that succeeded (no write, no truncation) returns at
 *      once: a batch that wrote nothing (a gate, refusals that keep nothing,
 *      answers replayed) costs no fsync, and is durable as soon as the
 *      batches before it are, which the engine's one syncer has already
 *      waited for. The first sync always reaches the disk (it also makes a
 *      new log's directory entry durable).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store.h"
#include "util/clock.h"

#define WALBUF_CAP (1 << 20)
#define WAL_HEADER 32
#define FRAME_HEADER 24

/* One shim per VFS beneath it: the default one, and the fault shim's. */
struct wvfs {
    sqlite3_vfs vfs;             /* first: SQLite hands back &vfs */
    sqlite3_vfs *below;
};
static struct wvfs shims[2];
#define BELOW(v) (((struct wvfs *)(v))->below)

struct wfile {
    const sqlite3_io_methods *methods;
    sqlite3_file *real;          /* follows this struct in the same allocation */
    int is_log;
    pthread_mutex_t mu;
    unsigned char *buf;          /* what is not yet written, from off */
    size_t len;
    sqlite3_int64 off;
    int commit_page_next;        /* the last write was a commit frame's header (W2) */
    sqlite3_int64 end;           /* the end of what was written since the log's header (W2) */
    uint64_t changes;            /* W8: writes and truncations that reached the file, from 1 (the open) */
    uint64_t synced;             /* W8: changes covered by the last sync that succeeded; 0: none yet */
    int hint_fd;                 /* W6: the database file's, or -1 */
    size_t unhinted;             /* bytes written to it since the last hint */
};

#define W(f) ((struct wfile *)(f))
#define REAL(f) (W(f)->real)

/* SQLite's unix VFS writes at most 128 KiB - 1 bytes per call (it masks the
 * length with 0x1ffff), so the buffer goes out in pieces below that. */
#define WRITE_MAX (124 << 10)

static int flush(struct wfile *w)
{
    int rc = SQLITE_OK;
    for (size_t done = 0; rc == SQLITE_OK && done < w->len; done += WRITE_MAX) {
        size_t n = w->len - done < WRITE_MAX ? w->len - done : WRITE_MAX;
        rc = w->real->pMethods->xWrite(w->real, w->buf + done, (int)n, w->off + (sqlite3_int64)done);
    }
    w->changes += w->len != 0;
    w->len = 0;   /* a failed write is reported once; SQLite rolls back or halts */
    return rc;
}

static int flushed(sqlite3_file *f)
{
    pthread_mutex_lock(&W(f)->mu);
    int rc = flush(W(f));
    pthread_mutex_unlock(&W(f)->mu);
    return rc;
}

static int be32_nonzero(const unsigned char *p) { return p[0] | p[1] | p[2] | p[3]; }

/* W6. Measured at half of peak (18.2k top-ups/s open loop, 100k SIMs, a
 * database that has taken 1.8M top-ups; 4 paired runs): p99 11.5-16.4 ms
 * without hints, 4.0-7.6 with one every 256 KiB, 5.0-7.2 every 1 MiB; p99.9
 * 16-48 ms, 6.5-21 and 7.6-18. The closed-loop peak and the 10M rate did
 * not move beyond their noise. (The host-wide vm.dirty_background_bytes at
 * 16 MiB does some of this for every file: p99 12.1-13.5 ms.) */
#define HINT_AFTER (256 << 10)
#define HINT_FILES 64

/* A descriptor of the database file that is never closed: closing any
 * descriptor of a file drops every POSIX lock the process holds on it, the
 * locks of SQLite's own connections included. So one per file (device and
 * inode) for the life of the process, and at most HINT_FILES of them (a
 * test process opens many databases); past that, no hints. */
static int hint_fd(const char *name)
{
    static struct {
        dev_t dev;
        ino_t ino;
        int fd;
    } files[HINT_FILES];
    static int nfiles;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct stat sb;
    if (!name || stat(name, &sb))
        return -1;
    int fd = -1;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < nfiles && fd < 0; i++)
        if (files[i].dev == sb.st_dev && files[i].ino == sb.st_ino)
            fd = files[i].fd;
    if (fd < 0 && nfiles < HINT_FILES && (fd = open(name, O_RDONLY | O_CLOEXEC)) >= 0) {
        struct stat now;   /* the file opened, which a rename may have made another: kept all the same */
        if (fstat(fd, &now))
            now = sb;
        files[nfiles].dev = now.st_dev;
        files[nfiles].ino = now.st_ino;
        files[nfiles++].fd = fd;
    }
    pthread_mutex_unlock(&mu);
    return fd;
}

static _Atomic long hints;
long store_walbuf_hints(void) { return hints; }

/* W7: the calling thread's pace, and when its next HINT_AFTER bytes may start. */
static __thread const _Atomic int64_t *pace;
static __thread int64_t pace_next_us;

void store_pace_writes(const _Atomic int64_t *bytes_per_s)
{
    pace = bytes_per_s;
    pace_next_us = 0;
}

static void keep_pace(void)
{
    int64_t rate = pace ? atomic_load(pace) : 0;
    if (rate <= 0) {
        pace_next_us = 0;
        return;
    }
    int64_t now = clock_mono_us(), step = (int64_t)HINT_AFTER * 1000000 / rate;
    if (pace_next_us > now) {
        int64_t wait = pace_next_us - now;
        struct timespec d = {(time_t)(wait / 1000000), (long)(wait % 1000000) * 1000};
        nanosleep(&d, NULL);
        now = pace_next_us;
    }
    pace_next_us = now + step;
}

static int w_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    struct wfile *w = W(f);
    if (!w->is_log) {
        int rc = w->real->pMethods->xWrite(w->real, p, n, off);
        if (rc == SQLITE_OK && w->hint_fd >= 0 && (w->unhinted += (size_t)n) >= HINT_AFTER) {
            w->unhinted = 0;
            sync_file_range(w->hint_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
            hints++;
            keep_pace();   /* W7 */
        }
        return rc;
    }
    pthread_mutex_lock(&w->mu);
    int rc = SQLITE_OK;
    int commit = w->commit_page_next;
    w->commit_page_next = n == FRAME_HEADER && off >= WAL_HEADER && be32_nonzero((const unsigned char *)p + 4);
    if (!off)
        w->end = 0;   /* the log starts over */
    if (w->commit_page_next && off + FRAME_HEADER < w->end) {
        commit = 1;   /* W2: its checksum rewritten, over its page: no page follows */
        w->commit_page_next = 0;
    }
    if (off + n > w->end)
        w->end = off + n;
    if (w->len && off >= w->off && off + n <= w->off + (sqlite3_int64)w->len) {
        memcpy(w->buf + (off - w->off), p, (size_t)n);            /* overwrites what is buffered */
    } else {
        if (w->len && (off != w->off + (sqlite3_int64)w->len || w->len + (size_t)n > WALBUF_CAP ||
                       (size_t)n > WALBUF_CAP / 2))
            rc = flush(w);                                         /* W3 */
        if (rc == SQLITE_OK && (size_t)n > WALBUF_CAP / 2) {
            rc = w->real->pMethods->xWrite(w->real, p, n, off);   /* large: not worth a copy */
            w->changes++;
        } else if (rc == SQLITE_OK) {
            if (!w->len)
                w->off = off;
            memcpy(w->buf + w->len, p, (size_t)n);
            w->len += (size_t)n;
        }
    }
    if (rc == SQLITE_OK && commit)
        rc = flush(w);                                             /* W2 */
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int w_close(sqlite3_file *f)
{
    struct wfile *w = W(f);
    int rc = w->is_log ? flushed(f) : SQLITE_OK;
    int rc2 = w->real->pMethods->xClose(w->real);
    if (w->is_log) {
        pthread_mutex_destroy(&w->mu);
        free(w->buf);
    }
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    int rc = W(f)->is_log ? flushed(f) : SQLITE_OK;
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct wfile *w = W(f);
    if (!w->is_log)
        return w->real->pMethods->xTruncate(w->real, size);
    pthread_mutex_lock(&w->mu);   /* held through the truncation: a sync that counts it comes after it (W8) */
    int rc = flush(w);
    if (w->end > size)
        w->end = size;
    if (rc == SQLITE_OK)
        rc = w->real->pMethods->xTruncate(w->real, size);
    w->changes++;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* W5, W8. */
static int w_sync(sqlite3_file *f, int flags)
{
    struct wfile *w = W(f);
    if (!w->is_log)
        return w->real->pMethods->xSync(w->real, flags);
    pthread_mutex_lock(&w->mu);
    int rc = flags & STORE_SYNC_WRITTEN ? SQLITE_OK : flush(w);
    uint64_t seen = w->changes;
    int idle = rc == SQLITE_OK && (flags & STORE_SYNC_WRITTEN) && w->synced == seen;
    pthread_mutex_unlock(&w->mu);
    if (rc != SQLITE_OK || idle)
        return rc;
    rc = w->real->pMethods->xSync(w->real, flags & ~STORE_SYNC_WRITTEN);
    pthread_mutex_lock(&w->mu);
    if (rc == SQLITE_OK && seen > w->synced)
        w->synced = seen;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int w_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = W(f)->is_log ? flushed(f) : SQLITE_OK;
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int w_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int w_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int w_check(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int w_control(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int w_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int w_caps(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int w_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int w_shmlock(sqlite3_file *f, int off, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags); }
static void w_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int w_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }

/* Version 2: no xFetch/xUnfetch, so SQLite never memory-maps through the shim. */
static const sqlite3_io_methods methods = {
    2, w_close, w_read, w_write, w_truncate, w_sync, w_size, w_lock, w_unlock, w_check, w_control, w_sector,
    w_caps, w_shmmap, w_shmlock, w_shmbarrier, w_shmunmap, NULL, NULL,
};

static int w_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct wfile *w = (struct wfile *)f;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)(w + 1);
    w->hint_fd = -1;
    if (flags & SQLITE_OPEN_WAL) {
        w->buf = malloc(WALBUF_CAP);
        if (!w->buf)
            return SQLITE_NOMEM;
        pthread_mutex_init(&w->mu, NULL);
        w->is_log = 1;
        w->changes = 1;   /* the first sync is never idle (W8) */
    }
    int rc = BELOW(v)->xOpen(BELOW(v), name, w->real, flags, out_flags);
    if (rc != SQLITE_OK || !w->real->pMethods) {
        if (w->is_log) {
            pthread_mutex_destroy(&w->mu);
            free(w->buf);
        }
        w->methods = NULL;
        return rc;
    }
    if (flags & SQLITE_OPEN_MAIN_DB)
        w->hint_fd = hint_fd(name);
    w->methods = &methods;
    return SQLITE_OK;
}

static int w_delete(sqlite3_vfs *v, const char *n, int sync) { return BELOW(v)->xDelete(BELOW(v), n, sync); }
static int w_access(sqlite3_vfs *v, const char *n, int fl, int *out) { return BELOW(v)->xAccess(BELOW(v), n, fl, out); }
static int w_fullpath(sqlite3_vfs *v, const char *n, int len, char *out)
{
    return BELOW(v)->xFullPathname(BELOW(v), n, len, out);
}
static int w_random(sqlite3_vfs *v, int n, char *out) { return BELOW(v)->xRandomness(BELOW(v), n, out); }
static int w_sleep(sqlite3_vfs *v, int us) { return BELOW(v)->xSleep(BELOW(v), us); }
static int w_time(sqlite3_vfs *v, double *t) { return BELOW(v)->xCurrentTime(BELOW(v), t); }
static int w_lasterr(sqlite3_vfs *v, int n, char *s) { return BELOW(v)->xGetLastError(BELOW(v), n, s); }
static int w_time64(sqlite3_vfs *v, sqlite3_int64 *t) { return BELOW(v)->xCurrentTimeInt64(BELOW(v), t); }

static pthread_mutex_t install_mu = PTHREAD_MUTEX_INITIALIZER;

const char *store_walbuf_vfs(void)
{
    /* Above the fault shim when faults are on, so that what it counts and
     * fails are the writes that reach the file. */
    int faults = store_fault_active();
    static const char *const names[2] = {STORE_WALBUF_VFS, STORE_WALBUF_VFS "-fault"};
    struct wvfs *w = &shims[faults];
    pthread_mutex_lock(&install_mu);
    if (!w->below) {
        sqlite3_vfs *below = sqlite3_vfs_find(faults ? STORE_FAULT_VFS : NULL);
        w->vfs = (sqlite3_vfs){
            .iVersion = 2, .szOsFile = below ? (int)sizeof(struct wfile) + below->szOsFile : 0,
            .mxPathname = below ? below->mxPathname : 0, .zName = names[faults], .xOpen = w_open,
            .xDelete = w_delete, .xAccess = w_access, .xFullPathname = w_fullpath, .xRandomness = w_random,
            .xSleep = w_sleep, .xCurrentTime = w_time, .xGetLastError = w_lasterr, .xCurrentTimeInt64 = w_time64,
        };
        if (below && sqlite3_vfs_register(&w->vfs, 0) == SQLITE_OK)
            w->below = below;
    }
    const char *name = w->below ? names[faults] : NULL;
    pthread_mutex_unlock(&install_mu);
    return name;
}
