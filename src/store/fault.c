/* fault — a SQLite VFS shim that fails on purpose, for tests (store.h S6).
 *
 * It forwards every call to the default VFS and counts writes and syncs of
 * every file. With "write@N" the Nth write and those after it fail with an
 * I/O error; "full@N" the same with SQLITE_FULL (disk full); "fsync@N" the
 * Nth sync and those after it. A ",once" suffix fails only the Nth call.
 * "syncwait@MS" fails nothing: every sync first waits MS milliseconds (a
 * slow disk, for tests of what happens while a sync is in flight).
 * Off unless configured (serve --fault SPEC, a test-only switch).
 */
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/log.h"

enum fault_kind { FAULT_NONE, FAULT_WRITE, FAULT_FULL, FAULT_FSYNC, FAULT_SYNC_WAIT };

/* What to fail, in one word so that a reconfiguration while the engine's
 * threads run (the tests') is seen whole: at << 8 | once << 4 | kind. */
static struct {
    _Atomic uint64_t spec;
    _Atomic long writes, syncs, injected;
} F;

static enum fault_kind spec_kind(uint64_t s) { return (enum fault_kind)(s & 15); }
static long spec_at(uint64_t s) { return (long)(s >> 8); }

static sqlite3_vfs vfs;
static sqlite3_vfs *base;

struct ffile {
    const sqlite3_io_methods *methods;
    sqlite3_file *real;   /* follows this struct in the same allocation */
};

/* 1 when call number n of this kind must fail. */
static int trips(enum fault_kind k, long n)
{
    uint64_t s = atomic_load_explicit(&F.spec, memory_order_relaxed);
    int once = (s >> 4) & 1;
    if (spec_kind(s) != k || n < spec_at(s) || (once && n != spec_at(s)))
        return 0;
    atomic_fetch_add(&F.injected, 1);
    return 1;
}

#define REAL(f) (((struct ffile *)(f))->real)

static int f_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) { return REAL(f)->pMethods->xRead(REAL(f), p, n, off); }

static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    long w = atomic_fetch_add(&F.writes, 1) + 1;
    if (trips(FAULT_WRITE, w))
        return SQLITE_IOERR_WRITE;
    if (trips(FAULT_FULL, w))
        return SQLITE_FULL;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size) { return REAL(f)->pMethods->xTruncate(REAL(f), size); }

static int f_sync(sqlite3_file *f, int flags)
{
    long s = atomic_fetch_add(&F.syncs, 1) + 1;
    if (trips(FAULT_FSYNC, s))
        return SQLITE_IOERR_FSYNC;
    uint64_t spec = atomic_load_explicit(&F.spec, memory_order_relaxed);
    if (spec_kind(spec) == FAULT_SYNC_WAIT)
        base->xSleep(base, (int)(spec_at(spec) * 1000));
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size) { return REAL(f)->pMethods->xFileSize(REAL(f), size); }
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_check(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int f_control(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_caps(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags); }
static void f_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }

static const sqlite3_io_methods methods = {
    2, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock, f_check, f_control, f_sector,
    f_caps, f_shmmap, f_shmlock, f_shmbarrier, f_shmunmap, NULL, NULL,
};

static int f_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct ffile *ff = (struct ffile *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = base->xOpen(base, name, ff->real, flags, out_flags);
    ff->methods = rc == SQLITE_OK && ff->real->pMethods ? &methods : NULL;
    return rc;
}

static int f_delete(sqlite3_vfs *v, const char *n, int sync) { return base->xDelete(base, n, sync); }
static int f_access(sqlite3_vfs *v, const char *n, int fl, int *out) { return base->xAccess(base, n, fl, out); }
static int f_fullpath(sqlite3_vfs *v, const char *n, int len, char *out) { return base->xFullPathname(base, n, len, out); }
static int f_random(sqlite3_vfs *v, int n, char *out) { return base->xRandomness(base, n, out); }
static int f_sleep(sqlite3_vfs *v, int us) { return base->xSleep(base, us); }
static int f_time(sqlite3_vfs *v, double *t) { return base->xCurrentTime(base, t); }
static int f_lasterr(sqlite3_vfs *v, int n, char *s) { return base->xGetLastError(base, n, s); }
static int f_time64(sqlite3_vfs *v, sqlite3_int64 *t) { return base->xCurrentTimeInt64(base, t); }

int store_fault_configure(const char *spec)
{
    char kind[16];
    long at = 0;
    if (!spec || sscanf(spec, "%15[a-z]@%ld", kind, &at) != 2 || at < 1)
        return -1;
    enum fault_kind k = !strcmp(kind, "write") ? FAULT_WRITE : !strcmp(kind, "full") ? FAULT_FULL
                      : !strcmp(kind, "fsync") ? FAULT_FSYNC : !strcmp(kind, "syncwait") ? FAULT_SYNC_WAIT
                      : FAULT_NONE;
    if (k == FAULT_NONE || (k == FAULT_SYNC_WAIT && at > 60000) || at > (1L << 40))
        return -1;
    int once = strstr(spec, ",once") != NULL;
    atomic_store(&F.spec, (uint64_t)at << 8 | (uint64_t)once << 4 | (uint64_t)k);
    if (!base) {
        store_configure();   /* before the lookup below starts SQLite */
        base = sqlite3_vfs_find(NULL);
        vfs = (sqlite3_vfs){
            .iVersion = 2, .szOsFile = (int)sizeof(struct ffile) + base->szOsFile, .mxPathname = base->mxPathname,
            .zName = STORE_FAULT_VFS, .xOpen = f_open, .xDelete = f_delete, .xAccess = f_access,
            .xFullPathname = f_fullpath, .xRandomness = f_random, .xSleep = f_sleep, .xCurrentTime = f_time,
            .xGetLastError = f_lasterr, .xCurrentTimeInt64 = f_time64,
            /* dlopen hooks are not needed: extensions are never loaded */
        };
        if (sqlite3_vfs_register(&vfs, 0) != SQLITE_OK)
            return -1;
    }
    log_warn("fault injection ON: %s", spec);
    return 0;
}

int store_fault_active(void) { return spec_kind(atomic_load(&F.spec)) != FAULT_NONE; }

void store_fault_counts(long *writes, long *syncs, long *injected)
{
    *writes = atomic_load(&F.writes);
    *syncs = atomic_load(&F.syncs);
    *injected = atomic_load(&F.injected);
}
