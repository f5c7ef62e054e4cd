/* text: bounded copies and decimal appends (util/text.h). */
#include "testutil.h"

#include <string.h>

#include "util/text.h"

static void test_copy_and_cat(void **state)
{
    (void)state;
    char b[8];
    assert_int_equal(text_copy(b, sizeof b, "topup:"), 6);
    assert_string_equal(b, "topup:");
    assert_int_equal(text_cat(b, sizeof b, "12345"), 7);   /* truncated to fit */
    assert_string_equal(b, "topup:1");
    assert_int_equal(text_cat(b, sizeof b, "9"), 7);       /* full: unchanged */
    assert_string_equal(b, "topup:1");
    assert_int_equal(text_copy(b, sizeof b, ""), 0);
    assert_string_equal(b, "");
    assert_int_equal(text_copy(b, 1, "x"), 0);
    assert_string_equal(b, "");
    assert_int_equal(text_copy(b, 0, "x"), 0);
}

static void test_cat_int(void **state)
{
    (void)state;
    char b[32];
    const struct {
        int64_t v;
        const char *s;
    } cases[] = {{0, "0"}, {7, "7"}, {-7, "-7"}, {1234567890123, "1234567890123"},
                 {INT64_MAX, "9223372036854775807"}, {INT64_MIN, "-9223372036854775808"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        text_copy(b, sizeof b, "x");
        text_cat_int(b, sizeof b, cases[i].v);
        assert_string_equal(b + 1, cases[i].s);
    }
    char small[5];
    text_copy(small, sizeof small, "R");
    assert_int_equal(text_cat_int(small, sizeof small, 123456), 4);
    assert_string_equal(small, "R123");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_and_cat),
        cmocka_unit_test(test_cat_int),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
