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

static void test_printable(void **state)
{
    (void)state;
    const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"", 1}, {"till 7", 1}, {"收银台 7", 1}, {"Касса №7", 1}, {"\xF0\x9F\x93\xB1 kiosk", 1},
        {"\xC2\xA0nbsp", 1},          /* U+00A0: the first after the C1 controls */
        {"till\n7", 0}, {"tab\there", 0}, {"\x1b[31m", 0}, {"del\x7f", 0},
        {"\xC2\x85next-line", 0},     /* U+0085, a C1 control */
        {"\xff", 0}, {"\xC0\xAF", 0},  /* not UTF-8; an overlong '/' */
        {"\xED\xA0\x80", 0},          /* a surrogate */
        {"\xE6\x94", 0},              /* cut short */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(text_printable(cases[i].s, 64), cases[i].ok);
    assert_int_equal(text_printable("12345", 5), 1);
    assert_int_equal(text_printable("123456", 5), 0);
    assert_int_equal(text_printable("收银", 5), 0);   /* 6 bytes */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_and_cat),
        cmocka_unit_test(test_cat_int),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
