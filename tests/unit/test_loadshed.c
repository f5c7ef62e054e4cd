/* loadshed: the CPU-aware limit on commands in flight, over an injected
 * clock (milliseconds passed in) and injected CPU samples. */
#include "testutil.h"

#include "http/loadshed.h"

/* n commands admitted at t and done at t + took_ms each, one after another. */
static void run(struct loadshed *ls, int64_t t, int n, int64_t took_ms)
{
    for (int i = 0; i < n; i++) {
        assert_true(loadshed_admit(ls, t));
        loadshed_done(ls, t + took_ms, took_ms * 1000);
    }
}

static void test_idle_machine_admits_everything(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0);
    loadshed_sample(ls, 1000, 0.5);
    loadshed_refused(ls, 1000);   /* refusals alone do not make it apply */
    for (int i = 0; i < 10000; i++)
        assert_true(loadshed_admit(ls, 1000));
    struct loadshed_state st;
    loadshed_state(ls, 1000, &st);
    assert_int_equal(st.inflight, 10000);
    assert_int_equal(st.limit, -1);
    loadshed_free(ls);
}

static void test_busy_cpus_without_refusals_admit_everything(void **state)
{
    (void)state;
    /* A closed-loop benchmark at its peak: CPUs busy, but nobody refused. */
    struct loadshed *ls = loadshed_new(0.9, 0);
    run(ls, 1000, 50, 2);
    loadshed_sample(ls, 1100, 0.99);
    for (int i = 0; i < 5000; i++)
        assert_true(loadshed_admit(ls, 1200));
    loadshed_free(ls);
}

static void test_limit_is_throughput_times_latency(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0);
    /* 100 ms windows: 500 done in [1000, 1100) at best 2 ms each, 200 in the next. */
    run(ls, 1000, 500, 2);
    run(ls, 1100, 200, 4);
    loadshed_sample(ls, 1200, 0.95);
    loadshed_refused(ls, 1250);
    struct loadshed_state st;
    loadshed_state(ls, 1250, &st);
    /* 500 per 100 ms x 2 ms = 10 in flight */
    assert_int_equal(st.limit, 10);
    for (int i = 0; i < 10; i++)
        assert_true(loadshed_admit(ls, 1250));
    assert_false(loadshed_admit(ls, 1250));
    /* one done: one more fits */
    loadshed_done(ls, 1251, 1000);
    assert_true(loadshed_admit(ls, 1251));
    assert_false(loadshed_admit(ls, 1251));
    /* a request that ends without running frees its place, teaching nothing */
    loadshed_cancel(ls);
    assert_true(loadshed_admit(ls, 1252));
    loadshed_free(ls);
}

static void test_target_latency_is_a_floor(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 10);   /* 10 ms */
    run(ls, 1000, 500, 1);
    loadshed_sample(ls, 1100, 0.95);
    loadshed_refused(ls, 1150);
    struct loadshed_state st;
    loadshed_state(ls, 1150, &st);
    assert_int_equal(st.limit, 50);   /* 500 per 100 ms x max(1 ms, 10 ms) */
    loadshed_free(ls);
}

static void test_limit_lapses_a_second_after_the_last_refusal(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0);
    run(ls, 1000, 100, 1);                    /* 100 per 100 ms x 1 ms: 1 in flight */
    run(ls, 1100, 100, 1);
    for (int64_t t = 1200; t <= 3000; t += 100)
        loadshed_sample(ls, t, 0.95);
    loadshed_refused(ls, 1250);
    assert_true(loadshed_admit(ls, 1250));
    assert_false(loadshed_admit(ls, 1250));   /* that refusal counts too: at 1250 */
    assert_false(loadshed_admit(ls, 1900));   /* and so does this one, at 1900 */
    /* no refusal for a second: everything goes again, however busy */
    assert_true(loadshed_admit(ls, 2950));
    assert_true(loadshed_admit(ls, 2950));
    loadshed_free(ls);
}

static void test_limit_holds_through_a_moment_of_idle_cpus(void **state)
{
    (void)state;
    /* A flood: busy CPUs and refusals. Then the writer waits 300 ms for the
     * disk, and the CPUs idle: the flood has not gone, and what is admitted
     * now only waits with the rest. */
    struct loadshed *ls = loadshed_new(0.9, 0);
    run(ls, 1000, 100, 1);                    /* 1 in flight */
    run(ls, 1100, 100, 1);
    loadshed_sample(ls, 1200, 0.99);
    loadshed_refused(ls, 1210);
    loadshed_sample(ls, 1300, 0.40);
    loadshed_sample(ls, 1400, 0.35);
    assert_true(loadshed_admit(ls, 1450));
    assert_false(loadshed_admit(ls, 1450));
    /* a second of calm CPUs, refusals or not, and the limit lapses */
    for (int64_t t = 1500; t <= 2300; t += 100)
        loadshed_sample(ls, t, 0.5);
    loadshed_refused(ls, 2250);
    assert_true(loadshed_admit(ls, 2250));
    assert_true(loadshed_admit(ls, 2250));
    loadshed_free(ls);
}

static void test_throughput_is_remembered_ten_seconds(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0);
    run(ls, 1000, 1000, 1);            /* 1000 per 100 ms, once */
    for (int64_t t = 1100; t < 9000; t += 100)
        run(ls, t, 10, 1);             /* then little, at 1 ms */
    loadshed_sample(ls, 9000, 0.95);
    loadshed_refused(ls, 9050);
    struct loadshed_state st;
    loadshed_state(ls, 9050, &st);
    assert_int_equal(st.limit, 10);    /* 1000 x 1 ms: not 10 x 1 ms */
    loadshed_state(ls, 12000, &st);    /* ten seconds on, the peak is forgotten */
    loadshed_refused(ls, 12000);
    loadshed_state(ls, 12000, &st);
    assert_int_equal(st.limit, -1);    /* and nothing recent is known: no limit */
    loadshed_free(ls);
}

static void test_cpu_reading(void **state)
{
    (void)state;
    struct loadshed_cpu prev = {0};
    assert_true(loadshed_cpu_read(&prev) < 0);   /* the first reading has nothing to compare with */
    assert_true(prev.total > 0 && prev.busy <= prev.total);
    volatile double x = 0;
    for (int i = 0; i < 20000000; i++)
        x += i;
    double busy = loadshed_cpu_read(&prev);
    assert_true(busy > 0 && busy <= 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_machine_admits_everything),
        cmocka_unit_test(test_busy_cpus_without_refusals_admit_everything),
        cmocka_unit_test(test_limit_is_throughput_times_latency),
        cmocka_unit_test(test_target_latency_is_a_floor),
        cmocka_unit_test(test_limit_lapses_a_second_after_the_last_refusal),
        cmocka_unit_test(test_limit_holds_through_a_moment_of_idle_cpus),
        cmocka_unit_test(test_throughput_is_remembered_ten_seconds),
        cmocka_unit_test(test_cpu_reading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
