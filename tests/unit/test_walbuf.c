/* The log-gathering shim (src/store/walbuf.c, store.h S8): what it holds back
 * is never missing for a reader, for the connection itself, or after a kill. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "testutil.h"

struct fix {
    char dir[64], path[96];
};

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/topup-walbuf-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/w.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* The engine's writer: through the shim, WAL, synchronous=NORMAL; a small
 * cache so that big transactions spill frames and read them back. */
static sqlite3 *open_writer(const char *path, int cache_pages)
{
    const char *vfs = store_walbuf_vfs();
    assert_non_null(vfs);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs), SQLITE_OK);
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=%d;"
             "PRAGMA wal_autocheckpoint=0", cache_pages);
    tu_sql(db, sql);
    return db;
}

static sqlite3 *open_reader(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

/* Transactions of every size, from one frame to several buffers' worth: a
 * reader on another connection sees each one the moment COMMIT returns (W2),
 * across log restarts (the log header rewritten at offset 0). */
static void test_commit_visible_at_once(void **state)
{
    struct fix *f = *state;
    sqlite3 *w = open_writer(f->path, 2000), *r = NULL;
    tu_sql(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    r = open_reader(f->path);
    static const int rows[] = {1, 3, 250, 1000, 4000};
    int64_t total = 0;
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            char sql[200];
            snprintf(sql, sizeof sql,
                     "BEGIN; WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < %d) "
                     "INSERT INTO t(v) SELECT randomblob(700) FROM n; COMMIT",
                     rows[i]);
            tu_sql(w, sql);
            total += rows[i];
            assert_int_equal(tu_sql_int(r, "SELECT COUNT(*) FROM t"), total);
        }
        /* the reader copies the log into the database and starts it over */
        tu_sql(r, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
    assert_int_equal(tu_sql_int(r, "SELECT COUNT(*) FROM t WHERE length(v) = 700"), total);
    sqlite3_close(r);
    sqlite3_close(w);
}

/* A transaction bigger than the cache reads its own spilled frames back, and
 * rewrites some in place (W1, W3): what it reads is what it wrote. */
static void test_spilled_frames_read_back(void **state)
{
    struct fix *f = *state;
    sqlite3 *w = open_writer(f->path, 16);
    tu_sql(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, pad BLOB)");
    tu_sql(w, "BEGIN; WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 5000) "
              "INSERT INTO t(n, pad) SELECT k, zeroblob(300) FROM n;"
              "UPDATE t SET n = n * 2; UPDATE t SET n = n + 1 WHERE id % 3 = 0");
    assert_int_equal(tu_sql_int(w, "SELECT SUM(n) FROM t"), 5000 * 5001 + 1666);
    tu_sql(w, "COMMIT");
    assert_int_equal(tu_sql_int(w, "SELECT SUM(n) FROM t"), 5000 * 5001 + 1666);
    tu_integrity_ok(w);
    sqlite3_close(w);
}

/* Killed right after COMMIT returned, without closing anything: every
 * committed transaction is in the file (W2), nothing is held back. */
static void test_commit_survives_a_kill(void **state)
{
    struct fix *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *w = open_writer(f->path, 2000);
        tu_sql(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
        for (int i = 0; i < 40; i++)
            tu_sql(w, "BEGIN; WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 97) "
                      "INSERT INTO t(v) SELECT randomblob(300) FROM n; COMMIT");
        /* an open transaction that never commits: none of it may show */
        tu_sql(w, "BEGIN; INSERT INTO t(v) VALUES (randomblob(300))");
        raise(SIGKILL);   /* nothing runs after it: no exit handler, no leak report under valgrind */
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);   /* not a failed assertion's exit */
    sqlite3 *r = open_reader(f->path);
    assert_int_equal(tu_sql_int(r, "SELECT COUNT(*) FROM t"), 40 * 97);
    sqlite3_close(r);
}

/* A transaction that spills pages to the log and then changes them again
 * rewrites those frames in place, and at COMMIT SQLite rewrites the frame
 * headers from the first of them on, the commit frame's last, with no write
 * of a page after it. Synced as the engine's syncer syncs (W5: what is
 * written) and then killed: the commit is in the file all the same (W2). */
static void test_rewritten_commit_survives_a_kill(void **state)
{
    struct fix *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sqlite3 *w = open_writer(f->path, 16);   /* the transaction spills */
        tu_sql(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, pad BLOB)");
        tu_sql(w, "BEGIN; WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 2000) "
                  "INSERT INTO t(n, pad) SELECT k, zeroblob(300) FROM n; UPDATE t SET n = -n WHERE id <= 50; "
                  "COMMIT");
        sqlite3_file *log = NULL;
        if (sqlite3_file_control(w, "main", SQLITE_FCNTL_JOURNAL_POINTER, &log) != SQLITE_OK || !log ||
            log->pMethods->xSync(log, SQLITE_SYNC_FULL | STORE_SYNC_WRITTEN) != SQLITE_OK)
            _exit(1);
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    sqlite3 *r = open_reader(f->path);
    assert_int_equal(tu_sql_int(r, "SELECT COUNT(*) FROM t"), 2000);
    assert_int_equal(tu_sql_int(r, "SELECT COUNT(*) FROM t WHERE n < 0"), 50);
    tu_integrity_ok(r);
    sqlite3_close(r);
}

static int64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? -1 : (int64_t)sb.st_size;
}

/* The engine's syncer syncs what is written and leaves the writer's open
 * transaction in the buffer (W5); SQLite's own sync writes it out (W1). */
static void test_syncer_leaves_the_open_transaction(void **state)
{
    struct fix *f = *state;
    sqlite3 *w = open_writer(f->path, 16);   /* the transaction spills frames into the buffer */
    tu_sql(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    sqlite3_file *log = NULL;
    assert_int_equal(sqlite3_file_control(w, "main", SQLITE_FCNTL_JOURNAL_POINTER, &log), SQLITE_OK);
    assert_non_null(log);
    char wal[128];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    int64_t committed = file_size(wal);
    tu_sql(w, "BEGIN; WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 3000) "
              "INSERT INTO t(v) SELECT randomblob(500) FROM n");
    assert_int_equal(log->pMethods->xSync(log, SQLITE_SYNC_FULL | STORE_SYNC_WRITTEN), SQLITE_OK);
    int64_t after_syncer = file_size(wal);
    assert_true(after_syncer - committed < 1 << 20);   /* at most the buffer's overflow went out */
    assert_int_equal(log->pMethods->xSync(log, SQLITE_SYNC_NORMAL), SQLITE_OK);
    assert_true(file_size(wal) > after_syncer);
    tu_sql(w, "COMMIT");
    assert_int_equal(tu_sql_int(w, "SELECT COUNT(*) FROM t"), 3000);
    sqlite3_close(w);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* W7: a thread with a pace writes the database file no faster than it; the
 * copy is whole all the same, and the pace is the thread's alone. */
static void test_paced_checkpoint(void **state)
{
    struct fix *f = *state;
    sqlite3 *w = open_writer(f->path, 2000);
    tu_sql(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    tu_sql(w, "BEGIN; WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 6000) "
              "INSERT INTO t(v) SELECT randomblob(700) FROM n; COMMIT");   /* ~5 MiB of log */
    _Atomic int64_t rate = 8 << 20;   /* 8 MiB/s: the copy takes over half a second */
    long hints = store_walbuf_hints();
    store_pace_writes(&rate);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tu_sql(w, "PRAGMA wal_checkpoint(TRUNCATE)");
    double paced = seconds_since(&t0);
    store_pace_writes(NULL);
    assert_true(store_walbuf_hints() - hints >= 16);   /* the copy went through the shim's hints */
    assert_true(paced >= 0.4);
    sqlite3 *r = open_reader(f->path);
    assert_int_equal(tu_sql_int(r, "SELECT COUNT(*) FROM t WHERE length(v) = 700"), 6000);
    sqlite3_close(r);
    sqlite3_close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_visible_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spilled_frames_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_survives_a_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewritten_commit_survives_a_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syncer_leaves_the_open_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paced_checkpoint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
