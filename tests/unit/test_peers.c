/* peers: open connections counted per client address (http/peers.h). */
#include "testutil.h"

#include "http/peers.h"

/* A limit refuses the connection past it and counts nothing for it; an
 * end frees a place; other addresses have their own count. */
static void test_limit_per_address(void **state)
{
    (void)state;
    struct peers *p = peers_new(8);
    assert_non_null(p);
    const uint32_t a = 0x0100007f, b = 0x0200007f;   /* 127.0.0.1, 127.0.0.2 */
    for (int i = 0; i < 3; i++)
        assert_int_equal(peers_take(p, a, 3), 0);
    assert_int_equal(peers_take(p, a, 3), -1);
    assert_int_equal(peers_count(p, a), 3);
    assert_int_equal(peers_take(p, b, 3), 0);
    peers_give(p, a);
    assert_int_equal(peers_take(p, a, 3), 0);
    assert_int_equal(peers_take(p, a, 3), -1);
    assert_int_equal(peers_take(p, a, 0), 0);       /* 0: no limit */
    assert_int_equal(peers_count(p, a), 4);
    assert_int_equal(peers_count(p, b), 1);
    assert_int_equal(peers_take(p, 0, 1), 0);       /* an unknown address is never counted */
    assert_int_equal(peers_take(p, 0, 1), 0);
    assert_int_equal(peers_count(p, 0), 0);
    peers_free(p);
}

/* Filled to its room with addresses that come and go in a scrambled order
 * (so that runs form and break in the middle), every count stays what a
 * plain array says, and an address gone leaves no trace. */
static void test_counts_survive_churn(void **state)
{
    (void)state;
    enum { ROOM = 64, ADDRS = 200, ROUNDS = 20000 };
    struct peers *p = peers_new(ROOM);
    int want[ADDRS] = {0}, open = 0;
    uint32_t x = 12345;
    for (int r = 0; r < ROUNDS; r++) {
        x = x * 1103515245u + 12345u;
        int i = (int)((x >> 8) % ADDRS);
        uint32_t addr = 0x0a000000u + (uint32_t)i * 7919u;   /* 10.x.y.z, spread */
        if (want[i] && (x & 0x10000)) {
            peers_give(p, addr);
            want[i]--;
            open--;
        } else if (open < ROOM) {
            assert_int_equal(peers_take(p, addr, 0), 0);
            want[i]++;
            open++;
        }
        if (r % 97 == 0)
            for (int k = 0; k < ADDRS; k++)
                assert_int_equal(peers_count(p, 0x0a000000u + (uint32_t)k * 7919u), want[k]);
    }
    for (int k = 0; k < ADDRS; k++)
        while (want[k]--)
            peers_give(p, 0x0a000000u + (uint32_t)k * 7919u);
    for (int k = 0; k < ADDRS; k++)
        assert_int_equal(peers_count(p, 0x0a000000u + (uint32_t)k * 7919u), 0);
    peers_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_per_address),
        cmocka_unit_test(test_counts_survive_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
