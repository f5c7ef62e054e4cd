/* store on SQLite (src/store/sqlite.c): the statements a connection caches
 * (store.h S1) and the queries the callers hold open over them. */
#include "testutil.h"

#include <malloc.h>

enum { MANY = 300 };

/* A query is used while others are prepared for the first time (ledger_check
 * holds three open and merges them): each new statement may grow the
 * connection's table of statements, and the open query must not move with
 * it. Freed memory is overwritten, so a query left behind in it fails here
 * too, not only under AddressSanitizer or valgrind. */
static void test_open_query_outlives_new_statements(void **state)
{
    (void)state;
    mallopt(M_PERTURB, 0xa5);
    struct tu *t = tu_open();
    STORE_SQL(SQL_SERIES, "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 10) "
                          "SELECT k FROM n");
    static struct store_sql many[MANY];
    static char text[MANY][32];
    for (int i = 0; i < MANY; i++) {
        snprintf(text[i], sizeof text[i], "SELECT %d", i);
        many[i] = (struct store_sql){text[i], -1};
    }
    struct store_q *q = store_query(t->st, &SQL_SERIES, "");
    int64_t sum = 0;
    for (int i = 0; i < MANY; i++) {
        if (i % 30 == 0 && store_next(q))
            sum += store_i64(q, 0);
        struct store_q *one;
        assert_int_equal(store_one(t->st, &one, &many[i], ""), 0);
        assert_int_equal(store_i64(one, 0), i);
        assert_int_equal(store_end(one), 0);
    }
    while (store_next(q))
        sum += store_i64(q, 0);
    assert_int_equal(store_end(q), 0);
    assert_int_equal(sum, 55);
    tu_close(t);
    mallopt(M_PERTURB, 0);
}

/* The same in ledger_check, whose three statements are prepared together
 * the first time it runs: the third is the first to need a larger table on
 * this connection (64 entries, then twice as many as needed). */
static void test_ledger_check_across_a_new_table(void **state)
{
    (void)state;
    mallopt(M_PERTURB, 0xa5);
    struct tu *t = tu_open();
    tu_begin(t);
    struct sim s;
    tu_sim(t, &s);
    static struct store_sql filler[MANY];
    static char text[MANY][32];
    for (int i = 0, size = 64; i < MANY; i++) {
        snprintf(text[i], sizeof text[i], "SELECT 'filler %d'", i);
        filler[i] = (struct store_sql){text[i], -1};
        struct store_q *one;
        assert_int_equal(store_one(t->st, &one, &filler[i], ""), 0);
        assert_int_equal(store_end(one), 0);
        while (size <= filler[i].slot)
            size *= 2;
        if (filler[i].slot == size - 3)
            break;   /* ledger_check's statements come next: the last of them past the table */
    }
    struct ledger_report r;
    assert_int_equal(ledger_check(&t->tx, &r), 0);
    assert_int_equal(r.violations, 0);
    tu_rollback(t);
    tu_close(t);
    mallopt(M_PERTURB, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger_check_across_a_new_table),   /* first: ledger_check's first run */
        cmocka_unit_test(test_open_query_outlives_new_statements),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
