/* csv: the SIM import format (api/csv.h) as operators' files write it. */
#include "testutil.h"

#include "api/csv.h"
#include "util/err.h"

#define MAX_SEEN 16

/* What the parser reported: each row as "line:iccid|msisdn|imsi|lang" (a
 * missing column as -), each bad line as "line:bad". */
struct seen {
    char out[MAX_SEEN][160];
    int n;
    char param[64];   /* csv_parse_sims's *param points into the text: kept here */
};

static void on_row(void *arg, const struct csv_row *r)
{
    struct seen *s = arg;
    assert_true(s->n < MAX_SEEN);
    snprintf(s->out[s->n++], sizeof s->out[0], "%d:%s|%s|%s|%s", r->line, r->iccid, r->msisdn ? r->msisdn : "-",
             r->imsi ? r->imsi : "-", r->lang ? r->lang : "-");
}

static void on_bad(void *arg, int line)
{
    struct seen *s = arg;
    assert_true(s->n < MAX_SEEN);
    snprintf(s->out[s->n++], sizeof s->out[0], "%d:bad", line);
}

/* Parses a copy of text (len bytes; strlen when 0); returns the result code. */
static int parse(const char *text, size_t len, struct seen *s, const char **param)
{
    len = len ? len : strlen(text);
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    memcpy(buf, text, len);
    buf[len] = 0;
    memset(s, 0, sizeof *s);
    int rc = csv_parse_sims(buf, len, param, on_row, on_bad, s);
    if (*param)
        *param = strncpy(s->param, *param, sizeof s->param - 1);
    free(buf);
    return rc;
}

static void expect(const struct seen *s, const char *const *want, int n)
{
    assert_int_equal(s->n, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(s->out[i], want[i]);
}

static void test_columns_in_any_order(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    assert_int_equal(parse("language,iccid,msisdn\nru,8970100000000000013,+79160000001\nzh,8970100000000000021,\n", 0,
                           &s, &param), 0);
    assert_null(param);
    const char *want[] = {"2:8970100000000000013|+79160000001|-|ru", "3:8970100000000000021||-|zh"};
    expect(&s, want, 2);
}

/* A lone CR ends a line too, as Excel for Mac's "CSV (Macintosh)" writes
 * them: such a file was one header line naming an unknown column,
 * "msisdn\r8970...", the first row's ICCID in the param of the 400. CRLF is
 * still one line end, not two. */
static void test_cr_line_ends(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    assert_int_equal(parse("iccid,msisdn\r8970100000000000013,+79160000001\r\r8970100000000000021,\r\n"
                           "8970100000000000039,\r",
                           0, &s, &param),
                     0);
    assert_null(param);
    const char *want[] = {"2:8970100000000000013|+79160000001|-|-", "4:8970100000000000021||-|-",
                          "5:8970100000000000039||-|-"};
    expect(&s, want, 3);
}

/* A spreadsheet's file: a BOM, CRLF, spaces after commas, blank lines, no
 * newline after the last line. Line numbers are as an editor shows them. */
static void test_spreadsheet_export(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    const char *text = "\xEF\xBB\xBFiccid, imsi \r\n 8970100000000000013 , 250011234567890\r\n\r\n   \n"
                       "8970100000000000021,\r\n8970100000000000039 ,";
    assert_int_equal(parse(text, 0, &s, &param), 0);
    const char *want[] = {"2:8970100000000000013|-|250011234567890|-", "5:8970100000000000021|-||-",
                          "6:8970100000000000039|-||-"};
    expect(&s, want, 3);
}

static void test_quoted_fields(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    const char *text = "\"iccid\",\"msisdn\",\"language\"\r\n"
                       "\"8970100000000000013\",\"+79160000001\",\"ru\"\r\n"   /* every field quoted */
                       "8970100000000000021,\"\",en\n"                        /* empty in quotes */
                       "\"89701,00\",\"say \"\"hi\"\"\",\" zh \"\n"          /* comma, quotes, spaces kept */
                       "\"8970100000000000039\" ,x,\"ru\"\"\n"              /* text after the quotes */
                       "\"8970100000000000047,x\n";                           /* never closed: one field */
    assert_int_equal(parse(text, 0, &s, &param), 0);
    const char *want[] = {"2:8970100000000000013|+79160000001|-|ru", "3:8970100000000000021||-|en",
                          "4:89701,00|say \"hi\"|-| zh ", "5:8970100000000000039|x|-|ru\"", "6:bad"};
    expect(&s, want, 5);
}

/* Trailing commas on every line, as a sheet with cleared columns exports. */
static void test_unnamed_columns_are_not_read(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    assert_int_equal(parse("iccid,,language,,\n8970100000000000013,,ru,,\n8970100000000000021,x,en,,y\n", 0, &s,
                           &param), 0);
    const char *want[] = {"2:8970100000000000013|-|-|ru", "3:8970100000000000021|-|-|en"};
    expect(&s, want, 2);
}

static void test_a_line_with_other_fields_is_reported(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    assert_int_equal(parse("iccid,language\n8970100000000000013,ru\n8970100000000000021\n"
                           "8970100000000000039,en,zh\n8970100000000000047,zh\n", 0, &s, &param), 0);
    const char *want[] = {"2:8970100000000000013|-|-|ru", "3:bad", "4:bad", "5:8970100000000000047|-|-|zh"};
    expect(&s, want, 4);
}

static void test_unusable_headers(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    const struct {
        const char *text, *param;
    } cases[] = {
        {"iccid,msisdn,colour\n8970100000000000013,,red\n", "colour"},
        {"msisdn,language\n+79160000001,ru\n", "iccid"},
        {"iccid,language,language\n8970100000000000013,ru,ru\n", "language"},
        {"ICCID\n8970100000000000013\n", "ICCID"},
        {"", "iccid"},
        {"\xEF\xBB\xBF", "iccid"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(parse(cases[i].text, 0, &s, &param), ERR_INVALID_CSV);
        assert_non_null(param);
        assert_string_equal(param, cases[i].param);
        assert_int_equal(s.n, 0);
    }
    char wide[256] = "iccid";   /* more columns than a header may have */
    for (int i = 1; i <= CSV_MAX_COLS; i++)
        strcat(wide, ",msisdn");
    strcat(wide, "\n8970100000000000013\n");
    assert_int_equal(parse(wide, 0, &s, &param), ERR_INVALID_CSV);
    assert_int_equal(s.n, 0);
}

static void test_a_nul_byte_is_not_text(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    static const char text[] = "iccid\n8970100000000000013\n89701\0000000000000021\n";
    assert_int_equal(parse(text, sizeof text - 1, &s, &param), ERR_INVALID_CSV);
    assert_int_equal(s.n, 0);
}

static void test_a_header_alone_has_no_rows(void **state)
{
    (void)state;
    struct seen s;
    const char *param;
    assert_int_equal(parse("iccid,msisdn", 0, &s, &param), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(parse("iccid\r\n\r\n", 0, &s, &param), 0);
    assert_int_equal(s.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_columns_in_any_order),
        cmocka_unit_test(test_spreadsheet_export),
        cmocka_unit_test(test_cr_line_ends),
        cmocka_unit_test(test_quoted_fields),
        cmocka_unit_test(test_unnamed_columns_are_not_read),
        cmocka_unit_test(test_a_line_with_other_fields_is_reported),
        cmocka_unit_test(test_unusable_headers),
        cmocka_unit_test(test_a_nul_byte_is_not_text),
        cmocka_unit_test(test_a_header_alone_has_no_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
