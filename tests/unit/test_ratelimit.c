/* ratelimit: token buckets per key (http/ratelimit.h), on an injected clock
 * (every call names its own now_ms). */
#include "testutil.h"

#include "http/ratelimit.h"

/* A bucket starts full (burst), refills at rate a second up to burst, and a
 * refusal says when the next token is back. */
static void test_burst_refill_and_retry_after(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(2.0, 4.0, 64);   /* 2 a second, 4 at once */
    assert_non_null(rl);
    int wait = 0;
    for (int i = 0; i < 4; i++)
        assert_int_equal(ratelimit_take(rl, "t:1", 1000, &wait), 0);
    assert_int_equal(ratelimit_take(rl, "t:1", 1000, &wait), -1);
    assert_int_equal(wait, 1);                                   /* half a second, said as 1 */
    assert_int_equal(ratelimit_take(rl, "t:2", 1000, &wait), 0);  /* another key: its own bucket */
    assert_int_equal(ratelimit_take(rl, "t:1", 1500, &wait), 0);  /* one token back after 0.5 s */
    assert_int_equal(ratelimit_take(rl, "t:1", 1500, &wait), -1);
    assert_int_equal(ratelimit_take(rl, "t:1", 60000, &wait), 0);  /* long idle: full, never more */
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_take(rl, "t:1", 60000, &wait), 0);
    assert_int_equal(ratelimit_take(rl, "t:1", 60000, &wait), -1);
    ratelimit_free(rl);

    struct ratelimit *slow = ratelimit_new(0.1, 1.0, 64);   /* one per 10 s */
    assert_int_equal(ratelimit_take(slow, "a", 0, &wait), 0);
    assert_int_equal(ratelimit_take(slow, "a", 0, &wait), -1);
    assert_int_equal(wait, 10);
    ratelimit_free(slow);
}

/* ratelimit_give returns what a take took (the server: a request the
 * per-address limit refused costs its token nothing), never past burst. */
static void test_give_back(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1.0, 2.0, 64);
    int wait = 0;
    assert_int_equal(ratelimit_take(rl, "t:7", 0, &wait), 0);
    assert_int_equal(ratelimit_take(rl, "t:7", 0, &wait), 0);
    ratelimit_give(rl, "t:7", 0);
    assert_int_equal(ratelimit_take(rl, "t:7", 0, &wait), 0);
    assert_int_equal(ratelimit_take(rl, "t:7", 0, &wait), -1);
    ratelimit_give(rl, "t:8", 0);   /* a full bucket stays at burst */
    ratelimit_give(rl, "t:8", 0);
    assert_int_equal(ratelimit_take(rl, "t:8", 0, &wait), 0);
    assert_int_equal(ratelimit_take(rl, "t:8", 0, &wait), 0);
    assert_int_equal(ratelimit_take(rl, "t:8", 0, &wait), -1);
    ratelimit_free(rl);
}

/* Full of keys, a new one takes the slot of the one idle longest among
 * those probed: it starts full, and the others keep their buckets. */
static void test_full_forgets_the_idlest(void **state)
{
    (void)state;
    struct ratelimit *rl = ratelimit_new(1.0, 1.0, 4);
    int wait = 0;
    char key[16];
    for (int i = 0; i < 64; i++) {   /* many more keys than slots: each is served once */
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(ratelimit_take(rl, key, 1000 + i, &wait), 0);
    }
    assert_int_equal(ratelimit_take(rl, "k63", 1063, &wait), -1);   /* the newest is remembered */
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_refill_and_retry_after),
        cmocka_unit_test(test_give_back),
        cmocka_unit_test(test_full_forgets_the_idlest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
