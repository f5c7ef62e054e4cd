/* store on SQLite. See store.h for the contract and its invariants. */
#include "store/store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "embedded.h"
#include "util/err.h"
#include "util/log.h"

#define MIGRATIONS_DIR "src/store/migrations/"

struct store_q {
    struct store *st;
    sqlite3_stmt *stmt;
    int err;
};

struct store {
    sqlite3 *db;
    enum store_mode mode;
    char *path;
    struct store_q **slots;  /* indexed by store_sql.slot; each allocated once, so that a query held
                                open stays where it is while the table grows for another statement */
    int nslots;
    sqlite3_file *log;       /* STORE_LOGGED: the WAL, for store_log_sync */
    int64_t log_pages;       /* STORE_LOGGED: pages in the WAL after the last commit */
    int synced_frames;       /* store_checkpoint: log frames copied and synced in the database */
};

/* Replaces SQLite's automatic checkpoint (which would run inside COMMIT). */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    (void)db, (void)name;
    ((struct store *)arg)->log_pages = pages;
    return SQLITE_OK;
}

static _Atomic int next_slot;

static int map_rc(struct store *st, int rc, const char *what)
{
    if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_CONSTRAINT_DATATYPE)   /* an INTEGER sum past int64 is REAL, which STRICT refuses */
        return ERR_NUMBER_OVERFLOW;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return ERR_CONSTRAINT;
    log_error("sqlite: %s: %s (%d)", what, sqlite3_errmsg(st->db), rc);
    return ERR_STORAGE;
}

/* SQLite reads its files a page at a time, and a scan reads them in order
 * (CREATE INDEX in a migration, the ledger check). The kernel's readahead
 * then fills the page cache with large folios, as read(2) in big pieces
 * does (S10): a scan of a 300 MB file in 2 KiB preads left 73,238 of its
 * 73,243 pages in them, and none with this advice. Every later checkpoint
 * write into such a folio costs the kernel in proportion to the folio: after
 * an index of a 10M-SIM database was rebuilt this way, the checkpointer took
 * 13.4 us a top-up instead of 5.5, and the rate fell from 33.9k to 27.6k/s.
 * So the database file is advised as read at random whenever SQLite opens it,
 * which turns readahead off for that descriptor: a read fills single pages.
 * store_prefetch still fills the cache in bulk, through a descriptor of its
 * own. The log and its index keep the default: their pages come in by
 * topupd's own writes, whole, not by reads. */
static sqlite3_syscall_ptr sqlite_open;

static int open_at_random(const char *path, int flags, int mode)
{
    int fd = ((int (*)(const char *, int, int))sqlite_open)(path, flags, mode);
    size_t n = strlen(path);
    int database = n < 4 || (strcmp(path + n - 4, "-wal") && strcmp(path + n - 4, "-shm"));
    if (fd >= 0 && database)
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);   /* advice: a directory may refuse it */
    return fd;
}

static int install_random_reads(void)
{
    sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
    if (!unix_vfs || unix_vfs->iVersion < 3 || !unix_vfs->xGetSystemCall ||
        !(sqlite_open = unix_vfs->xGetSystemCall(unix_vfs, "open")))
        return -1;
    return unix_vfs->xSetSystemCall(unix_vfs, "open", (sqlite3_syscall_ptr)open_at_random) == SQLITE_OK ? 0 : -1;
}

/* Connections are never shared between threads (S2), so SQLite's own mutexes
 * and its allocation statistics are only overhead. The page cache is
 * the project's own (pcache.c, S7); small blocks come from
 * per-thread lists (smalloc.c, S9). */
static void configure_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (store_pcache_install())
        log_warn("sqlite: page cache not installed; SQLite's own is used");
    if (store_malloc_install() < 0)
        log_warn("sqlite: small-block allocator not installed; SQLite allocates from malloc");
    if (install_random_reads())
        log_warn("sqlite: its files keep the kernel's readahead (no unix VFS to advise)");
}

void store_configure(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_once);
}

int store_open(struct store **out, const char *path, enum store_mode mode)
{
    store_configure();
    struct store *st = calloc(1, sizeof *st);
    if (!st)
        return ERR_INTERNAL;
    st->mode = mode;
    st->path = strdup(path);
    int writes = mode != STORE_READER;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writes ? SQLITE_OPEN_CREATE : 0);
    const char *vfs = mode == STORE_LOGGED ? store_walbuf_vfs() : NULL;   /* S8 */
    if (!vfs && writes && store_fault_active())
        vfs = STORE_FAULT_VFS;
    int rc = sqlite3_open_v2(path, &st->db, flags, vfs);
    if (rc != SQLITE_OK) {
        log_error("cannot open database %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
        store_close(st);
        return ERR_STORAGE;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 5000);
    /* The page size only takes on a database that has no table yet, so it
     * comes first. 2 KiB rather than SQLite's 4: a top-up on a population
     * far larger than the cache rewrites one SIM's leaf, a random page, which
     * goes to the log once and to the database again at the checkpoint, so
     * smaller pages mean fewer bytes for the disk. Measured with topupd's
     * write_bytes per top-up (closed loop, 512 connections, databases
     * imported through the API): 10M SIMs 10.9 -> 6.5 KB, 100k 7.0 -> 4.4 KB.
     * The deeper B-trees cost no rate this machine can see: paired runs
     * 2K/4K at 10M 0.88-1.16 (median 1.02, nine pairs), at 100k 0.96-1.05
     * (six). 1 KiB pages lost at 10M (0.87, 0.94, 0.94 against 2 KiB). */
    const char *pragmas = mode == STORE_WRITER
        ? "PRAGMA page_size=2048; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
          "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
        : mode == STORE_LOGGED
        ? "PRAGMA page_size=2048; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
          "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
        : "PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384; PRAGMA query_only=ON;";
    rc = store_script(st, pragmas);
    if (rc && sqlite3_extended_errcode(st->db) == SQLITE_READONLY_DIRECTORY)   /* the WAL's index, -shm */
        log_error("%s: a user who may only read the database reads it while %s-shm is there (the server "
                  "runs) or when the directory is writable", path, path);
    if (rc) {
        store_close(st);
        return rc;
    }
    if (mode == STORE_LOGGED)
        sqlite3_wal_hook(st->db, on_wal_commit, st);
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->nslots; i++)
        if (st->slots[i]) {
            sqlite3_finalize(st->slots[i]->stmt);
            free(st->slots[i]);
        }
    free(st->slots);
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

int store_script(struct store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        log_error("sqlite script: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return (rc & 0xff) == SQLITE_CONSTRAINT ? ERR_CONSTRAINT : ERR_STORAGE;
    }
    return 0;
}

/* S1: one prepared handle per statement per connection. */
static struct store_q *prepare(struct store *st, struct store_sql *sql)
{
    int slot = atomic_load_explicit((_Atomic int *)&sql->slot, memory_order_acquire);
    if (slot < 0) {
        int mine = atomic_fetch_add(&next_slot, 1), expect = -1;
        if (!atomic_compare_exchange_strong((_Atomic int *)&sql->slot, &expect, mine))
            mine = expect;
        slot = mine;
    }
    if (slot >= st->nslots) {
        int n = st->nslots ? st->nslots : 64;
        while (n <= slot)
            n *= 2;
        struct store_q **s = realloc(st->slots, (size_t)n * sizeof *s);
        if (!s)
            abort();
        memset(s + st->nslots, 0, (size_t)(n - st->nslots) * sizeof *s);
        st->slots = s;
        st->nslots = n;
    }
    struct store_q *q = st->slots[slot];
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q)
            abort();   /* as for the table itself */
        st->slots[slot] = q;
    }
    q->st = st;
    q->err = 0;
    if (!q->stmt) {
        int rc = sqlite3_prepare_v3(st->db, sql->text, -1, SQLITE_PREPARE_PERSISTENT, &q->stmt, NULL);
        if (rc != SQLITE_OK) {
            q->err = map_rc(st, rc, sql->text);
            q->stmt = NULL;
        }
    }
    return q;
}

static void bindv(struct store_q *q, const char *fmt, va_list ap)
{
    if (q->err)
        return;
    if ((size_t)sqlite3_bind_parameter_count(q->stmt) != strlen(fmt)) {
        log_error("store: %zu bindings for %d parameters in: %s", strlen(fmt),
                  sqlite3_bind_parameter_count(q->stmt), sqlite3_sql(q->stmt));
        q->err = ERR_INTERNAL;
        return;
    }
    int rc = SQLITE_OK;
    for (int i = 1; *fmt && rc == SQLITE_OK; fmt++, i++) {
        switch (*fmt) {
        case 'i': rc = sqlite3_bind_int64(q->stmt, i, va_arg(ap, int64_t)); break;
        case 'd': rc = sqlite3_bind_int(q->stmt, i, va_arg(ap, int)); break;
        case 'z': {
            int64_t v = va_arg(ap, int64_t);
            rc = v ? sqlite3_bind_int64(q->stmt, i, v) : sqlite3_bind_null(q->stmt, i);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(q->stmt, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(q->stmt, i);
            break;
        }
        case 'b': {
            const void *p = va_arg(ap, const void *);
            size_t n = va_arg(ap, size_t);
            rc = sqlite3_bind_blob64(q->stmt, i, p, n, SQLITE_STATIC);
            break;
        }
        case 'n': rc = sqlite3_bind_null(q->stmt, i); break;
        default: rc = SQLITE_MISUSE; break;
        }
    }
    if (rc != SQLITE_OK)
        q->err = map_rc(q->st, rc, "bind");
}

int store_exec(struct store *st, struct store_sql *sql, const char *fmt, ...)
{
    struct store_q *q = prepare(st, sql);
    va_list ap;
    va_start(ap, fmt);
    bindv(q, fmt, ap);
    va_end(ap);
    if (q->err) {
        int e = q->err;
        q->err = 0;
        if (q->stmt)
            sqlite3_reset(q->stmt);
        return e;
    }
    int rc;
    do
        rc = sqlite3_step(q->stmt);
    while (rc == SQLITE_ROW);
    int e = map_rc(st, rc, sql->text);
    sqlite3_reset(q->stmt);
    return e;
}

int64_t store_changes(struct store *st) { return sqlite3_changes64(st->db); }
int64_t store_total_changes(struct store *st) { return sqlite3_total_changes64(st->db); }
int64_t store_last_id(struct store *st) { return sqlite3_last_insert_rowid(st->db); }

struct store_q *store_query(struct store *st, struct store_sql *sql, const char *fmt, ...)
{
    struct store_q *q = prepare(st, sql);
    va_list ap;
    va_start(ap, fmt);
    bindv(q, fmt, ap);
    va_end(ap);
    return q;
}

int store_next(struct store_q *q)
{
    if (q->err || !q->stmt)
        return 0;
    int rc = sqlite3_step(q->stmt);
    if (rc == SQLITE_ROW)
        return 1;
    q->err = map_rc(q->st, rc, sqlite3_sql(q->stmt));
    return 0;
}

int store_end(struct store_q *q)
{
    int e = q->err;
    q->err = 0;
    if (q->stmt)
        sqlite3_reset(q->stmt);
    return e;
}

int store_one(struct store *st, struct store_q **out, struct store_sql *sql, const char *fmt, ...)
{
    struct store_q *q = prepare(st, sql);
    va_list ap;
    va_start(ap, fmt);
    bindv(q, fmt, ap);
    va_end(ap);
    if (store_next(q)) {
        *out = q;
        return 0;
    }
    int e = store_end(q);
    return e ? e : ERR_NOT_FOUND;
}

int64_t store_i64(struct store_q *q, int col) { return sqlite3_column_int64(q->stmt, col); }
int store_is_null(struct store_q *q, int col) { return sqlite3_column_type(q->stmt, col) == SQLITE_NULL; }

const char *store_text(struct store_q *q, int col)
{
    const unsigned char *t = sqlite3_column_text(q->stmt, col);
    return t ? (const char *)t : "";
}

const void *store_blob(struct store_q *q, int col, size_t *len)
{
    *len = (size_t)sqlite3_column_bytes(q->stmt, col);
    return sqlite3_column_blob(q->stmt, col);
}

STORE_SQL(SQL_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE");
STORE_SQL(SQL_BEGIN, "BEGIN");
STORE_SQL(SQL_COMMIT, "COMMIT");
STORE_SQL(SQL_ROLLBACK, "ROLLBACK");
STORE_SQL(SQL_SAVEPOINT, "SAVEPOINT cmd");
STORE_SQL(SQL_RELEASE, "RELEASE cmd");
STORE_SQL(SQL_ROLLBACK_TO, "ROLLBACK TO cmd");

int store_begin(struct store *st)
{
    return store_exec(st, st->mode == STORE_READER ? &SQL_BEGIN : &SQL_BEGIN_IMMEDIATE, "");
}

int store_commit(struct store *st)
{
    int rc = store_exec(st, &SQL_COMMIT, "");
    if (rc && !sqlite3_get_autocommit(st->db))
        store_rollback(st);
    return rc;
}

_Static_assert(STORE_PAGE_SIZE == 2048, "the pragmas in store_open say 2048");

int store_page_size(struct store *st)
{
    sqlite3_stmt *q;
    int size = 0;
    if (sqlite3_prepare_v2(st->db, "PRAGMA page_size", -1, &q, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(q) == SQLITE_ROW)
        size = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return size;
}

int store_cache_size(struct store *st, int64_t mib)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size=-%lld", (long long)mib * 1024);
    return store_script(st, sql);
}

int store_log_attach(struct store *st)
{
    /* The WAL is opened by the first transaction; it then stays open for the
     * life of the connection. */
    int rc = store_begin(st);
    if (rc)
        return rc;
    store_rollback(st);
    sqlite3_file *f = NULL;
    if (st->mode != STORE_LOGGED || sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
        !f || !f->pMethods) {
        log_error("sqlite: no write-ahead log to sync on %s", st->path);
        return ERR_STORAGE;
    }
    st->log = f;
    return store_log_sync(st);
}

int store_log_sync(struct store *st)
{
    int rc = st->log->pMethods->xSync(st->log, SQLITE_SYNC_FULL | STORE_SYNC_WRITTEN);
    if (rc == SQLITE_OK)
        return 0;
    log_error("sqlite: syncing the log of %s failed (%d)", st->path, rc);
    return ERR_STORAGE;
}

/* How the file is read matters as much as that it is (store.h S10). Read
 * with read(2), the kernel's readahead puts the file in large folios (up to
 * 2 MiB here: Linux 6.18, ext4), and each checkpoint then writes 2 KiB pages
 * into them at random, which cost 44 us of CPU per write on this machine
 * against 1.8 us into single pages (bench/folios, 2.8 GB file). readahead(2)
 * fills the cache with single pages and marks none for more readahead. The
 * kernel caps one call at the device's readahead window (which is why one
 * posix_fadvise(WILLNEED) of the whole file read next to nothing), so the
 * file goes in chunks no larger than any window. */
#define PREFETCH_CHUNK (128 << 10)

int store_prefetch_fd(int fd)
{
    struct stat sb;
    if (fstat(fd, &sb))
        return -1;
    for (off_t off = 0; off < sb.st_size; off += PREFETCH_CHUNK)
        if (readahead(fd, off, PREFETCH_CHUNK))
            return -1;
    return 0;
}

/* In a grandchild process: POSIX locks belong to the process, and closing any
 * descriptor of the database here would drop the locks SQLite holds on it. */
void store_prefetch(const char *path)
{
    pid_t child = fork();
    if (child < 0)
        return;
    if (child == 0) {
        if (fork() == 0) {   /* the grandchild reads; init reaps it */
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd >= 0)
                store_prefetch_fd(fd);
        }
        _exit(0);
    }
    waitpid(child, NULL, 0);
}

int64_t store_log_pages(struct store *st) { return st->log_pages; }
int64_t store_checkpointed(struct store *st) { return st->synced_frames; }

int store_checkpoint(struct store *st, int sync_partial)
{
    int log = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(st->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc == SQLITE_BUSY)   /* another checkpoint is running, or a reader held on: next time */
        return 0;
    if (rc)
        return map_rc(st, rc, "checkpoint");
    /* SQLite syncs the database only after a checkpoint that reached the end
     * of the log, which under steady writes is the one that lets the log
     * start over: that sync then flushed everything copied since the last
     * restart (16-23 ms at 10k top-ups/s, on the writer, every half second).
     * Syncing after each partial one here keeps that last sync small. */
    if (copied < st->synced_frames)
        st->synced_frames = 0;   /* the log started over */
    if (sync_partial && copied > st->synced_frames && copied < log) {
        sqlite3_file *db = NULL;
        if (sqlite3_file_control(st->db, "main", SQLITE_FCNTL_FILE_POINTER, &db) != SQLITE_OK || !db ||
            (rc = db->pMethods->xSync(db, SQLITE_SYNC_NORMAL)) != SQLITE_OK) {
            log_error("sqlite: syncing the database %s after a checkpoint failed (%d)", st->path, rc);
            return ERR_STORAGE;
        }
    }
    st->synced_frames = copied;
    return 0;
}

void store_rollback(struct store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        store_exec(st, &SQL_ROLLBACK, "");
}

int store_savepoint(struct store *st) { return store_exec(st, &SQL_SAVEPOINT, ""); }
int store_release(struct store *st) { return store_exec(st, &SQL_RELEASE, ""); }

int store_rollback_to(struct store *st)
{
    int rc = store_exec(st, &SQL_ROLLBACK_TO, "");
    return rc ? rc : store_exec(st, &SQL_RELEASE, "");
}

STORE_SQL(SQL_COPY, "VACUUM INTO ?");
STORE_SQL(SQL_QUICK_CHECK, "PRAGMA quick_check");

int store_copy(struct store *st, const char *path)
{
    /* query_only (a reader's) refuses VACUUM INTO too; it changes only the copy */
    int rc = store_script(st, "PRAGMA query_only=OFF");
    if (!rc)
        rc = store_exec(st, &SQL_COPY, "s", path);
    if (st->mode == STORE_READER && store_script(st, "PRAGMA query_only=ON") && !rc)
        rc = ERR_STORAGE;
    return rc;
}

int store_quick_check(struct store *st, char *why, size_t n)
{
    struct store_q *q = store_query(st, &SQL_QUICK_CHECK, "");
    int row = store_next(q), ok = row && !strcmp(store_text(q, 0), "ok");
    if (!ok)
        snprintf(why, n, "%s", row ? store_text(q, 0) : "the file could not be read");
    int rc = store_end(q);
    return rc ? rc : ok ? 0 : ERR_STORAGE;
}

STORE_SQL(SQL_VERSION, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
STORE_SQL(SQL_MIGRATED, "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, strftime('%s','now'))");

STORE_SQL(SQL_HAS_MIGRATIONS,
          "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')");

/* Reads only, so that a reader can ask before anything writes. */
int store_version(struct store *st, int *version)
{
    struct store_q *q;
    int rc = store_one(st, &q, &SQL_HAS_MIGRATIONS, "");
    if (rc)
        return rc;
    int has = (int)store_i64(q, 0);
    if ((rc = store_end(q)))
        return rc;
    *version = 0;
    if (!has)
        return 0;
    rc = store_one(st, &q, &SQL_VERSION, "");
    if (rc)
        return rc;
    *version = (int)store_i64(q, 0);
    return store_end(q);
}

int store_version_latest(void)
{
    size_t dirlen = strlen(MIGRATIONS_DIR);
    int latest = 0;
    for (size_t i = 0; i < embedded_count; i++) {
        const char *name = embedded_files[i].name;
        int v = strncmp(name, MIGRATIONS_DIR, dirlen) ? 0 : atoi(name + dirlen);
        latest = v > latest ? v : latest;
    }
    return latest;
}

/* Migrations run with foreign keys off, as SQLite's procedure for
 * rebuilding a table asks: with them on, DROP TABLE of a table others refer
 * to deletes its rows one by one, each looking for its children, and a
 * child column without an index makes that quadratic (migration 006 on
 * 20,000 transfers: 7.8 s, against 0.04 s with them off; it would have
 * taken hours on a real ledger). What a migration rebuilt or created, and
 * every table that refers to one of those, is then checked in full before
 * it commits. */
STORE_SQL(SQL_MIGRATION_ROOTS_NEW,
          "CREATE TEMP TABLE IF NOT EXISTS migration_roots (name TEXT PRIMARY KEY, rootpage INTEGER)");
STORE_SQL(SQL_MIGRATION_ROOTS_CLEAR, "DELETE FROM temp.migration_roots");
STORE_SQL(SQL_MIGRATION_ROOTS,
          "INSERT INTO temp.migration_roots SELECT name, rootpage FROM main.sqlite_master WHERE type = 'table'");
STORE_SQL(SQL_MIGRATION_FK_CHECK,
          "WITH changed(name) AS ("
          "  SELECT m.name FROM main.sqlite_master m LEFT JOIN temp.migration_roots r ON r.name = m.name"
          "  WHERE m.type = 'table' AND (r.rootpage IS NULL OR r.rootpage <> m.rootpage)),"
          " checked(name) AS ("
          "  SELECT name FROM changed"
          "  UNION SELECT m.name FROM main.sqlite_master m, pragma_foreign_key_list(m.name) f"
          "  WHERE m.type = 'table' AND f.\"table\" IN (SELECT name FROM changed))"
          " SELECT k.\"table\", k.rowid, k.parent FROM checked c, pragma_foreign_key_check(c.name) k");

static int migration_keys_hold(struct store *st, const char *name)
{
    struct store_q *q = store_query(st, &SQL_MIGRATION_FK_CHECK, "");
    int broken = 0;
    while (store_next(q))
        if (!broken++)
            log_error("migration %s: row %lld of %s refers to a missing row of %s", name,
                      (long long)store_i64(q, 1), store_text(q, 0), store_text(q, 2));
    int rc = store_end(q);
    return rc ? rc : broken ? ERR_CONSTRAINT : 0;
}

/* An empty schema_migrations alone is an empty database: a crash in the
 * first migration of a topupd that created the table in a transaction of its
 * own left that, and it was then refused as another program's for good. */
STORE_SQL(SQL_ANY_TABLE,
          "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name <> 'schema_migrations')");

int store_ours(struct store *st)
{
    struct store_q *q;
    int have = 0, tables = 0, latest = store_version_latest(), rc = store_version(st, &have);
    if (!rc && !have && !(rc = store_one(st, &q, &SQL_ANY_TABLE, ""))) {
        tables = (int)store_i64(q, 0);
        rc = store_end(q);
    }
    if (rc)
        return rc;
    if (tables) {
        log_error("%s is not a topup database: it has tables, and no schema version of ours", st->path);
        return ERR_INVALID_STATE;
    }
    if (have > latest) {
        log_error("%s is at schema version %d, newer than this topupd's %d: use the topupd that migrated it",
                  st->path, have, latest);
        return ERR_INVALID_STATE;
    }
    return 0;
}

int store_migrate(struct store *st, int *applied)
{
    *applied = 0;
    int have = 0, rc = store_ours(st);
    if (rc)
        return rc;
    rc = store_version(st, &have);
    if (rc)
        return rc;
    rc = store_script(st, "PRAGMA foreign_keys = OFF");
    if (!rc)
        rc = store_exec(st, &SQL_MIGRATION_ROOTS_NEW, "");
    if (rc)
        return rc;
    size_t dirlen = strlen(MIGRATIONS_DIR);
    for (size_t i = 0; i < embedded_count; i++) {
        const struct embedded_file *f = &embedded_files[i];
        if (strncmp(f->name, MIGRATIONS_DIR, dirlen))
            continue;
        const char *base = f->name + dirlen;
        int v = atoi(base);
        if (v <= have)
            continue;
        if (have && !*applied)   /* a migration may scan a table: the file comes in in bulk, beside it (S10) */
            store_prefetch(st->path);
        rc = store_begin(st);
        if (!rc)   /* S4: in the first migration's transaction, so that a crash leaves no table or a version */
            rc = store_script(st, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                  "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
        if (!rc)
            rc = store_exec(st, &SQL_MIGRATION_ROOTS_CLEAR, "");
        if (!rc)
            rc = store_exec(st, &SQL_MIGRATION_ROOTS, "");
        if (!rc)
            rc = store_script(st, f->data);
        if (!rc)
            rc = migration_keys_hold(st, base);
        if (!rc)
            rc = store_exec(st, &SQL_MIGRATED, "ds", v, base);
        if (!rc)
            rc = store_commit(st);
        if (rc) {
            store_rollback(st);
            log_error("migration %s failed", base);
            break;
        }
        log_info("applied migration %s", base);
        have = v;
        (*applied)++;
    }
    int on = store_script(st, "PRAGMA foreign_keys = ON");
    return rc ? rc : on;
}
