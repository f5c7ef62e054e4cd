/* The page cache (src/store/pcache.c), driven through the methods SQLite
 * calls: what SQLite requires of it (P1-P5) against a model of what it
 * holds, the truncations it may skip, and SQLite itself on a cache so small
 * that nearly every page it touches is evicted or spilled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "testutil.h"

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

/* ---- P1-P5 against a model ---------------------------------------------------------------------- */

#define KEYS 96
struct model {
    int present[KEYS + 1];    /* the cache may still hold it (unpinned) or must (pinned) */
    int pinned[KEYS + 1];
    unsigned tag[KEYS + 1];   /* what its content must read */
    sqlite3_pcache_page *pg[KEYS + 1];
};

static unsigned content(sqlite3_pcache_page *pg) { return *(unsigned *)pg->pBuf; }

/* Fetches key as SQLite would and checks the answer against the model. */
static sqlite3_pcache_page *model_fetch(sqlite3_pcache *c, struct model *md, unsigned key, int flag,
                                        unsigned *next_tag)
{
    sqlite3_pcache_page *pg = m.xFetch(c, key, flag);
    if (md->pinned[key]) {
        assert_ptr_equal(pg, md->pg[key]);   /* P2: a pinned page stays */
        assert_int_equal(content(pg), md->tag[key]);
        return pg;
    }
    if (!pg) {
        md->present[key] = 0;   /* evicted, or refused: either may happen to an unpinned page */
        return NULL;
    }
    if (md->present[key] && *(void **)pg->pExtra) {
        assert_int_equal(content(pg), md->tag[key]);   /* P1: found with its content */
    } else {                                           /* new, or new again after an eviction */
        assert_null(*(void **)pg->pExtra);             /* P1: a new page, its header to set up */
        md->tag[key] = (*next_tag)++;
        memcpy(pg->pBuf, &md->tag[key], sizeof md->tag[key]);
        *(void **)pg->pExtra = pg;                      /* as SQLite's header would */
        md->present[key] = 1;
    }
    md->pinned[key] = 1;
    md->pg[key] = pg;
    return pg;
}

static void model_run(int purgeable, unsigned seed)
{
    sqlite3_pcache *c = m.xCreate(1024, 72, purgeable);
    assert_non_null(c);
    unsigned max = 24, tag = 1;
    m.xCachesize(c, (int)max);
    struct model md;
    memset(&md, 0, sizeof md);
    srand(seed);
    for (int step = 0; step < 20000; step++) {
        unsigned key = 1 + (unsigned)rand() % KEYS;
        int op = rand() % 100;
        if (op < 45) {
            model_fetch(c, &md, key, rand() % 3, &tag);
        } else if (op < 80) {
            if (md.pinned[key]) {
                int discard = !purgeable || rand() % 8 == 0;   /* P3: SQLite only discards there */
                m.xUnpin(c, md.pg[key], discard);
                md.pinned[key] = 0;
                if (discard)
                    md.present[key] = 0;
            }
        } else if (op < 90) {
            unsigned to = 1 + (unsigned)rand() % KEYS;
            if (md.pinned[key] && to != key && !md.pinned[to]) {
                m.xRekey(c, md.pg[key], key, to);
                md.present[to] = 1, md.pinned[to] = 1, md.tag[to] = md.tag[key], md.pg[to] = md.pg[key];
                md.present[key] = 0, md.pinned[key] = 0;
            }
        } else if (op < 93) {
            unsigned limit = 1 + (unsigned)rand() % (KEYS + 8);
            m.xTruncate(c, limit);
            for (unsigned k = limit; k <= KEYS; k++)
                md.present[k] = 0, md.pinned[k] = 0;   /* P5: pinned ones too */
        } else if (op < 96) {
            max = 4 + (unsigned)rand() % 40;
            m.xCachesize(c, (int)max);
        } else {
            m.xShrink(c);
        }
        /* P3, P4: what the cache holds. */
        int count = m.xPagecount(c), npinned = 0;
        for (unsigned k = 1; k <= KEYS; k++)
            npinned += md.pinned[k];
        assert_true(count >= npinned);
        if (purgeable)
            assert_true((unsigned)count <= (max > (unsigned)npinned ? max : (unsigned)npinned) + 1);
        else
            for (unsigned k = 1; k <= KEYS; k++)
                if (md.present[k])
                    assert_true(md.pinned[k]);   /* never unpinned without discard, so always pinned */
    }
    /* Whatever it still holds, it holds as the model says. */
    for (unsigned k = 1; k <= KEYS; k++) {
        sqlite3_pcache_page *pg = m.xFetch(c, k, 0);
        if (pg) {
            assert_true(md.present[k]);
            assert_int_equal(content(pg), md.tag[k]);
        } else {
            assert_false(md.pinned[k]);
        }
    }
    m.xDestroy(c);
}

static void test_model_purgeable(void **state)
{
    for (unsigned seed = 1; seed <= 8; seed++)
        model_run(1, seed);
}

static void test_model_in_memory(void **state)
{
    for (unsigned seed = 1; seed <= 4; seed++)
        model_run(0, seed);
}

/* P4: flag 1 is refused once nine in ten are pinned, flag 2 is not; the
 * size holds again once they are unpinned. */
static void test_pinned_pages_and_the_size(void **state)
{
    sqlite3_pcache *c = m.xCreate(1024, 72, 1);
    m.xCachesize(c, 10);
    sqlite3_pcache_page *pg[12];
    for (unsigned k = 1; k <= 9; k++)
        assert_non_null(pg[k] = m.xFetch(c, k, 1));
    assert_null(m.xFetch(c, 10, 1));
    assert_non_null(pg[10] = m.xFetch(c, 10, 2));
    assert_non_null(pg[11] = m.xFetch(c, 11, 2));   /* past the size: nothing unpinned to recycle */
    assert_int_equal(m.xPagecount(c), 11);
    for (unsigned k = 1; k <= 11; k++)
        m.xUnpin(c, pg[k], 0);
    assert_true(m.xPagecount(c) <= 10);
    m.xCachesize(c, 3);
    assert_int_equal(m.xPagecount(c), 3);
    /* A full cache recycles: the count stays at the size. */
    for (unsigned k = 20; k < 60; k++)
        put(c, k);
    assert_int_equal(m.xPagecount(c), 3);
    m.xShrink(c);
    assert_int_equal(m.xPagecount(c), 0);
    m.xDestroy(c);
}

/* A page often fetched outlives pages fetched once (CLOCK's second chance). */
static void test_hot_page_stays(void **state)
{
    sqlite3_pcache *c = m.xCreate(1024, 72, 1);
    m.xCachesize(c, 16);
    for (unsigned k = 100; k < 5000; k++) {
        put(c, 1);
        put(c, k);
    }
    assert_true(cached(c, 1));
    m.xDestroy(c);
}

/* ---- SQLite on a cache of a few pages ------------------------------------------------------------- */

/* Splits, spills, rollbacks and a shrinking file, with 10 pages of cache:
 * what is committed reads back, what is rolled back is gone, and the file
 * is sound. */
static void test_sqlite_on_a_tiny_cache(void **state)
{
    char dir[] = "/tmp/topup-pcache-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    tu_sql(db, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; PRAGMA cache_size=10;"
               "CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v INTEGER, pad BLOB)");
    int64_t want = 0;
    srand(7);
    for (int round = 0; round < 40; round++) {
        tu_sql(db, "BEGIN");
        char sql[256];
        int64_t delta = 0;
        for (int i = 0; i < 200; i++) {
            int id = rand() % 4000, v = rand() % 1000;
            snprintf(sql, sizeof sql,
                     "INSERT INTO t(id, k, v, pad) VALUES (%d, 'k%d', %d, randomblob(%d)) "
                     "ON CONFLICT(id) DO UPDATE SET v = v + %d",
                     id, rand(), v, 50 + rand() % 300, v);
            tu_sql(db, sql);
            delta += v;
        }
        tu_sql(db, "SAVEPOINT s; DELETE FROM t WHERE id % 7 = 3; UPDATE t SET pad = randomblob(900) WHERE id % 5 = 1;"
                   "ROLLBACK TO s; RELEASE s");
        if (round % 3 == 2) {
            tu_sql(db, "ROLLBACK");
        } else {
            tu_sql(db, "COMMIT");
            want += delta;
        }
        assert_int_equal(tu_sql_int(db, "SELECT COALESCE(SUM(v), 0) FROM t"), want);
        if (round % 10 == 9) {   /* the file shrinks: pages past its end are dropped */
            tu_sql(db, "BEGIN; CREATE TABLE junk AS SELECT * FROM t; DROP TABLE junk; COMMIT; VACUUM");
            tu_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        }
    }
    tu_integrity_ok(db);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    /* Read again from the file, through a fresh cache. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(tu_sql_int(db, "SELECT COALESCE(SUM(v), 0) FROM t"), want);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    tu_rm_dir(dir);
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
        cmocka_unit_test(test_model_purgeable),
        cmocka_unit_test(test_model_in_memory),
        cmocka_unit_test(test_pinned_pages_and_the_size),
        cmocka_unit_test(test_hot_page_stays),
        cmocka_unit_test(test_sqlite_on_a_tiny_cache),
    };
    return cmocka_run_group_tests_name("pcache", tests, NULL, NULL);
}
