/* loadshed: the CPU-aware limit on commands in flight, over an injected
 * clock (milliseconds passed in) and injected CPU samples. */
#include "testutil.h"

#include <sys/resource.h>

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
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
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
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
    run(ls, 1000, 50, 2);
    loadshed_sample(ls, 1100, 0.99);
    for (int i = 0; i < 5000; i++)
        assert_true(loadshed_admit(ls, 1200));
    loadshed_free(ls);
}

static void test_limit_is_throughput_times_latency(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
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
    struct loadshed *ls = loadshed_new(0.9, 10, 0, 50, 1);   /* 10 ms */
    run(ls, 1000, 500, 1);
    loadshed_sample(ls, 1100, 0.95);
    loadshed_refused(ls, 1150);
    struct loadshed_state st;
    loadshed_state(ls, 1150, &st);
    assert_int_equal(st.limit, 50);   /* 500 per 100 ms x max(1 ms, 10 ms) */
    loadshed_free(ls);
}

/* A flood: more in flight and waiting than done in flood_ms at the best
 * throughput; full: as many in flight as the product, gain aside and excess
 * demand or not. */
static void test_flood_and_full(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 3, 10, 50, 1);
    assert_false(loadshed_flood(ls, 1000, 100000, 0));   /* nothing known: never */
    assert_false(loadshed_full(ls, 1000));
    run(ls, 1000, 400, 1);   /* 400 per 100 ms: 200 in 50 ms; x 3 ms = 12 in flight */
    for (int t = 1100; t < 2000; t += 100)
        run(ls, t, 100, 1);
    assert_false(loadshed_flood(ls, 1950, 100000, 0));   /* shown in nine windows only */
    run(ls, 2000, 100, 1);
    for (int i = 0; i < 11; i++)
        assert_true(loadshed_admit(ls, 2150));
    assert_false(loadshed_full(ls, 2150));
    assert_false(loadshed_flood(ls, 2150, 189, 0));   /* 11 + 189 = 200: not more */
    assert_true(loadshed_flood(ls, 2150, 190, 0));
    /* once one, it lasts while more than half of that wait */
    assert_true(loadshed_flood(ls, 2150, 90, 1));
    assert_false(loadshed_flood(ls, 2150, 89, 1));   /* 11 + 89 = 100 */
    assert_true(loadshed_admit(ls, 2150));
    assert_true(loadshed_full(ls, 2150));   /* no refusal, no busy CPU: full all the same */
    loadshed_done(ls, 2151, 1000);
    assert_false(loadshed_full(ls, 2151));
    /* the best window is remembered ten seconds, then forgotten */
    assert_true(loadshed_flood(ls, 11099, 190, 0));
    assert_false(loadshed_flood(ls, 12300, 100000, 1));
    loadshed_free(ls);

    /* a light load's best is its demand's: below flood_min, no flood */
    ls = loadshed_new(0.9, 3, 10, 50, 256);
    for (int t = 1000; t < 2100; t += 100)
        run(ls, t, 5, 1);
    assert_false(loadshed_flood(ls, 2150, 256, 0));   /* 2.5 worth, but not more than 256 */
    assert_true(loadshed_flood(ls, 2150, 257, 0));
    assert_true(loadshed_flood(ls, 2150, 129, 1));
    assert_false(loadshed_flood(ls, 2150, 128, 1));
    loadshed_free(ls);
}

static void test_limit_lapses_a_second_after_the_last_refusal(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
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
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
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

/* A flood that was busy a moment ago (the limit applies for a second) but
 * leaves the CPUs calm now (the gain answers to latency alone). */
static void busy_then_calm(struct loadshed *ls, int64_t t)
{
    loadshed_sample(ls, t, 0.95);
    loadshed_sample(ls, t, 0.5);
}

static void test_slow_commands_cut_the_limit_fast_ones_restore_it(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 10, 50, 1);   /* p99 aim: 10 ms */
    run(ls, 1000, 500, 2);                 /* 500 per 100 ms x 2 ms = 10 in flight */
    run(ls, 1100, 500, 2);
    busy_then_calm(ls, 1150);
    loadshed_refused(ls, 1150);
    struct loadshed_state st;
    loadshed_state(ls, 1150, &st);
    assert_int_equal(st.limit, 10);
    /* [1200, 1300): 100 commands, 2 of them over 10 ms: judged when the next window starts */
    run(ls, 1200, 98, 2);
    run(ls, 1200, 2, 40);
    loadshed_state(ls, 1299, &st);
    assert_int_equal(st.limit, 10);
    loadshed_done(ls, 1300, 2000);        /* the first of [1300, 1400): 2% were slow */
    loadshed_refused(ls, 1300);
    loadshed_state(ls, 1300, &st);
    assert_int_equal(st.limit, 7);        /* 10 x 0.7 */
    for (int i = 0; i < 7; i++)
        assert_true(loadshed_admit(ls, 1300));
    assert_false(loadshed_admit(ls, 1300));
    for (int i = 0; i < 7; i++)
        loadshed_done(ls, 1301, 2000);
    /* [1300, 1400) and the next slow again: 0.7 x 0.7 x 0.7 */
    run(ls, 1300, 50, 30);
    run(ls, 1400, 50, 30);
    loadshed_done(ls, 1500, 2000);
    loadshed_refused(ls, 1500);
    loadshed_state(ls, 1500, &st);
    assert_true(st.gain > 0.34 && st.gain < 0.35);
    assert_int_equal(st.limit, 4);        /* 10 x 0.343, rounded up */
    /* exactly 1% slow is within the aim: windows of 100 with one slow grow it back */
    for (int64_t t = 1500; t < 2900; t += 100) {
        busy_then_calm(ls, t);
        run(ls, t, 99, 2);
        run(ls, t, 1, 50);
    }
    loadshed_done(ls, 2900, 2000);
    loadshed_refused(ls, 2900);
    busy_then_calm(ls, 2900);
    loadshed_state(ls, 2900, &st);
    assert_true(st.gain == 1.0);
    assert_int_equal(st.limit, 10);
    /* windows with fewer than 20 commands say nothing */
    run(ls, 2900, 5, 80);
    loadshed_done(ls, 3000, 2000);
    loadshed_state(ls, 3000, &st);
    assert_true(st.gain == 1.0);
    loadshed_free(ls);
}

static void test_busy_cpus_cut_the_limit(void **state)
{
    (void)state;
    /* Fast commands, but the flood keeps the CPUs above cpu_limit: admitted
     * requests would wait for a CPU outside any queue of ours. */
    struct loadshed *ls = loadshed_new(0.9, 0, 10, 50, 1);
    run(ls, 1000, 500, 2);
    run(ls, 1100, 500, 2);                 /* [1000, 1100) judged at 1100: CPUs not sampled yet */
    loadshed_sample(ls, 1150, 0.97);
    loadshed_refused(ls, 1150);
    run(ls, 1200, 100, 1);                 /* [1100, 1200) judged: busy, x 0.7 */
    run(ls, 1300, 100, 1);                 /* [1200, 1300): x 0.7 again */
    loadshed_done(ls, 1400, 1000);         /* [1300, 1400): and again */
    struct loadshed_state st;
    loadshed_state(ls, 1400, &st);
    assert_true(st.gain > 0.34 && st.gain < 0.35);
    /* 500 per 100 ms x 1 ms (the shortest, now) x 0.343, rounded up */
    assert_int_equal(st.limit, 2);
    /* calm CPUs: a step back per window */
    loadshed_sample(ls, 1400, 0.6);
    run(ls, 1400, 100, 1);
    loadshed_done(ls, 1500, 1000);
    loadshed_state(ls, 1500, &st);
    assert_true(st.gain > 0.39 && st.gain < 0.40);
    loadshed_free(ls);
}

/* Busy CPUs that keep up with their demand (no refusals) leave the gain
 * whole: the first refusal of an overload applies the whole product, and
 * cuts follow from there, window by window. */
static void test_busy_without_refusals_keeps_the_gain_whole(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 10, 50, 1);
    for (int64_t t = 1000; t < 2000; t += 100) {   /* a closed loop at its peak: busy, nothing refused */
        loadshed_sample(ls, t, 0.97);
        run(ls, t, 500, 2);
    }
    loadshed_done(ls, 2000, 2000);
    struct loadshed_state st;
    loadshed_state(ls, 2000, &st);
    assert_true(st.gain == 1.0);
    assert_int_equal(st.limit, -1);
    loadshed_refused(ls, 2010);
    loadshed_state(ls, 2010, &st);
    assert_int_equal(st.limit, 10);        /* 500 per 100 ms x 2 ms, all of it */
    run(ls, 2010, 20, 2);                  /* [2000, 2100): 21 commands, the CPUs busy */
    loadshed_done(ls, 2100, 2000);         /* judged: x 0.7 */
    loadshed_state(ls, 2100, &st);
    assert_int_equal(st.limit, 7);
    loadshed_free(ls);
}

/* While the limit applies, full means the limit is reached: a command read
 * then would only be refused (net.h: held connections and floods wait). */
static void test_full_at_the_limit_while_it_applies(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 10, 50, 1);
    run(ls, 1000, 500, 2);                 /* 500 per 100 ms x 2 ms = 10 in flight */
    run(ls, 1100, 500, 2);
    for (int i = 0; i < 4; i++)
        assert_true(loadshed_admit(ls, 1150));
    assert_false(loadshed_full(ls, 1150));  /* no limit: the product, 10 */
    loadshed_sample(ls, 1150, 0.97);
    loadshed_refused(ls, 1150);
    run(ls, 1200, 100, 2);                 /* [1100, 1200) judged: busy, x 0.7 */
    run(ls, 1300, 100, 2);                 /* and again: 10 x 0.49, rounded up: 5 */
    struct loadshed_state st;
    loadshed_state(ls, 1300, &st);
    assert_int_equal(st.limit, 5);
    assert_int_equal(st.inflight, 4);
    assert_false(loadshed_full(ls, 1300));
    assert_true(loadshed_admit(ls, 1300));
    assert_true(loadshed_full(ls, 1300));  /* 5 of 5, though the product is 10 */
    assert_false(loadshed_admit(ls, 1300));
    loadshed_free(ls);
}

static void test_no_aim_no_gain(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
    run(ls, 1000, 500, 2);
    run(ls, 1100, 500, 50);                /* all slow: nobody is counting */
    loadshed_done(ls, 1200, 2000);
    loadshed_sample(ls, 1200, 0.95);
    loadshed_refused(ls, 1200);
    struct loadshed_state st;
    loadshed_state(ls, 1200, &st);
    assert_true(st.gain == 1.0);
    assert_int_equal(st.limit, 10);
    loadshed_free(ls);
}

static void test_throughput_is_remembered_ten_seconds(void **state)
{
    (void)state;
    struct loadshed *ls = loadshed_new(0.9, 0, 0, 50, 1);
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
    struct loadshed_cpu prev = LOADSHED_CPU_INIT;
    assert_true(loadshed_cpu_read(&prev) < 0);   /* the first reading has nothing to compare with */
    assert_true(prev.total > 0 && prev.busy <= prev.total);
    volatile double x = 0;
    for (int i = 0; i < 20000000; i++)
        x += i;
    double busy = loadshed_cpu_read(&prev);
    assert_true(busy > 0 && busy <= 1.0);
    /* the file stays open: read again, however many descriptors are taken since */
    int kept = prev.fd;
    assert_true(kept >= 0);
    struct rlimit was, none;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    none = was;
    none.rlim_cur = 3;   /* stdin, stdout, stderr: nothing more could be opened */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
    for (int i = 0; i < 20000000; i++)
        x += i;
    busy = loadshed_cpu_read(&prev);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    assert_true(busy > 0 && busy <= 1.0);
    assert_int_equal(prev.fd, kept);
    loadshed_cpu_close(&prev);
    assert_int_equal(prev.fd, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_machine_admits_everything),
        cmocka_unit_test(test_busy_cpus_without_refusals_admit_everything),
        cmocka_unit_test(test_limit_is_throughput_times_latency),
        cmocka_unit_test(test_target_latency_is_a_floor),
        cmocka_unit_test(test_flood_and_full),
        cmocka_unit_test(test_limit_lapses_a_second_after_the_last_refusal),
        cmocka_unit_test(test_limit_holds_through_a_moment_of_idle_cpus),
        cmocka_unit_test(test_slow_commands_cut_the_limit_fast_ones_restore_it),
        cmocka_unit_test(test_busy_cpus_cut_the_limit),
        cmocka_unit_test(test_full_at_the_limit_while_it_applies),
        cmocka_unit_test(test_busy_without_refusals_keeps_the_gain_whole),
        cmocka_unit_test(test_no_aim_no_gain),
        cmocka_unit_test(test_throughput_is_remembered_ten_seconds),
        cmocka_unit_test(test_cpu_reading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
