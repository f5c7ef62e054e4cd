/* The page-cache shim (src/store/pcache.c): it may skip a truncation only
 * when no cached page is at or past the limit. Driven through the methods
 * SQLite itself would call, with the default cache underneath. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "store/store.h"

static sqlite3_pcache_methods2 m;
static const unsigned SPARE = 0x40000000u / 4096 + 1;   /* the lock-byte page, 4 KiB pages */

static sqlite3_pcache *new_cache(void)
{
    sqlite3_pcache *c = m.xCreate(4096, 64, 1);
    assert_non_null(c);
    m.xCachesize(c, 1000);
    return c;
}

static void put(sqlite3_pcache *c, unsigned key)
{
    sqlite3_pcache_page *pg = m.xFetch(c, key, 2);
    assert_non_null(pg);
    m.xUnpin(c, pg, 0);
}

static int cached(sqlite3_pcache *c, unsigned key)
{
    sqlite3_pcache_page *pg = m.xFetch(c, key, 0);
    if (pg)
        m.xUnpin(c, pg, 0);
    return pg != NULL;
}

/* A split's swap through the spare number, then the end-of-transaction
 * truncation past the database: nothing to drop, nothing dropped. */
static void test_swap_then_truncate(void **state)
{
    sqlite3_pcache *c = new_cache();
    for (unsigned k = 1; k <= 10; k++)
        put(c, k);
    sqlite3_pcache_page *a = m.xFetch(c, 4, 0), *b = m.xFetch(c, 9, 0);
    m.xRekey(c, a, 4, SPARE);
    m.xRekey(c, b, 9, 4);
    m.xRekey(c, a, SPARE, 9);
    m.xUnpin(c, a, 0);
    m.xUnpin(c, b, 0);
    m.xTruncate(c, 11);
    assert_int_equal(m.xPagecount(c), 10);
    for (unsigned k = 1; k <= 10; k++)
        assert_true(cached(c, k));
    /* A real truncation still drops what it must. */
    m.xTruncate(c, 6);
    assert_int_equal(m.xPagecount(c), 5);
    assert_true(cached(c, 5));
    assert_false(cached(c, 6));
    m.xDestroy(c);
}

/* A page left on the spare number is dropped by a truncation below it. */
static void test_parked_page_is_dropped(void **state)
{
    sqlite3_pcache *c = new_cache();
    put(c, 1);
    put(c, 2);
    sqlite3_pcache_page *a = m.xFetch(c, 2, 0);
    m.xRekey(c, a, 2, SPARE);
    m.xUnpin(c, a, 0);
    m.xTruncate(c, 3);
    assert_false(cached(c, SPARE));
    assert_int_equal(m.xPagecount(c), 1);
    /* So is a page fetched there directly. */
    put(c, SPARE);
    m.xTruncate(c, 2);
    assert_false(cached(c, SPARE));
    assert_true(cached(c, 1));
    m.xDestroy(c);
}

/* Pages past the last truncation, created or moved there, are dropped. */
static void test_new_high_pages_are_dropped(void **state)
{
    sqlite3_pcache *c = new_cache();
    put(c, 1);
    m.xTruncate(c, 2);
    put(c, 7);
    sqlite3_pcache_page *p1 = m.xFetch(c, 1, 0);
    m.xRekey(c, p1, 1, 12);
    m.xUnpin(c, p1, 0);
    m.xTruncate(c, 5);
    assert_false(cached(c, 7));
    assert_false(cached(c, 12));
    assert_int_equal(m.xPagecount(c), 0);
    m.xDestroy(c);
}

int main(void)
{
    /* As store_open does before SQLite starts; then read back what SQLite uses. */
    assert_int_equal(store_pcache_install(), 0);
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &m), SQLITE_OK);
    assert_int_equal(sqlite3_initialize(), SQLITE_OK);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_then_truncate),
        cmocka_unit_test(test_parked_page_is_dropped),
        cmocka_unit_test(test_new_high_pages_are_dropped),
    };
    return cmocka_run_group_tests_name("pcache", tests, NULL, NULL);
}
