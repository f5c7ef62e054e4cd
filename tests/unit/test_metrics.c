/* metrics: answers counted per route and thread, summed (http/metrics.h). */
#include "testutil.h"

#include <pthread.h>

#include "http/metrics.h"

/* Rows: an answer's route, status and time, and the bucket it must fall in
 * (the first whose bound it does not pass). */
static const struct {
    int status;
    int64_t us;
    int bucket;
} rows[] = {
    {200, 0, 0},          /* nothing: the first bucket */
    {201, 250, 0},        /* on a bound: that bucket (le, "less or equal") */
    {404, 251, 1},
    {503, 999999, 10},
    {500, 1000000, 10},
    {200, 5000000, 11},   /* past every bound: +Inf */
    {100, -7, 0},         /* a clock that went back: 0 */
};

static void test_buckets_and_classes(void **state)
{
    (void)state;
    struct metrics_route before, after;
    metrics_route_sum(3, &before);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        metrics_route_sum(3, &before);
        metrics_answered(3, rows[i].status, rows[i].us);
        metrics_route_sum(3, &after);
        for (int b = 0; b < METRICS_BUCKETS; b++)   /* cumulative: this bucket and every later one */
            assert_int_equal(after.buckets[b] - before.buckets[b], b >= rows[i].bucket);
        assert_int_equal(after.count - before.count, 1);
        assert_int_equal(after.sum_us - before.sum_us, rows[i].us < 0 ? 0 : rows[i].us);
        assert_int_equal(after.by_class[rows[i].status / 100 - 1] - before.by_class[rows[i].status / 100 - 1], 1);
    }
    metrics_route_sum(4, &after);   /* another route saw none of it */
    assert_int_equal(after.count, 0);
}

/* No route (-1) and a route past METRICS_ROUTES count apart from route 0. */
static void test_no_route(void **state)
{
    (void)state;
    struct metrics_route none, zero;
    metrics_answered(-1, 404, 10);
    metrics_answered(METRICS_ROUTES + 5, 405, 10);
    metrics_route_sum(-1, &none);
    metrics_route_sum(0, &zero);
    assert_int_equal(none.by_class[3], 2);
    assert_int_equal(zero.count, 0);
}

static void *answer_many(void *arg)
{
    for (int i = 0; i < 10000; i++)
        metrics_answered(7, 200, i % 3000);
    return arg;
}

/* M1: threads count apart, and the sums see every one, also of threads
 * that have ended. */
static void test_threads_sum(void **state)
{
    (void)state;
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, answer_many, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct metrics_route m;
    metrics_route_sum(7, &m);
    assert_int_equal(m.count, 40000);
    assert_int_equal(m.by_class[1], 40000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_and_classes),
        cmocka_unit_test(test_no_route),
        cmocka_unit_test(test_threads_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
