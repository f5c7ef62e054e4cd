/* The small-block allocator under SQLite (src/store/smalloc.c, store.h S9):
 * sizes and contents hold through malloc and realloc, a freed block is used
 * again on its thread, what a thread keeps is bounded, blocks may be freed
 * on another thread, and SQLite runs on it. Under AddressSanitizer it stays
 * out (install returns 1) and only what holds for any allocator is checked. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

static int installed;   /* 0: ours; 1: SQLite's own (sanitizers) */

static void fill(unsigned char *p, int n, int seed)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int holds(const unsigned char *p, int n, int seed)
{
    for (int i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* Every size up to past the largest class: at least what was asked for,
 * 8-byte aligned, and all of it usable. */
static void test_sizes_and_alignment(void **state)
{
    (void)state;
    for (int n = 1; n <= 3000; n += n < 200 ? 1 : 37) {
        unsigned char *p = sqlite3_malloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 8, 0);
        int usable = sqlite3_msize(p);
        assert_true(usable >= n);
        fill(p, usable, n);
        assert_true(holds(p, usable, n));
        sqlite3_free(p);
    }
}

/* Growing and shrinking keep the contents, within a class and across. */
static void test_realloc_keeps_contents(void **state)
{
    (void)state;
    unsigned char *p = sqlite3_malloc(10);
    fill(p, 10, 3);
    for (int n = 11; n < 5000; n = n * 3 / 2) {
        p = sqlite3_realloc(p, n);
        assert_non_null(p);
        assert_true(holds(p, 10, 3));
    }
    p = sqlite3_realloc(p, 4);
    assert_non_null(p);
    assert_true(holds(p, 4, 3));
    sqlite3_free(p);
}

/* A block freed on a thread is the next one of its size there. */
static void test_freed_block_is_used_again(void **state)
{
    (void)state;
    if (installed)
        skip();
    void *a = sqlite3_malloc(100);
    sqlite3_free(a);
    void *b = sqlite3_malloc(97);   /* the same class */
    assert_ptr_equal(a, b);
    sqlite3_free(b);
}

/* A thread keeps at most 128 KiB of free blocks per class, whatever it frees. */
static void test_what_a_thread_keeps_is_bounded(void **state)
{
    (void)state;
    if (installed)
        skip();
    enum { N = 20000 };
    static void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = sqlite3_malloc(40 + i % 600);
    for (int i = 0; i < N; i++)
        sqlite3_free(p[i]);
    size_t kept = store_malloc_cached();
    assert_true(kept > 0);
    assert_true(kept <= 16 * (128u << 10));
    for (int i = 0; i < N; i++)   /* and they serve new allocations */
        p[i] = sqlite3_malloc(40 + i % 600);
    assert_true(store_malloc_cached() < kept);
    for (int i = 0; i < N; i++)
        sqlite3_free(p[i]);
}

static void *free_all(void *arg)
{
    void **p = arg;
    for (int i = 0; i < 1000; i++) {
        assert_true(holds(p[i], 64, i));
        sqlite3_free(p[i]);
    }
    size_t *kept = malloc(sizeof *kept);
    *kept = store_malloc_cached();
    return kept;   /* the thread's blocks are given back as it exits (valgrind: no leak) */
}

/* Blocks allocated on one thread and freed on another join the freeing
 * thread's lists, which go back to the system with it. */
static void test_freed_on_another_thread(void **state)
{
    (void)state;
    static void *p[1000];
    for (int i = 0; i < 1000; i++) {
        p[i] = sqlite3_malloc(64);
        fill(p[i], 64, i);
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_all, p), 0);
    size_t *kept;
    assert_int_equal(pthread_join(th, (void **)&kept), 0);
    if (!installed)
        assert_true(*kept >= 64 * 1000);
    free(kept);
}

/* SQLite itself on it: a table written, read back and sorted, in memory. */
static void test_sqlite_runs_on_it(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t(k INTEGER PRIMARY KEY, s TEXT UNIQUE);"
                                  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
                                  "INSERT INTO t SELECT i, printf('%0*d', 1 + i % 300, i) FROM n;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(length(s)), max(s) FROM t", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 5000);
    long long len = 0;
    for (int i = 1; i <= 5000; i++) {
        int digits = i < 10 ? 1 : i < 100 ? 2 : i < 1000 ? 3 : 4, w = 1 + i % 300;
        len += w > digits ? w : digits;
    }
    assert_int_equal(sqlite3_column_int64(q, 1), len);
    assert_string_equal((const char *)sqlite3_column_text(q, 2), "902");   /* 902 % 300 == 2: unpadded; 903 on are padded again */
    sqlite3_finalize(q);
    sqlite3_close(db);
}

int main(void)
{
    installed = store_malloc_install();
    assert_true(installed == 0 || installed == 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_and_alignment),     cmocka_unit_test(test_realloc_keeps_contents),
        cmocka_unit_test(test_freed_block_is_used_again), cmocka_unit_test(test_what_a_thread_keeps_is_bounded),
        cmocka_unit_test(test_freed_on_another_thread), cmocka_unit_test(test_sqlite_runs_on_it),
    };
    return cmocka_run_group_tests_name("smalloc", tests, NULL, NULL);
}
