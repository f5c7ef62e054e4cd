/* jv: the request body parser (util/jv.h). The fuzzer fuzz_json_fields
 * checks it against jansson on every input; these are the cases by name. */
#include "testutil.h"

#include <string.h>

#include "util/arena.h"
#include "util/err.h"
#include "util/jv.h"

static struct arena a;

static int setup(void **state)
{
    (void)state;
    arena_init(&a);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(&a);
    return 0;
}

static const struct jv *ok(const char *text)
{
    struct jv *v = NULL;
    int rc = jv_parse(&a, text, strlen(text), &v);
    if (rc)
        fail_msg("refused: %s", text);
    return v;
}

static void refused(const char *text, size_t len)
{
    struct jv *v = (struct jv *)&a;
    if (jv_parse(&a, text, len, &v) != ERR_INVALID_JSON || v)
        fail_msg("accepted: %.*s", (int)len, text);
}
#define REFUSED(text) refused(text, sizeof text - 1)

static void test_topup_body(void **state)
{
    (void)state;
    const struct jv *b = ok(" {\"amount\":100, \"currency\":\"CNY\",\n\"channel\":\"portal\",\"method\":\"alipay\"} ");
    assert_int_equal(b->kind, JV_OBJECT);
    assert_int_equal(b->len, 4);
    const struct jv *amount = jv_get(b, "amount"), *method = jv_get(b, "method");
    assert_non_null(amount);
    assert_int_equal(amount->kind, JV_INT);
    assert_int_equal(amount->i, 100);
    assert_string_equal(method->s, "alipay");
    assert_int_equal(method->len, 6);
    assert_null(jv_get(b, "amoun"));
    assert_null(jv_get(b, "amounts"));
    assert_null(jv_get(amount, "x"));   /* not an object */
    assert_null(jv_get(NULL, "x"));
    const char *order[] = {"amount", "currency", "channel", "method"};
    int i = 0;
    jv_foreach(m, b) assert_string_equal(m->key, order[i++]);
    assert_int_equal(i, 4);
}

static void test_values(void **state)
{
    (void)state;
    const struct jv *v = ok("[null, true, false, 0, -0, -12, 1.5, 2e3, -1E-2, \"\", [], {}, [[1]]]");
    assert_int_equal(v->kind, JV_ARRAY);
    assert_int_equal(v->len, 13);
    enum jv_kind kinds[] = {JV_NULL, JV_BOOL,  JV_BOOL,   JV_INT,   JV_INT,    JV_INT,  JV_REAL,
                            JV_REAL, JV_REAL,  JV_STRING, JV_ARRAY, JV_OBJECT, JV_ARRAY};
    int i = 0;
    jv_foreach(e, v) assert_int_equal(e->kind, kinds[i++]);
    const struct jv *e = v->first->next;
    assert_true(e->b);
    assert_false(e->next->b);
    e = e->next->next->next->next;   /* -12 */
    assert_int_equal(e->i, -12);
    assert_true(e->next->d == 1.5);
    assert_true(e->next->next->d == 2000.0);
    assert_true(e->next->next->next->d == -0.01);
    assert_int_equal(ok("\"x\"")->kind, JV_STRING);   /* any value at the top */
    assert_int_equal(ok(" 7 ")->i, 7);
}

static void test_integers_at_the_edges(void **state)
{
    (void)state;
    assert_true(ok("9223372036854775807")->i == INT64_MAX);
    assert_true(ok("-9223372036854775808")->i == INT64_MIN);
    REFUSED("9223372036854775808");
    REFUSED("-9223372036854775809");
    REFUSED("99999999999999999999999");
    REFUSED("1e400");     /* a real that overflows */
    REFUSED("-1e400");
    assert_true(ok("1e-400")->d == 0.0);   /* underflow is zero, as in jansson */
}

static void test_strings(void **state)
{
    (void)state;
    const struct jv *s = ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    assert_string_equal(s->s, "a\"b\\c/d\b\f\n\r\t");
    assert_int_equal(s->len, strlen(s->s));
    assert_string_equal(ok("\"\\u00e9\\u4e2d\\ud83d\\ude00\"")->s, "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80");
    assert_string_equal(ok("\"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe4\xbd\xa0\xe5\xa5\xbd\"")->s,
                        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe4\xbd\xa0\xe5\xa5\xbd");
    assert_string_equal(ok("{\"k\\u0041\":1}")->first->key, "kA");
    REFUSED("\"\\u0000\"");            /* no NUL, escaped or raw */
    refused("\"a\0b\"", 5);
    REFUSED("\"tab\there\"");          /* raw control character */
    REFUSED("\"\\ud800\"");            /* lone high surrogate */
    REFUSED("\"\\ud800\\u0041\"");     /* high surrogate, then not a low one */
    REFUSED("\"\\udc00\"");            /* low surrogate first */
    REFUSED("\"\\x41\"");
    REFUSED("\"\\u12\"");
    REFUSED("\"\xc0\xaf\"");           /* overlong */
    REFUSED("\"\xed\xa0\x80\"");       /* a surrogate in UTF-8 */
    REFUSED("\"\xf4\x90\x80\x80\"");   /* past U+10FFFF */
    REFUSED("\"\xe4\xbd\"");           /* cut short */
    REFUSED("\"open");
    REFUSED("\"open\\\"");
}

static void test_malformed(void **state)
{
    (void)state;
    REFUSED("");
    REFUSED("   ");
    REFUSED("{");
    REFUSED("{\"a\":1,}");
    REFUSED("[1,]");
    REFUSED("{\"a\" 1}");
    REFUSED("{a:1}");
    REFUSED("{\"a\":1}x");
    REFUSED("{\"a\":1} {}");
    REFUSED("01");
    REFUSED("-");
    REFUSED("1.");
    REFUSED(".5");
    REFUSED("1e");
    REFUSED("+1");
    REFUSED("tru");
    REFUSED("truex");
    REFUSED("nul");
    REFUSED("NaN");
    REFUSED("{\"a\":1,\"a\":2}");   /* a name twice */
}

static void test_duplicates_in_a_large_object(void **state)
{
    (void)state;
    char text[4096];
    size_t n = 0;
    n += (size_t)snprintf(text + n, sizeof text - n, "{");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s\"k%d\":%d", i ? "," : "", i, i);
    snprintf(text + n, sizeof text - n, "}");
    const struct jv *o = ok(text);
    assert_int_equal(o->len, 200);
    assert_int_equal(jv_get(o, "k199")->i, 199);
    snprintf(text + n, sizeof text - n, ",\"k17\":0}");
    refused(text, strlen(text));
    /* Names that differ only in length or after a shared prefix are not the same. */
    n = 0;
    n += (size_t)snprintf(text + n, sizeof text - n, "{\"\":0");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, ",\"%.*s\":%d", i + 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", i);
    snprintf(text + n, sizeof text - n, "}");
    assert_int_equal(ok(text)->len, 41);
}

static void test_depth_is_bounded(void **state)
{
    (void)state;
    char deep[2 * JV_MAX_DEPTH + 4];
    memset(deep, '[', JV_MAX_DEPTH);
    memset(deep + JV_MAX_DEPTH, ']', JV_MAX_DEPTH);
    deep[2 * JV_MAX_DEPTH] = 0;
    assert_int_equal(ok(deep)->kind, JV_ARRAY);
    memset(deep, '[', JV_MAX_DEPTH + 1);
    memset(deep + JV_MAX_DEPTH + 1, ']', JV_MAX_DEPTH + 1);
    refused(deep, 2 * JV_MAX_DEPTH + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_topup_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integers_at_the_edges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_in_a_large_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
