/* topup and plan: the top-up command (limits, daily cap over the local day,
 * lifecycle, reactivation fee, signed receipt), buying plans and expiring
 * bundles. Every test ends with the ledger check. */
#include "testutil.h"

#include <jansson.h>

#include "core/plan.h"
#include "core/record.h"
#include "core/topup.h"
#include "util/i18n.h"
#include "util/timefmt.h"

STORE_SQL(Q_TOPUPS, "SELECT COUNT(*) FROM topups");
STORE_SQL(Q_RECEIPTS, "SELECT COUNT(receipt) FROM topups");
STORE_SQL(Q_RECORDS, "SELECT (SELECT COUNT(*) FROM sim_txns) + (SELECT COUNT(*) FROM topups WHERE prev IS NOT NULL)");
STORE_SQL(Q_TRANSFERS, "SELECT COUNT(*) FROM transfers");
STORE_SQL(Q_BUNDLES, "SELECT COUNT(*) FROM bundles");
STORE_SQL(Q_ROOM, "SELECT COALESCE(length(room), -1) FROM sims WHERE id = ?");

/* Everything a refused command must leave as it was. */
struct snap {
    int state;
    int64_t active_until, day_start, day_total, balance;
    int64_t topups, receipts, records, transfers, bundles;
};

static struct snap snap(struct tu *t, const char *iccid)
{
    struct sim s = tu_sim_get(t, iccid);
    return (struct snap){.state = s.state, .active_until = s.active_until, .day_start = s.day_start,
                         .day_total = s.day_total, .balance = tu_sim_balance(t, &s),
                         .topups = tu_scalar(t, &Q_TOPUPS), .receipts = tu_scalar(t, &Q_RECEIPTS),
                         .records = tu_scalar(t, &Q_RECORDS), .transfers = tu_scalar(t, &Q_TRANSFERS),
                         .bundles = tu_scalar(t, &Q_BUNDLES)};
}

static void same_snap(struct snap a, struct snap b)
{
    assert_int_equal(a.state, b.state);
    assert_int_equal(a.active_until, b.active_until);
    assert_int_equal(a.day_start, b.day_start);
    assert_int_equal(a.day_total, b.day_total);
    assert_int_equal(a.balance, b.balance);
    assert_int_equal(a.topups, b.topups);
    assert_int_equal(a.receipts, b.receipts);
    assert_int_equal(a.records, b.records);
    assert_int_equal(a.transfers, b.transfers);
    assert_int_equal(a.bundles, b.bundles);
}

/* What topup() asks for. */
static struct topup_req request(const char *iccid, int64_t amount)
{
    return (struct topup_req){.iccid = iccid, .amount = amount, .currency = "CNY", .channel = CHANNEL_portal,
                              .method = METHOD_alipay};
}

static int topup(struct tu *t, const char *iccid, int64_t amount, struct topup_result *out)
{
    struct topup_result tmp;
    struct topup_req req = request(iccid, amount);
    return TU_CMD(t, topup_apply(&t->tx, &req, out ? out : &tmp));
}

/* The receipt the answer to topup(t, iccid, amount) carries (receipt.h R1),
 * as the API composes it: call it right after, with the same principal. */
static const char *receipt_of(struct tu *t, const char *iccid, int64_t amount, const struct topup_result *out)
{
    struct topup_req req = request(iccid, amount);
    struct topup_answer v;
    topup_answer_from(&t->tx, &req, out, &v);
    return topup_receipt(t->tx.a, &v);
}

static void topup_ok(struct tu *t, const char *iccid, int64_t amount, struct topup_result *out)
{
    int rc = topup(t, iccid, amount, out);
    if (rc)
        print_error("topup %lld: %s\n", (long long)amount, err_code(rc));
    assert_int_equal(rc, 0);
}

static void record_line(void *arg, const struct record *r)
{
    char line[160];
    snprintf(line, sizeof line, "%s:%lld:%lld:%s:%s:%s;", r->kind, (long long)r->amount,
             (long long)r->balance_after, r->receipt ? r->receipt : "-", r->channel ? r->channel : "-",
             r->method ? r->method : "-");
    strcat(arg, line);
}

static void records(struct tu *t, const struct sim *s, char *buf)
{
    int more = -1;
    buf[0] = 0;
    assert_int_equal(record_list(&t->tx, s->id, 0, 20, record_line, buf, &more), 0);
    assert_int_equal(more, 0);
}

static const char *json_str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    assert_non_null(v);
    return v;
}

/* The receipt as served. */
static const char *sign(struct tu *t, const char *payload)
{
    return receipt_signed(t->tx.a, &t->keys, payload, strlen(payload));
}

/* The payload is built by hand; it must be exactly jansson's canonical form
 * (compact, sorted keys), or verification would re-serialise something else. */
static void canonical(const char *payload)
{
    json_error_t e;
    json_t *o = json_loads(payload, JSON_REJECT_DUPLICATES, &e);
    if (!o)
        print_error("payload is not JSON (%s): %s\n", e.text, payload);
    assert_non_null(o);
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(text);
    assert_string_equal(payload, text);
    free(text);
    json_decref(o);
}

/* The first top-up of an inactive SIM: activation, validity, balance, the
 * ledger, the records and a receipt anyone can verify. */
static void test_first_topup(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    assert_int_equal(tu_scalar_i(t, &Q_ROOM, s.id), 24);   /* room to grow in place (migration 007) */
    struct topup_result out;
    topup_ok(t, s.iccid, 1000, &out);
    const char *receipt = receipt_of(t, s.iccid, 1000, &out);
    assert_int_equal(tu_scalar_i(t, &Q_ROOM, s.id), -1);   /* given back by the top-up's writes */
    assert_true(out.id > 0);
    assert_int_equal(out.sim.state, SIM_ACTIVE);
    assert_int_equal(out.sim.active_until, TU_T0 + 30 * TU_DAY);
    assert_int_equal(out.balance, 1000);
    assert_int_equal(out.fee, 0);
    assert_int_equal(out.reactivated, 0);
    assert_string_equal(out.receipt_number, "R0000000001");
    struct sim got = tu_sim_get(t, s.iccid);
    assert_int_equal(got.state, SIM_ACTIVE);
    assert_int_equal(got.active_until, TU_T0 + 30 * TU_DAY);
    assert_int_equal(got.day_total, 1000);
    assert_int_equal(got.day_start, TU_T0 - 8 * 3600);   /* local midnight in UTC+8 */
    assert_int_equal(tu_sim_balance(t, &s), 1000);
    assert_int_equal(tu_system_balance(t, "clearing_alipay", "CNY"), -1000);
    char buf[512];
    records(t, &s, buf);
    assert_string_equal(buf, "topup:1000:1000:R0000000001:portal:alipay;");

    /* The receipt as stored is the receipt as issued, in canonical form, and
     * once signed it verifies. */
    const char *payload;
    assert_int_equal(topup_receipt_get(&t->tx, "R0000000001", &payload, NULL), 0);
    assert_string_equal(payload, receipt);
    assert_int_equal(topup_receipt_get(&t->tx, "R0000000002", &payload, NULL), ERR_RECEIPT_NOT_FOUND);
    canonical(payload);
    const char *doc = sign(t, receipt);
    assert_int_equal(receipt_verify(&t->keys, doc, strlen(doc)), 1);
    assert_string_equal(sign(t, payload), doc);   /* deterministic: served twice, signed the same */

    json_t *o = json_loads(doc, 0, NULL);
    assert_non_null(o);
    char until[TIMEFMT_LEN], issued[TIMEFMT_LEN];
    timefmt_rfc3339(TU_T0 + 30 * TU_DAY, until);
    timefmt_rfc3339(TU_T0, issued);
    assert_string_equal(json_str(o, "number"), "R0000000001");
    assert_string_equal(json_str(o, "iccid"), s.iccid);
    assert_string_equal(json_str(o, "msisdn"), s.msisdn);
    assert_string_equal(json_str(o, "channel"), "portal");
    assert_string_equal(json_str(o, "method"), "alipay");
    assert_string_equal(json_str(o, "currency"), "CNY");
    assert_string_equal(json_str(o, "active_until"), until);
    assert_string_equal(json_str(o, "issued_at"), issued);
    assert_string_equal(json_str(o, "served_by"), "test");
    assert_string_equal(json_str(o, "key_id"), t->keys.key_id);
    assert_int_equal(json_integer_value(json_object_get(o, "amount")), 1000);
    assert_int_equal(json_integer_value(json_object_get(o, "balance_after")), 1000);
    assert_int_equal(json_integer_value(json_object_get(o, "reactivation_fee")), 0);
    char topup_ref[32];
    snprintf(topup_ref, sizeof topup_ref, "tu_%lld", (long long)out.id);
    assert_string_equal(json_str(o, "topup"), topup_ref);
    json_decref(o);

    /* A second top-up: the next number, validity extended. */
    tu_at(t, TU_T0 + 3600);
    topup_ok(t, s.iccid, 500, &out);
    assert_string_equal(out.receipt_number, "R0000000002");
    assert_int_equal(out.balance, 1500);
    assert_int_equal(out.sim.active_until, TU_T0 + 60 * TU_DAY);
    assert_int_equal(out.reactivated, 0);
    records(t, &s, buf);
    assert_string_equal(buf, "topup:500:1500:R0000000002:portal:alipay;topup:1000:1000:R0000000001:portal:alipay;");
    tu_ledger_ok(t);
}

STORE_SQL(Q_TOPUP_AT,
          "INSERT INTO topups(id, sim_id, amount, currency, channel, method, balance_after, active_until, principal, "
          "receipt, created_at) VALUES (?, ?, 100, 'CNY', 'admin', 'adjustment', 0, 0, 'test', '{}', 0)");

/* R1: a top-up stores no payload; its receipt, fetched days later, is the
 * one it answered with, byte for byte (issued_at is the row's, not the
 * fetch's). A payload stored by an older version is served as stored. */
STORE_SQL(Q_STORE_OLD_RECEIPT, "UPDATE topups SET receipt = ? WHERE id = ?");
static void test_receipt_composed_from_row(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    struct topup_result a, b;
    topup_ok(t, s.iccid, 1000, &a);
    const char *receipt_a = receipt_of(t, s.iccid, 1000, &a);
    t->tx.principal = NULL;
    topup_ok(t, s.iccid, 500, &b);
    const char *receipt_b = receipt_of(t, s.iccid, 500, &b);
    t->tx.principal = "test";
    assert_int_equal(tu_scalar(t, &Q_RECEIPTS), 0);
    tu_at(t, TU_T0 + 5 * TU_DAY);
    const char *payload;
    assert_int_equal(topup_receipt_get(&t->tx, a.receipt_number, &payload, NULL), 0);
    assert_string_equal(payload, receipt_a);
    assert_int_equal(topup_receipt_get(&t->tx, b.receipt_number, &payload, NULL), 0);
    assert_string_equal(payload, receipt_b);   /* "served_by":"system" again */
    assert_non_null(strstr(payload, "\"served_by\":\"system\""));

    const char *old = "{\"number\":\"R0000000001\",\"stored\":\"before R1\"}";
    assert_int_equal(store_exec(t->st, &Q_STORE_OLD_RECEIPT, "si", old, a.id), 0);
    assert_int_equal(topup_receipt_get(&t->tx, a.receipt_number, &payload, NULL), 0);
    assert_string_equal(payload, old);
}

/* A receipt is found by its top-up's id: topup_receipt_get takes exactly the numbers
 * receipt_number prints, and a top-up rolled back gives its id (and number) to
 * the next one, whose receipt is then the one served. */
static void test_receipt_numbers(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    struct topup_result out;
    topup_ok(t, s.iccid, 1000, &out);
    topup_ok(t, s.iccid, 1000, &out);
    assert_string_equal(out.receipt_number, "R0000000002");

    tu_sp_begin(t);   /* a command that succeeds, then is rolled back with its batch */
    struct topup_req req = {.iccid = s.iccid, .amount = 700, .currency = "CNY", .channel = CHANNEL_portal,
                            .method = METHOD_alipay};
    assert_int_equal(topup_apply(&t->tx, &req, &out), 0);
    assert_string_equal(out.receipt_number, "R0000000003");
    assert_int_equal(store_rollback_to(t->st), 0);
    topup_ok(t, s.iccid, 500, &out);
    const char *receipt = receipt_of(t, s.iccid, 500, &out);
    assert_string_equal(out.receipt_number, "R0000000003");
    const char *payload;
    assert_int_equal(topup_receipt_get(&t->tx, "R0000000003", &payload, NULL), 0);
    assert_string_equal(payload, receipt);
    assert_non_null(strstr(payload, "\"amount\":500,"));

    const struct {
        const char *number;
        int want;
    } rows[] = {
        {"R0000000001", 0},                            /* the first */
        {"R0000000003", 0},                            /* the last */
        {"R0000000004", ERR_RECEIPT_NOT_FOUND},        /* not yet */
        {"R0000000000", ERR_RECEIPT_NOT_FOUND},        /* no top-up 0 */
        {"R1", ERR_RECEIPT_NOT_FOUND},                 /* not padded */
        {"R000000001", ERR_RECEIPT_NOT_FOUND},         /* nine digits */
        {"R00000000001", ERR_RECEIPT_NOT_FOUND},       /* eleven: padded too far */
        {"r0000000001", ERR_RECEIPT_NOT_FOUND},        /* lower case */
        {"0000000001", ERR_RECEIPT_NOT_FOUND},         /* no R */
        {"R000000000x", ERR_RECEIPT_NOT_FOUND},        /* not a digit */
        {"R+000000001", ERR_RECEIPT_NOT_FOUND},        /* a sign */
        {"R-000000001", ERR_RECEIPT_NOT_FOUND},
        {"R0000000001 ", ERR_RECEIPT_NOT_FOUND},       /* trailing space */
        {" R0000000001", ERR_RECEIPT_NOT_FOUND},       /* leading space */
        {"", ERR_RECEIPT_NOT_FOUND},                   /* empty */
        {"R", ERR_RECEIPT_NOT_FOUND},
        {"R99999999999999", ERR_RECEIPT_NOT_FOUND},    /* fourteen digits: well formed, no such top-up */
        {"R999999999999999", ERR_RECEIPT_NOT_FOUND},   /* fifteen: longer than any number */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = topup_receipt_get(&t->tx, rows[i].number, &payload, NULL);
        if (rc != rows[i].want)
            print_error("row %zu (%s): %s\n", i, rows[i].number, err_code(rc));
        assert_int_equal(rc, rows[i].want);
    }

    /* Past ten digits the number grows, and is still found. */
    assert_int_equal(store_exec(t->st, &Q_TOPUP_AT, "ii", INT64_C(12345678900), s.id), 0);
    topup_ok(t, s.iccid, 100, &out);
    const char *receipt2 = receipt_of(t, s.iccid, 100, &out);
    assert_int_equal(out.id, INT64_C(12345678901));
    assert_string_equal(out.receipt_number, "R12345678901");
    assert_int_equal(topup_receipt_get(&t->tx, "R12345678901", &payload, NULL), 0);
    assert_string_equal(payload, receipt2);
    canonical(payload);
    assert_int_equal(topup_receipt_get(&t->tx, "R012345678901", &payload, NULL), ERR_RECEIPT_NOT_FOUND);
    tu_ledger_ok(t);

    /* Numbers and ids map one to one, up to fourteen digits. */
    const struct {
        int64_t id;
        const char *number;
    } numbers[] = {{1, "R0000000001"},
                   {42, "R0000000042"},
                   {INT64_C(9999999999), "R9999999999"},
                   {INT64_C(10000000000), "R10000000000"},
                   {INT64_C(99999999999999), "R99999999999999"}};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        char number[RECEIPT_NUMBER_MAX];
        receipt_number(numbers[i].id, number);
        assert_string_equal(number, numbers[i].number);
        assert_int_equal(receipt_number_topup(number), numbers[i].id);
    }
}

/* receipt_printable: every field a person reads, labelled in the language
 * asked for, amounts in major units of their currency, times at the
 * deployment's offset; the MSISDN and the fee only when there is one; the
 * key and the signature the served receipt carries. */
static void test_receipt_printable(void **state)
{
    struct tu *t = *state;
    assert_int_equal(i18n_init(), 0);
    struct arena a;
    arena_init(&a);
    const struct {
        const char *currency, *msisdn, *served;
        int64_t amount, fee, balance;
        int lang, offset;
        const char *want[8];   /* lines it must hold */
        const char *not[3];    /* and must not */
    } rows[] = {
        {"CNY", "+79161234567", "token:3", 5000, 0, 15005, LANG_ZH, 480,
         {"充值收据\n", "收据编号: R0000000042\n", "时间: 2026-12-08 01:30 (UTC+08:00)\n",
          "手机号码: +79161234567\n", "充值渠道: 自助终端\n", "支付方式: 微信支付\n", "充值金额: 50.00 CNY\n",
          "充值后余额: 150.05 CNY\n"},
         {"复机费"}},
        {"RUB", "", "", 100, 2500, 7, LANG_RU, -90,
         {"Квитанция о пополнении\n", "Дата: 2026-12-07 16:00 (UTC-01:30)\n", "Сумма: 1.00 RUB\n",
          "Плата за восстановление: 25.00 RUB\n", "Баланс: 0.07 RUB\n", "Обслужил: система\n",
          "Действует до: 2027-01-06 22:00 (UTC-01:30)\n"},
         {"Номер телефона"}},
        {"JPY", "", "system", 1000, 0, 1000, LANG_EN, 0,
         {"Amount: 1000 JPY\n", "Date: 2026-12-07 17:30 (UTC+00:00)\n", "Served by: system\n"}, {".00"}},
        {"BHD", "", "agent:x", 1234, 0, 1234, LANG_EN, 180, {"Amount: 1.234 BHD\n", "Served by: agent:x\n"}, {0}},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *payload;
        char number[RECEIPT_NUMBER_MAX];
        receipt_issue(&a,
                      &(struct receipt_fields){.iccid = "89701000000000000015", .msisdn = rows[i].msisdn,
                                               .channel = "kiosk", .method = "wechat", .currency = rows[i].currency,
                                               .served_by = rows[i].served, .topup_id = 42, .amount = rows[i].amount,
                                               .fee = rows[i].fee, .balance_after = rows[i].balance,
                                               .active_until = 1799278200,   /* 2027-01-06T23:30:00Z */
                                               .issued_at = 1796664600},     /* 2026-12-07T17:30:00Z */
                      number, &payload);
        const char *text = receipt_printable(&a, &t->keys, payload, strlen(payload), rows[i].lang, rows[i].offset);
        assert_non_null(text);
        for (int j = 0; j < 8 && rows[i].want[j]; j++)
            if (!strstr(text, rows[i].want[j])) {
                print_error("row %zu: no \"%s\" in:\n%s\n", i, rows[i].want[j], text);
                fail();
            }
        for (int j = 0; j < 3 && rows[i].not[j]; j++)
            assert_null(strstr(text, rows[i].not[j]));
        /* the served receipt's key and signature, the signature in two lines */
        json_t *served = json_loads(receipt_signed(&a, &t->keys, payload, strlen(payload)), 0, NULL);
        const char *sig = json_string_value(json_object_get(served, "signature"));
        char two[128];
        snprintf(two, sizeof two, "%.44s\n%s\n", sig, sig + 44);
        assert_non_null(strstr(text, two));
        assert_non_null(strstr(text, json_string_value(json_object_get(served, "key_id"))));
        json_decref(served);
    }
    assert_null(receipt_printable(&a, &t->keys, "{\"number\":1}", 12, LANG_EN, 0));   /* not a receipt */
    arena_free(&a);
}

/* receipt_verify: the rendered receipt is valid; any change to what was
 * signed, or another key, makes it invalid. */
static void test_receipt_tamper(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    struct topup_result out;
    topup_ok(t, s.iccid, 1000, &out);
    const char *receipt = receipt_of(t, s.iccid, 1000, &out);
    const char *doc = sign(t, receipt);
    assert_int_equal(receipt_verify(&t->keys, doc, strlen(doc)), 1);

    json_t *o = json_loads(doc, 0, NULL);
    assert_non_null(o);
    struct {
        const char *key;
        json_t *value;   /* NULL: delete the key */
        int valid;
    } rows[] = {
        {"amount", json_integer(100000), 0},                 /* the amount */
        {"balance_after", json_integer(1001), 0},            /* the balance, by one */
        {"iccid", json_string("8944110068256270054"), 0},    /* another SIM */
        {"number", json_string("R0000000009"), 0},           /* the number */
        {"served_by", NULL, 0},                              /* a signed field dropped */
        {"extra", json_string("x"), 0},                      /* a field added */
        {"signature", NULL, 0},                              /* no signature */
        {"signature", json_string("AAAA"), 0},               /* a short signature */
        {"signature", json_string("not base64!"), 0},        /* garbage */
        {"key_id", json_string("0000000000000000"), 0},      /* not signed, but names another key */
        {"key_id", json_integer(7), 0},                      /* or no key id at all */
        {"key_id", NULL, 1},                                 /* nor needed */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *c = json_deep_copy(o);
        if (rows[i].value)
            json_object_set_new(c, rows[i].key, rows[i].value);
        else
            json_object_del(c, rows[i].key);
        char *text = json_dumps(c, JSON_COMPACT);   /* key order need not be canonical */
        assert_non_null(text);
        if (receipt_verify(&t->keys, text, strlen(text)) != rows[i].valid)
            print_error("row %zu (%s)\n", i, rows[i].key);
        assert_int_equal(receipt_verify(&t->keys, text, strlen(text)), rows[i].valid);
        free(text);
        json_decref(c);
    }
    /* Keys out of order and whitespace: still valid (verification re-serialises). */
    char *pretty = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    assert_int_equal(receipt_verify(&t->keys, pretty, strlen(pretty)), 1);
    free(pretty);
    json_decref(o);

    /* Another signature in the right form: one bit flipped. */
    char *flipped = arena_strdup(t->tx.a, doc);
    char *sigpos = strstr(flipped, "\"signature\":\"");
    assert_non_null(sigpos);
    sigpos += strlen("\"signature\":\"");
    sigpos[1] = sigpos[1] == 'A' ? 'B' : 'A';
    assert_int_equal(receipt_verify(&t->keys, flipped, strlen(flipped)), 0);

    /* Another key. */
    struct receipt_keys other;
    unsigned char seed[32] = {1};
    receipt_keys_from_seed(&other, seed);
    assert_string_not_equal(other.key_id, t->keys.key_id);
    assert_int_equal(receipt_verify(&other, doc, strlen(doc)), 0);

    /* Not a receipt at all. */
    assert_int_equal(receipt_verify(&t->keys, "", 0), 0);
    assert_int_equal(receipt_verify(&t->keys, "[1,2]", 5), 0);
    assert_int_equal(receipt_verify(&t->keys, doc, strlen(doc) - 1), 0);   /* truncated */
    tu_ledger_ok(t);
}

/* The hand-built payload is canonical for every kind of value it carries:
 * principals, a SIM without MSISDN, every channel and method, a fee. */
static void test_receipt_canonical(void **state)
{
    struct tu *t = *state;
    t->cf.reactivation_fee = 100;
    t->cf.validity_rule = VALIDITY_RESET;   /* all of them: active until T0 + 30 d */
    const char *principals[] = {"token:12", "sweeper", "cli", "anonymous", "agent:张三"};
    struct sim bare = {0};
    tu_iccid(777, bare.iccid);
    int existed;
    assert_int_equal(TU_CMD(t, sim_create(&t->tx, &bare, &existed)), 0);
    int n = 0;
    for (int c = 0; c < CHANNEL__COUNT; c++)
        for (int m = 0; m < METHOD__COUNT; m++, n++) {
            t->tx.principal = principals[n % 5];
            struct topup_req req = {.iccid = bare.iccid, .amount = 100 + n, .currency = "CNY", .channel = c,
                                    .method = m};
            struct topup_result out;
            assert_int_equal(TU_CMD(t, topup_apply(&t->tx, &req, &out)), 0);
            struct topup_answer v;
            topup_answer_from(&t->tx, &req, &out, &v);
            const char *receipt = topup_receipt(t->tx.a, &v);
            canonical(receipt);
            const char *doc = sign(t, receipt);
            assert_int_equal(receipt_verify(&t->keys, doc, strlen(doc)), 1);
            json_t *o = json_loads(doc, 0, NULL);
            assert_non_null(o);
            assert_string_equal(json_str(o, "msisdn"), "");
            assert_string_equal(json_str(o, "served_by"), principals[n % 5]);
            assert_string_equal(json_str(o, "channel"), topup_channel_name(c));
            assert_string_equal(json_str(o, "method"), topup_method_name(m));
            json_decref(o);
        }
    /* An expired SIM: the fee is in the receipt. */
    tu_at(t, TU_T0 + 70 * TU_DAY);
    t->tx.principal = NULL;   /* no principal: served by "system" */
    struct topup_result out;
    topup_ok(t, bare.iccid, 1000, &out);
    const char *receipt = receipt_of(t, bare.iccid, 1000, &out);
    assert_int_equal(out.fee, 100);
    canonical(receipt);
    assert_non_null(strstr(receipt, "\"reactivation_fee\":100,"));
    assert_non_null(strstr(receipt, "\"served_by\":\"system\""));
    t->tx.principal = "test";
    tu_ledger_ok(t);
}

/* Per top-up limits and currency (defaults: 100..200000 fen of CNY); a
 * refusal changes nothing. */
static void test_limits(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    const struct {
        int64_t amount;
        const char *currency;
        int channel, method;
        int want;
    } rows[] = {
        {0, "CNY", CHANNEL_portal, METHOD_alipay, ERR_INVALID_AMOUNT},           /* zero */
        {-100, "CNY", CHANNEL_portal, METHOD_alipay, ERR_INVALID_AMOUNT},        /* negative */
        {99, "CNY", CHANNEL_portal, METHOD_alipay, ERR_AMOUNT_TOO_SMALL},        /* a fen below the minimum */
        {200001, "CNY", CHANNEL_portal, METHOD_alipay, ERR_AMOUNT_TOO_LARGE},    /* a fen above the maximum */
        {1000, "USD", CHANNEL_portal, METHOD_alipay, ERR_CURRENCY_MISMATCH},     /* another currency */
        {1000, "cny", CHANNEL_portal, METHOD_alipay, ERR_CURRENCY_MISMATCH},     /* case matters */
        {1000, NULL, CHANNEL_portal, METHOD_alipay, ERR_CURRENCY_MISMATCH},      /* no currency */
        {1000, "CNY", CHANNEL__COUNT, METHOD_alipay, ERR_INVALID_CHANNEL},       /* channel out of range */
        {1000, "CNY", -1, METHOD_alipay, ERR_INVALID_CHANNEL},                   /* negative channel */
        {1000, "CNY", CHANNEL_portal, METHOD__COUNT, ERR_INVALID_METHOD},        /* method out of range */
        {100, "CNY", CHANNEL_kiosk, METHOD_cash, 0},                             /* the minimum */
        {200000, "CNY", CHANNEL_agent, METHOD_bank_card, 0},                     /* the maximum */
    };
    int64_t balance = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct snap before = snap(t, s.iccid);
        struct topup_req req = {.iccid = s.iccid, .amount = rows[i].amount, .currency = rows[i].currency,
                                .channel = rows[i].channel, .method = rows[i].method};
        struct topup_result out;
        int rc = TU_CMD(t, topup_apply(&t->tx, &req, &out));
        if (rc != rows[i].want)
            print_error("row %zu: %s\n", i, err_code(rc));
        assert_int_equal(rc, rows[i].want);
        /* The API's pre-check agrees on amount and currency. */
        int pre = topup_check_amount(&t->cf, rows[i].amount, rows[i].currency);
        if (rows[i].want != ERR_INVALID_CHANNEL && rows[i].want != ERR_INVALID_METHOD)
            assert_int_equal(pre, rows[i].want);
        if (rc) {
            same_snap(snap(t, s.iccid), before);
        } else {
            balance += rows[i].amount;
            assert_int_equal(out.balance, balance);
        }
    }
    struct topup_req req = {.iccid = "8944110068256270054", .amount = 1000, .currency = "CNY"};
    struct topup_result out;
    assert_int_equal(TU_CMD(t, topup_apply(&t->tx, &req, &out)), ERR_SIM_NOT_FOUND);

    /* Another configuration. */
    t->cf.topup_min = 500;
    t->cf.topup_max = 600;
    strcpy(t->cf.currency, "RUB");
    assert_int_equal(topup_check_amount(&t->cf, 499, "RUB"), ERR_AMOUNT_TOO_SMALL);
    assert_int_equal(topup_check_amount(&t->cf, 601, "RUB"), ERR_AMOUNT_TOO_LARGE);
    assert_int_equal(topup_check_amount(&t->cf, 550, "CNY"), ERR_CURRENCY_MISMATCH);
    assert_int_equal(topup_check_amount(&t->cf, 550, "RUB"), 0);
    conf_defaults(&t->cf);
    tu_ledger_ok(t);
}

/* The daily cap per SIM over the local day (tz_offset_minutes). Each row is a
 * top-up at a time after T0 (2026-01-01T00:00Z). */
struct cap_row {
    int64_t at, amount;
    int want;
};

static void run_cap(struct tu *t, const struct cap_row *rows, size_t n)
{
    struct sim s;
    tu_sim(t, &s);
    for (size_t i = 0; i < n; i++) {
        tu_at(t, TU_T0 + rows[i].at);
        struct snap before = snap(t, s.iccid);
        int rc = topup(t, s.iccid, rows[i].amount, NULL);
        if (rc != rows[i].want)
            print_error("row %zu: %s\n", i, err_code(rc));
        assert_int_equal(rc, rows[i].want);
        if (rc)
            same_snap(snap(t, s.iccid), before);
    }
    tu_ledger_ok(t);
}

static void test_daily_cap_shanghai(void **state)
{
    struct tu *t = *state;   /* default: cap 500000, UTC+8: the local day turns at 16:00Z */
    const int64_t H = 3600;
    const struct cap_row rows[] = {
        {0, 200000, 0},                         /* 08:00 local */
        {H, 200000, 0},                         /* 400000 today */
        {2 * H, 100001, ERR_DAILY_LIMIT},       /* one fen over the cap */
        {2 * H, 100000, 0},                     /* exactly the cap */
        {3 * H, 100, ERR_DAILY_LIMIT},          /* the cap is reached */
        {16 * H - 1, 100, ERR_DAILY_LIMIT},     /* 23:59:59 local: still the same day */
        {16 * H, 200000, 0},                    /* local midnight (16:00Z): a new day */
        {24 * H, 200000, 0},                    /* a new UTC date, the same local day: 400000 */
        {30 * H, 100001, ERR_DAILY_LIMIT},      /* 14:00 local: over the cap */
        {40 * H - 1, 100001, ERR_DAILY_LIMIT},  /* 23:59:59 local */
        {40 * H, 200000, 0},                    /* 00:00 local of the day after */
    };
    run_cap(t, rows, sizeof rows / sizeof rows[0]);
}

static void test_daily_cap_utc_and_moscow(void **state)
{
    struct tu *t = *state;
    const int64_t H = 3600;
    t->cf.daily_cap = 1000;
    t->cf.tz_offset_minutes = 0;
    const struct cap_row utc[] = {
        {0, 1000, 0},                     /* 00:00Z */
        {16 * H, 100, ERR_DAILY_LIMIT},   /* 16:00Z: a new day in Shanghai, not in UTC */
        {24 * H - 1, 100, ERR_DAILY_LIMIT},
        {24 * H, 1000, 0},                /* the UTC day turns */
    };
    run_cap(t, utc, sizeof utc / sizeof utc[0]);
    t->cf.tz_offset_minutes = 180;        /* Moscow: the day turns at 21:00Z */
    const struct cap_row msk[] = {
        {0, 1000, 0},                     /* 03:00 local */
        {21 * H - 1, 100, ERR_DAILY_LIMIT},
        {21 * H, 1000, 0},                /* local midnight */
        {44 * H, 100, ERR_DAILY_LIMIT},   /* 23:00 local, the same local day */
        {45 * H, 100, 0},                 /* the next local midnight */
    };
    run_cap(t, msk, sizeof msk / sizeof msk[0]);
    t->cf.tz_offset_minutes = -300;       /* New York (EST): the day turns at 05:00Z */
    const struct cap_row nyc[] = {
        {0, 1000, 0},                     /* 19:00 local, the day before */
        {5 * H - 1, 100, ERR_DAILY_LIMIT},
        {5 * H, 1000, 0},                 /* local midnight */
    };
    run_cap(t, nyc, sizeof nyc / sizeof nyc[0]);
}

/* Terminated and suspended SIMs are refused and nothing changes. */
static void test_refused_states(void **state)
{
    struct tu *t = *state;
    struct sim term, susp;
    tu_sim(t, &term);
    tu_sim(t, &susp);
    topup_ok(t, term.iccid, 1000, NULL);
    topup_ok(t, susp.iccid, 1000, NULL);
    susp = tu_sim_get(t, susp.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &susp, 1, NULL)), 0);

    tu_at(t, TU_T0 + 151 * TU_DAY);   /* past 30 + 30 + 90 days */
    int moved = 0, more = -1;
    assert_int_equal(TU_CMD(t, sim_sweep(&t->tx, 100, &moved, &more)), 0);
    assert_int_equal(more, 0);
    assert_int_equal(moved, 1);
    assert_int_equal(tu_sim_get(t, term.iccid).state, SIM_TERMINATED);

    struct snap b1 = snap(t, term.iccid), b2 = snap(t, susp.iccid);
    assert_int_equal(topup(t, term.iccid, 1000, NULL), ERR_SIM_TERMINATED);
    assert_int_equal(topup(t, susp.iccid, 1000, NULL), ERR_SIM_SUSPENDED);
    same_snap(snap(t, term.iccid), b1);
    same_snap(snap(t, susp.iccid), b2);
    assert_int_equal(b1.balance, 0);      /* forfeited at termination */
    assert_int_equal(b2.balance, 1000);   /* suspension keeps the money */

    /* A SIM the sweeper has not reached yet is settled by the top-up itself. */
    struct sim late;
    tu_at(t, TU_T0 + 151 * TU_DAY);
    tu_sim(t, &late);
    topup_ok(t, late.iccid, 1000, NULL);
    tu_at(t, TU_T0 + 400 * TU_DAY);
    struct snap b3 = snap(t, late.iccid);
    assert_int_equal(b3.state, SIM_ACTIVE);   /* as stored */
    assert_int_equal(topup(t, late.iccid, 1000, NULL), ERR_SIM_TERMINATED);
    same_snap(snap(t, late.iccid), b3);       /* the refusal rolled the settlement back too */
    tu_ledger_ok(t);
}

/* In grace a top-up reactivates for free, even with a fee configured. */
static void test_grace_reactivation(void **state)
{
    struct tu *t = *state;
    t->cf.reactivation_fee = 500;
    struct sim s;
    tu_sim(t, &s);
    topup_ok(t, s.iccid, 1000, NULL);
    tu_at(t, TU_T0 + 35 * TU_DAY);   /* validity ended 5 days ago */
    struct topup_result out;
    topup_ok(t, s.iccid, 1000, &out);
    assert_int_equal(out.reactivated, 1);
    assert_int_equal(out.fee, 0);
    assert_int_equal(out.balance, 2000);
    assert_int_equal(out.sim.state, SIM_ACTIVE);
    assert_int_equal(out.sim.active_until, TU_T0 + 65 * TU_DAY);   /* from now, not from the old end */
    assert_int_equal(tu_sim_get(t, s.iccid).state, SIM_ACTIVE);
    assert_int_equal(tu_system_balance(t, "revenue_reactivation", "CNY"), 0);
    tu_ledger_ok(t);
}

/* Expired: the top-up reactivates and the fee is charged from the new
 * balance; if the balance with the top-up does not cover it, nothing happens. */
static void test_expired_reactivation_fee(void **state)
{
    struct tu *t = *state;
    t->cf.reactivation_fee = 5000;
    struct sim s;
    tu_sim(t, &s);
    topup_ok(t, s.iccid, 1000, NULL);
    tu_at(t, TU_T0 + 65 * TU_DAY);   /* past validity and grace */
    struct snap before = snap(t, s.iccid);
    assert_int_equal(before.state, SIM_ACTIVE);   /* stored; the clock says expired */

    /* 1000 + 3999 < 5000 */
    assert_int_equal(topup(t, s.iccid, 3999, NULL), ERR_INSUFFICIENT_BALANCE);
    same_snap(snap(t, s.iccid), before);
    assert_int_equal(tu_system_balance(t, "revenue_reactivation", "CNY"), 0);

    /* 1000 + 4000 = 5000: exactly covered, balance 0 after. */
    struct topup_result out;
    topup_ok(t, s.iccid, 4000, &out);
    const char *receipt = receipt_of(t, s.iccid, 4000, &out);
    assert_int_equal(out.reactivated, 1);
    assert_int_equal(out.fee, 5000);
    assert_int_equal(out.balance, 0);
    assert_int_equal(out.sim.state, SIM_ACTIVE);
    assert_int_equal(out.sim.active_until, TU_T0 + 95 * TU_DAY);
    assert_int_equal(tu_sim_balance(t, &s), 0);
    assert_int_equal(tu_system_balance(t, "revenue_reactivation", "CNY"), 5000);
    char buf[512];
    records(t, &s, buf);
    assert_string_equal(buf, "reactivation_fee:-5000:0:R0000000002:-:-;"
                             "topup:4000:5000:R0000000002:portal:alipay;"
                             "topup:1000:1000:R0000000001:portal:alipay;");
    json_t *o = json_loads(receipt, 0, NULL);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "reactivation_fee")), 5000);
    assert_int_equal(json_integer_value(json_object_get(o, "balance_after")), 0);
    json_decref(o);

    /* A second expiry with a smaller fee: charged again. */
    t->cf.reactivation_fee = 300;
    tu_at(t, TU_T0 + 160 * TU_DAY);   /* 95 + 30 < 160 < 95 + 120 */
    topup_ok(t, s.iccid, 1000, &out);
    assert_int_equal(out.fee, 300);
    assert_int_equal(out.balance, 700);
    tu_ledger_ok(t);
}

static void make_plan(struct tu *t, struct plan *p, const char *code, int64_t price, int64_t days,
                      int64_t data, int64_t voice, int64_t sms)
{
    memset(p, 0, sizeof *p);
    snprintf(p->code, sizeof p->code, "%s", code);
    strcpy(p->name_zh, "流量包");
    strcpy(p->name_en, "Data pack");
    strcpy(p->name_ru, "Пакет");
    p->price = price;
    strcpy(p->currency, "CNY");
    p->validity_days = days;
    p->allowance[SVC_DATA] = data;
    p->allowance[SVC_VOICE] = voice;
    p->allowance[SVC_SMS] = sms;
    strcpy(p->zones, "[\"250\",\"460\"]");
    int existed = -1;
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, p, &existed)), 0);
    assert_int_equal(existed, 0);
    assert_true(p->id > 0);
}

struct bundles_seen {
    int n;
    struct bundle b[4];
};

static void collect(void *arg, const struct bundle *b)
{
    struct bundles_seen *s = arg;
    if (s->n < 4)
        s->b[s->n] = *b;
    s->n++;
}

static void test_plan_create(void **state)
{
    struct tu *t = *state;
    struct plan p, q;
    make_plan(t, &p, "data10", 3000, 30, INT64_C(10) << 30, 0, 50);
    assert_int_equal(plan_get(&t->tx, "data10", &q), 0);
    assert_int_equal(q.id, p.id);
    assert_string_equal(q.name_zh, "流量包");
    assert_string_equal(q.name_ru, "Пакет");
    assert_int_equal(q.price, 3000);
    assert_int_equal(q.allowance[SVC_DATA], INT64_C(10) << 30);
    assert_int_equal(q.allowance[SVC_SMS], 50);
    assert_string_equal(q.zones, "[\"250\",\"460\"]");
    assert_int_equal(q.active, 1);
    assert_int_equal(plan_get(&t->tx, "nope", &q), ERR_PLAN_NOT_FOUND);

    int existed = -1;
    q = p;
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, &q, &existed)), 0);   /* the same again */
    assert_int_equal(existed, 1);
    assert_int_equal(q.id, p.id);
    q.price = 3001;   /* the same code, another price */
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, &q, &existed)), ERR_PLAN_EXISTS);
    q = p;
    q.allowance[SVC_VOICE] = 1;   /* another allowance */
    assert_int_equal(TU_CMD(t, plan_create(&t->tx, &q, &existed)), ERR_PLAN_EXISTS);

    const struct {
        const char *code;
        int valid;
    } codes[] = {
        {"data10", 1},                                 /* letters and digits */
        {"a_b-c", 1},                                  /* underscore and dash */
        {"abcdefghijklmnopqrstuvwxyz012345", 1},       /* 32: the longest */
        {"abcdefghijklmnopqrstuvwxyz0123456", 0},      /* 33 */
        {"", 0},                                       /* empty */
        {"Data10", 0},                                 /* upper case */
        {"data 10", 0},                                /* a space */
        {"data/10", 0},                                /* a slash */
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_int_equal(plan_code_valid(codes[i].code), codes[i].valid);
    tu_ledger_ok(t);
}

/* Buying a plan: the price leaves the wallet, the units arrive in buckets
 * owned by the bundle, and each refusal leaves nothing. */
static void test_plan_buy(void **state)
{
    struct tu *t = *state;
    struct plan p, free_plan;
    const int64_t GB10 = INT64_C(10) << 30;
    make_plan(t, &p, "data10", 3000, 30, GB10, 0, 50);
    make_plan(t, &free_plan, "welcome", 0, 7, 0, 600, 0);
    struct sim s, idle;
    tu_sim(t, &s);
    tu_sim(t, &idle);
    topup_ok(t, s.iccid, 5000, NULL);
    s = tu_sim_get(t, s.iccid);

    struct bundle b;
    int64_t after = -1;
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &p, &b, &after)), 0);
    assert_int_equal(after, 2000);
    assert_int_equal(tu_sim_balance(t, &s), 2000);
    assert_int_equal(tu_system_balance(t, "revenue_plans", "CNY"), 3000);
    assert_int_equal(b.expires_at, TU_T0 + 30 * TU_DAY);
    assert_true(b.account[SVC_DATA] > 0 && b.account[SVC_SMS] > 0);
    assert_int_equal(b.account[SVC_VOICE], 0);
    assert_int_equal(tu_balance(t, b.account[SVC_DATA]), GB10);
    assert_int_equal(tu_balance(t, b.account[SVC_SMS]), 50);
    assert_string_equal(tu_account(t, b.account[SVC_DATA]).unit, "bytes");
    assert_int_equal(tu_account(t, b.account[SVC_DATA]).flags, LEDGER_NO_OVERDRAFT);
    assert_int_equal(tu_system_balance(t, "issuance", "bytes"), -GB10);
    assert_int_equal(tu_system_balance(t, "issuance", "sms"), -50);
    struct bundles_seen seen = {0};
    assert_int_equal(bundle_list(&t->tx, s.id, collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.b[0].id, b.id);
    assert_string_equal(seen.b[0].plan_code, "data10");
    assert_string_equal(seen.b[0].state, "active");
    assert_int_equal(seen.b[0].remaining[SVC_DATA], GB10);
    assert_int_equal(seen.b[0].remaining[SVC_SMS], 50);
    assert_int_equal(seen.b[0].remaining[SVC_VOICE], 0);
    char buf[512];
    records(t, &s, buf);
    assert_string_equal(buf, "bundle_purchase:-3000:2000:-:-:-;topup:5000:5000:R0000000001:portal:alipay;");
    tu_ledger_ok(t);

    /* 2000 left: the plan costs 3000. */
    struct snap before = snap(t, s.iccid);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &p, &b, &after)), ERR_INSUFFICIENT_BALANCE);
    same_snap(snap(t, s.iccid), before);

    /* A free plan needs no money. */
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &free_plan, &b, &after)), 0);
    assert_int_equal(after, 2000);
    assert_int_equal(tu_balance(t, b.account[SVC_VOICE]), 600);

    /* Not sold, another currency. */
    struct plan off = p;
    off.active = 0;
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &off, &b, &after)), ERR_PLAN_NOT_SOLD);
    struct plan usd = p;
    strcpy(usd.currency, "USD");
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &usd, &b, &after)), ERR_CURRENCY_MISMATCH);

    /* Only an active SIM buys: never activated, in grace, suspended. */
    before = snap(t, idle.iccid);
    idle = tu_sim_get(t, idle.iccid);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &idle, &free_plan, &b, &after)), ERR_SIM_NOT_ACTIVE);
    same_snap(snap(t, idle.iccid), before);
    tu_at(t, TU_T0 + 31 * TU_DAY);
    s = tu_sim_get(t, s.iccid);
    before = snap(t, s.iccid);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &free_plan, &b, &after)), ERR_SIM_NOT_ACTIVE);
    same_snap(snap(t, s.iccid), before);
    topup_ok(t, s.iccid, 1000, NULL);   /* reactivated */
    s = tu_sim_get(t, s.iccid);
    assert_int_equal(TU_CMD(t, sim_suspend(&t->tx, &s, 1, NULL)), 0);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &free_plan, &b, &after)), ERR_SIM_SUSPENDED);
    tu_ledger_ok(t);
}

/* A terminated SIM buys nothing, even a plan its state would not otherwise
 * refuse first, and the refusal changes nothing (sim_settle_for_money). */
static void test_plan_buy_terminated(void **state)
{
    struct tu *t = *state;
    struct plan free_plan;
    make_plan(t, &free_plan, "gone", 0, 7, 1000000, 0, 0);
    struct sim s;
    tu_sim(t, &s);
    topup_ok(t, s.iccid, 1000, NULL);
    tu_at(t, TU_T0 + 151 * TU_DAY);   /* past 30 + 30 + 90 days: terminated when settled */
    s = tu_sim_get(t, s.iccid);
    struct snap before = snap(t, s.iccid);
    struct bundle b;
    int64_t after;
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &free_plan, &b, &after)), ERR_SIM_TERMINATED);
    same_snap(snap(t, s.iccid), before);   /* the settlement rolled back with the refusal */
    tu_ledger_ok(t);
}

/* bundle_sweep expires bundles at expires_at and moves what is left to expiry:<unit>. */
static void test_bundle_sweep(void **state)
{
    struct tu *t = *state;
    struct plan week, month;
    make_plan(t, &week, "week", 1000, 7, 1000000, 0, 0);
    make_plan(t, &month, "month", 1000, 30, 5000000, 120, 0);
    struct sim s;
    tu_sim(t, &s);
    topup_ok(t, s.iccid, 5000, NULL);
    s = tu_sim_get(t, s.iccid);
    struct bundle bw, bm;
    int64_t after;
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &week, &bw, &after)), 0);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &month, &bm, &after)), 0);

    /* Some of the week's data is used (as charging would). */
    int64_t usage;
    assert_int_equal(ledger_system_account(&t->tx, "usage", "bytes", &usage), 0);
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){.xid = "use1", .debit = bw.account[SVC_DATA],
                                                                          .credit = usage, .amount = 250000,
                                                                          .unit = "bytes", .kind = "usage"})),
                     0);

    const struct {
        int64_t at;
        int count;
        int64_t expiry_bytes, expiry_seconds;
    } rows[] = {
        {7 * TU_DAY - 1, 0, 0, 0},               /* the last second of the week's bundle */
        {7 * TU_DAY, 1, 750000, 0},              /* it expires with what was left */
        {8 * TU_DAY, 0, 750000, 0},              /* once */
        {30 * TU_DAY, 1, 5750000, 120},          /* the month's, with voice */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tu_at(t, TU_T0 + rows[i].at);
        int n = -1;
        assert_int_equal(TU_CMD(t, bundle_sweep(&t->tx, 100, &n)), 0);
        if (n != rows[i].count)
            print_error("row %zu: %d\n", i, n);
        assert_int_equal(n, rows[i].count);
        assert_int_equal(tu_system_balance(t, "expiry", "bytes"), rows[i].expiry_bytes);
        assert_int_equal(tu_system_balance(t, "expiry", "seconds"), rows[i].expiry_seconds);
        tu_ledger_ok(t);
    }
    struct bundles_seen seen = {0};
    assert_int_equal(bundle_list(&t->tx, s.id, collect, &seen), 0);
    assert_int_equal(seen.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(seen.b[i].state, "expired");
        assert_int_equal(seen.b[i].remaining[SVC_DATA], 0);
        assert_int_equal(seen.b[i].remaining[SVC_VOICE], 0);
    }
    assert_int_equal(tu_balance(t, usage), 250000);
    assert_int_equal(tu_sim_balance(t, &s), 3000);   /* money is not touched */
    tu_ledger_ok(t);
}

/* bundle_sweep(limit = 1) expires one due bundle, as plan.h says; until
 * 005bc3d it expired every one its query found (up to 64). */
static void test_bundle_sweep_limit(void **state)
{
    struct tu *t = *state;
    struct plan p;
    make_plan(t, &p, "tiny", 100, 1, 1000, 0, 0);
    struct sim s;
    tu_sim(t, &s);
    topup_ok(t, s.iccid, 1000, NULL);
    s = tu_sim_get(t, s.iccid);
    struct bundle b;
    int64_t after;
    for (int i = 0; i < 3; i++)
        assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &s, &p, &b, &after)), 0);
    tu_at(t, TU_T0 + 2 * TU_DAY);
    int n = -1;
    assert_int_equal(TU_CMD(t, bundle_sweep(&t->tx, 1, &n)), 0);
    assert_int_equal(n, 1);
}

/* A bundle with an open reservation of units still expires, and so do the
 * others. Until 005bc3d close_bundle moved the bucket's posted balance,
 * ignoring pending debits (ERR_INSUFFICIENT_BALANCE from the NO_OVERDRAFT
 * check), and bundle_sweep, which stops at the first error, was stuck. */
static void test_bundle_sweep_with_reservation(void **state)
{
    struct tu *t = *state;
    struct plan p;
    make_plan(t, &p, "week", 100, 7, 1000000, 0, 0);
    struct sim a, b;
    struct bundle ba, bb;
    int64_t after;
    tu_sim(t, &a);
    tu_sim(t, &b);
    topup_ok(t, a.iccid, 1000, NULL);
    topup_ok(t, b.iccid, 1000, NULL);
    a = tu_sim_get(t, a.iccid);
    b = tu_sim_get(t, b.iccid);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &a, &p, &ba, &after)), 0);
    assert_int_equal(TU_CMD(t, plan_buy(&t->tx, &b, &p, &bb, &after)), 0);
    int64_t usage;
    assert_int_equal(ledger_system_account(&t->tx, "usage", "bytes", &usage), 0);
    /* A charging session holds 1000 bytes of a's bucket. */
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){.xid = "hold", .debit = ba.account[SVC_DATA],
                                                                          .credit = usage, .amount = 1000,
                                                                          .unit = "bytes", .kind = "reserve",
                                                                          .flags = XFER_PENDING})),
                     0);
    tu_at(t, TU_T0 + 7 * TU_DAY);
    int n = -1;
    int rc = TU_CMD(t, bundle_sweep(&t->tx, 100, &n));
    if (rc)
        print_error("bundle_sweep: %s\n", err_code(rc));
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
}

struct page {
    int n;
    int64_t ids[8], amounts[8];
};

static void page_add(void *arg, const struct record *r)
{
    struct page *p = arg;
    if (p->n < 8) {
        p->ids[p->n] = r->id;
        p->amounts[p->n] = r->amount;
    }
    p->n++;
}

/* record_list pages newest first with a cursor (ids below `before`). */
static void test_record_pages(void **state)
{
    struct tu *t = *state;
    struct sim s, other;
    tu_sim(t, &s);
    tu_sim(t, &other);
    for (int i = 1; i <= 5; i++) {
        tu_at(t, TU_T0 + i);
        topup_ok(t, s.iccid, 100 * i, NULL);
        topup_ok(t, other.iccid, 1000, NULL);   /* interleaved: never listed for s */
    }
    const struct {
        int limit, n, more;
        int64_t first_amount;
    } rows[] = {
        {2, 2, 1, 500},   /* newest two */
        {2, 2, 1, 300},   /* the next two */
        {2, 1, 0, 100},   /* the last one: no more */
    };
    int64_t before = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct page p = {0};
        int more = -1;
        assert_int_equal(record_list(&t->tx, s.id, before, rows[i].limit, page_add, &p, &more), 0);
        assert_int_equal(p.n, rows[i].n);
        assert_int_equal(more, rows[i].more);
        assert_int_equal(p.amounts[0], rows[i].first_amount);
        for (int k = 1; k < p.n; k++)
            assert_true(p.ids[k] < p.ids[k - 1]);   /* newest first */
        before = p.ids[p.n - 1];
    }
    struct page p = {0};
    int more = -1;
    assert_int_equal(record_list(&t->tx, s.id, 0, 100, page_add, &p, &more), 0);
    assert_int_equal(p.n, 5);   /* exactly the limit's worth: no more */
    assert_int_equal(more, 0);
    p.n = 0;
    assert_int_equal(record_list(&t->tx, s.id, 0, 5, page_add, &p, &more), 0);
    assert_int_equal(p.n, 5);
    assert_int_equal(more, 0);

    /* A cursor that is not one of s's records (another SIM's, or no record
     * at all) still means "ids below it". */
    struct page all = {0};
    assert_int_equal(record_list(&t->tx, s.id, 0, 8, page_add, &all, &more), 0);
    struct page theirs = {0};
    assert_int_equal(record_list(&t->tx, other.id, 0, 8, page_add, &theirs, &more), 0);
    const int64_t cursors[] = {theirs.ids[1], theirs.ids[0] + 1000, all.ids[2] + 1, 1};
    for (size_t i = 0; i < sizeof cursors / sizeof cursors[0]; i++) {
        int expect = 0;
        for (int k = 0; k < all.n; k++)
            expect += all.ids[k] < cursors[i];
        p.n = 0;
        assert_int_equal(record_list(&t->tx, s.id, cursors[i], 10, page_add, &p, &more), 0);
        assert_int_equal(p.n, expect);
        assert_int_equal(more, 0);
        for (int k = 0; k < p.n; k++)
            assert_int_equal(p.ids[k], all.ids[all.n - expect + k]);
    }
    assert_int_equal(all.n, 5);
    tu_ledger_ok(t);
}

/* Channel and method names round-trip. */
static void test_names(void **state)
{
    for (int c = 0; c < CHANNEL__COUNT; c++)
        assert_int_equal(topup_channel_parse(topup_channel_name(c)), c);
    for (int m = 0; m < METHOD__COUNT; m++)
        assert_int_equal(topup_method_parse(topup_method_name(m)), m);
    assert_int_equal(topup_channel_parse("web"), -1);
    assert_int_equal(topup_channel_parse(NULL), -1);
    assert_int_equal(topup_method_parse("paypal"), -1);
    assert_int_equal(topup_method_parse("bank_card"), METHOD_bank_card);
    assert_string_equal(topup_channel_name(CHANNEL__COUNT), "?");
    assert_string_equal(topup_method_name(-1), "?");
}

/* record.h, migration 010: a top-up is its own record (its topups row) and
 * every other record a sim_txns row, in one chain with one sequence of ids:
 * listed newest first across both tables, paged with a cursor from either,
 * and a sim_txns record written the old way (a top-up's, before 010) too. */
STORE_SQL(Q_LEGACY_TOPUP, "UPDATE topups SET prev = NULL WHERE id = ?");
STORE_SQL(Q_SIM_TXNS_OF, "SELECT COUNT(*) FROM sim_txns WHERE topup_id = ?");

static void test_records_span_both_tables(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    struct topup_result a, b;
    /* As before 010: the top-up's row is no record, a sim_txns row is. */
    tu_at(t, TU_T0 + 1);
    topup_ok(t, s.iccid, 100, &a);
    assert_int_equal(tu_scalar_i(t, &Q_SIM_TXNS_OF, a.id), 0);   /* now none */
    int64_t legacy;
    assert_int_equal(record_link(&t->tx, s.id, 0), 0);   /* a's record becomes a sim_txns row */
    assert_int_equal(record_insert(&t->tx, &(struct record){.sim_id = s.id, .kind = "topup", .amount = 100,
                                                            .currency = "CNY", .balance_after = 100,
                                                            .topup_id = a.id, .receipt = a.receipt_number},
                                   &legacy), 0);
    assert_int_equal(record_link(&t->tx, s.id, legacy), 0);
    assert_int_equal(store_exec(t->st, &Q_LEGACY_TOPUP, "i", a.id), 0);
    tu_at(t, TU_T0 + 2);
    topup_ok(t, s.iccid, 200, &b);
    int64_t gone;
    assert_int_equal(record_add(&t->tx, &(struct record){.sim_id = s.id, .kind = "forfeiture", .amount = -300,
                                                         .currency = "CNY", .balance_after = 0}, NULL), 0);
    assert_int_equal(record_next_id(&t->tx, &gone), 0);
    gone--;   /* the forfeiture's id: the last the sequence gave */
    struct topup_result c;
    tu_at(t, TU_T0 + 3);
    topup_ok(t, s.iccid, 400, &c);
    assert_true(legacy < b.id && b.id < gone && gone < c.id);

    char buf[1024];
    records(t, &s, buf);
    char want[512];
    snprintf(want, sizeof want, "topup:400:%lld:%s:portal:alipay;forfeiture:-300:0:-:-:-;topup:200:300:%s:portal:alipay;"
             "topup:100:100:%s:-:-;", (long long)c.balance, c.receipt_number, b.receipt_number, a.receipt_number);
    assert_string_equal(buf, want);
    const int64_t ids[] = {c.id, gone, b.id, legacy};
    int64_t before = 0;
    for (int i = 0; i < 4; i++) {   /* one a page, the cursor from either table */
        struct page p = {0};
        int more = -1;
        assert_int_equal(record_list(&t->tx, s.id, before, 1, page_add, &p, &more), 0);
        assert_int_equal(p.n, 1);
        assert_int_equal(p.ids[0], ids[i]);
        assert_int_equal(more, i < 3);
        before = p.ids[0];
    }
    struct page p = {0};
    int more = -1;
    assert_int_equal(record_list(&t->tx, s.id, b.id + 1, 10, page_add, &p, &more), 0);   /* no record's id */
    assert_int_equal(p.n, 2);
    assert_int_equal(p.ids[0], b.id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_topup, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_receipt_numbers, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_receipt_composed_from_row, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_receipt_tamper, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_receipt_printable, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_receipt_canonical, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_limits, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_daily_cap_shanghai, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_daily_cap_utc_and_moscow, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_refused_states, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_grace_reactivation, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_expired_reactivation_fee, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_plan_create, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_plan_buy, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_plan_buy_terminated, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bundle_sweep, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bundle_sweep_limit, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_bundle_sweep_with_reservation, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_record_pages, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_records_span_both_tables, tu_setup, tu_teardown),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests_name("topup", tests, NULL, NULL);
}
