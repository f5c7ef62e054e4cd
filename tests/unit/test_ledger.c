/* ledger: conservation, overdraft, idempotent xids, two-phase transfers and a
 * check that can fail (invariants L1..L7 of core/ledger.h). */
#include "testutil.h"

STORE_SQL(Q_PENDING_STATE, "SELECT state FROM transfers WHERE id = (SELECT id FROM transfers WHERE xid = 'p')");
STORE_SQL(Q_TRANSFERS, "SELECT COUNT(*) FROM transfers");
STORE_SQL(Q_SIM_WALLET, "SELECT w_credits_posted * 1000000 + w_debits_posted * 1000 + w_debits_pending FROM sims WHERE id = ?");
STORE_SQL(Q_ACCOUNT_ROW_TOTALS,
          "SELECT debits_pending + debits_posted + credits_pending + credits_posted FROM accounts WHERE id = ?");

/* An account of `unit`, overdraft-limited or not. */
static int64_t account_new(struct tu *t, const char *unit, int flags)
{
    int64_t id = 0;
    assert_int_equal(ledger_account_create(&t->tx, "test", unit, 0, flags, &id), 0);
    assert_true(id > 0);
    return id;
}

static int xfer(struct tu *t, const char *xid, int64_t debit, int64_t credit, int64_t amount, const char *unit)
{
    struct transfer tr = {.xid = xid, .debit = debit, .credit = credit, .amount = amount, .unit = unit,
                          .kind = "test"};
    return TU_CMD(t, ledger_transfer(&t->tx, &tr));
}

static int pending(struct tu *t, const char *xid, int64_t debit, int64_t credit, int64_t amount, int64_t timeout)
{
    struct transfer tr = {.xid = xid, .debit = debit, .credit = credit, .amount = amount, .unit = "CNY",
                          .kind = "hold", .flags = XFER_PENDING, .timeout = timeout};
    return TU_CMD(t, ledger_transfer(&t->tx, &tr));
}

/* Post (amount 0: in full) or void the pending `pxid`. */
static int resolve(struct tu *t, const char *xid, const char *pxid, int flags, int64_t amount)
{
    struct transfer tr = {.xid = xid, .pending_xid = pxid, .amount = amount, .unit = "CNY", .kind = "hold",
                          .flags = flags};
    return TU_CMD(t, ledger_transfer(&t->tx, &tr));
}

struct totals {
    int64_t balance, available, dpend, cpend;
};

static void expect(struct tu *t, int64_t id, struct totals want)
{
    struct account a = tu_account(t, id);
    assert_int_equal(ledger_balance(&a), want.balance);
    assert_int_equal(ledger_available(&a), want.available);
    assert_int_equal(a.debits_pending, want.dpend);
    assert_int_equal(a.credits_pending, want.cpend);
}

/* A deterministic PRNG: the run is the same every time. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(uint64_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state % n;
}

/* L2 and L6 after many random transfers: posted and pending, posts and voids,
 * with the refusals (L3) rolled back; a model of every balance is kept on the
 * side and must match the stored totals. */
static void test_conservation_random(void **state)
{
    struct tu *t = *state;
    enum { UNITS = 3, PER = 5, N = 1500 };
    static const char *units[UNITS] = {"CNY", "bytes", "sms"};
    int64_t id[UNITS][PER], model[UNITS][PER] = {{0}}, held[UNITS][PER] = {{0}};
    for (int u = 0; u < UNITS; u++)
        for (int k = 0; k < PER; k++)   /* account 0 of each unit is the unlimited source */
            id[u][k] = account_new(t, units[u], k ? LEDGER_NO_OVERDRAFT : 0);

    struct open_pending {
        char xid[32];
        int u, from, to;
        int64_t amount;
    } open[N];
    int nopen = 0, ok = 0, refused = 0, posted = 0, voided = 0;
    for (int i = 0; i < N; i++) {
        char xid[32];
        snprintf(xid, sizeof xid, "r%d", i);
        int op = (int)rnd(10);
        if (op < 2 && nopen) {   /* resolve an open pending: post part, post all or void */
            int j = (int)rnd((uint64_t)nopen);
            struct open_pending p = open[j];
            open[j] = open[--nopen];
            int64_t part = op == 0 ? (int64_t)rnd((uint64_t)p.amount) + 1 : 0;
            int flags = rnd(3) == 0 ? XFER_VOID_PENDING : XFER_POST_PENDING;
            struct transfer tr = {.xid = xid, .pending_xid = p.xid, .amount = flags == XFER_POST_PENDING ? part : 0,
                                  .unit = units[p.u], .kind = "hold", .flags = flags};
            assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &tr)), 0);
            int64_t moved = flags == XFER_VOID_PENDING ? 0 : part ? part : p.amount;
            held[p.u][p.from] -= p.amount;
            model[p.u][p.from] -= moved;
            model[p.u][p.to] += moved;
            if (flags == XFER_VOID_PENDING)
                voided++;
            else
                posted++;
            continue;
        }
        int u = (int)rnd(UNITS), from = (int)rnd(PER), to = (int)rnd(PER - 1);
        if (to >= from)
            to++;
        int64_t amount = (int64_t)rnd(1000) + 1;
        int is_pending = op == 9;
        struct transfer tr = {.xid = xid, .debit = id[u][from], .credit = id[u][to], .amount = amount,
                              .unit = units[u], .kind = is_pending ? "hold" : "move",
                              .flags = is_pending ? XFER_PENDING : XFER_POSTED};
        int rc = TU_CMD(t, ledger_transfer(&t->tx, &tr));
        int64_t avail = model[u][from] - held[u][from];
        if (from && amount > avail) {   /* L3: the wallet-like account cannot go below zero */
            assert_int_equal(rc, ERR_INSUFFICIENT_BALANCE);
            refused++;
            continue;
        }
        assert_int_equal(rc, 0);
        ok++;
        if (is_pending) {
            held[u][from] += amount;
            open[nopen++] = (struct open_pending){.u = u, .from = from, .to = to, .amount = amount};
            snprintf(open[nopen - 1].xid, sizeof open[nopen - 1].xid, "%s", xid);
        } else {
            model[u][from] -= amount;
            model[u][to] += amount;
        }
    }
    /* The run exercised every path. */
    assert_true(ok > 500);
    assert_true(refused > 10);
    assert_true(posted > 10 && voided > 10);

    for (int u = 0; u < UNITS; u++) {
        int64_t sum = 0;
        for (int k = 0; k < PER; k++) {
            struct account a = tu_account(t, id[u][k]);
            assert_int_equal(ledger_balance(&a), model[u][k]);
            assert_int_equal(a.debits_pending, held[u][k]);
            if (k)
                assert_true(ledger_available(&a) >= 0);
            sum += ledger_balance(&a);
        }
        assert_int_equal(sum, 0);   /* all balances of a unit sum to zero */
    }
    struct ledger_report r;
    assert_int_equal(ledger_check(&t->tx, &r), 0);
    assert_int_equal(r.violations, 0);
    assert_int_equal(r.nunits, UNITS);
    for (int i = 0; i < r.nunits; i++) {
        assert_int_equal(r.units[i].debits, r.units[i].credits);
        assert_true(r.units[i].debits > 0);
        assert_int_equal(r.units[i].accounts, PER);
    }
    tu_commit(t);   /* and it all is durable as one transaction */
    tu_begin(t);
    tu_ledger_ok(t);
}

/* L3: a NO_OVERDRAFT account cannot be debited below zero, pending debits
 * counted; an unflagged (system) account can. */
static void test_overdraft(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", LEDGER_NO_OVERDRAFT);
    assert_int_equal(xfer(t, "fund", src, a, 100, "CNY"), 0);
    assert_int_equal(tu_balance(t, src), -100);   /* the source may go negative */

    assert_int_equal(xfer(t, "x1", a, b, 101, "CNY"), ERR_INSUFFICIENT_BALANCE);
    expect(t, a, (struct totals){100, 100, 0, 0});
    expect(t, b, (struct totals){0, 0, 0, 0});
    assert_int_equal(xfer(t, "x1", b, a, 1, "CNY"), ERR_INSUFFICIENT_BALANCE);   /* b is empty */

    /* 60 reserved: 40 left to spend. */
    assert_int_equal(pending(t, "p", a, b, 60, 0), 0);
    expect(t, a, (struct totals){100, 40, 60, 0});
    assert_int_equal(xfer(t, "x2", a, b, 41, "CNY"), ERR_INSUFFICIENT_BALANCE);
    assert_int_equal(pending(t, "p2", a, b, 41, 0), ERR_INSUFFICIENT_BALANCE);
    /* Incoming pending credit does not count as money to spend. */
    expect(t, b, (struct totals){0, 0, 0, 60});
    assert_int_equal(xfer(t, "x3", b, src, 1, "CNY"), ERR_INSUFFICIENT_BALANCE);
    assert_int_equal(xfer(t, "x4", a, b, 40, "CNY"), 0);   /* exactly what is available */
    expect(t, a, (struct totals){60, 0, 60, 0});
    assert_int_equal(xfer(t, "x5", a, b, 1, "CNY"), ERR_INSUFFICIENT_BALANCE);
    tu_ledger_ok(t);
}

/* Refusals that change nothing: units, accounts, amounts, ids, flags. */
static void test_refusals(void **state)
{
    struct tu *t = *state;
    enum role { NONE, SRC, WALLET, DATA, GHOST };   /* GHOST: an id no account has */
    int64_t ids[] = {0, account_new(t, "CNY", 0), account_new(t, "CNY", LEDGER_NO_OVERDRAFT), account_new(t, "bytes", 0), 999999};
    assert_int_equal(xfer(t, "fund", ids[SRC], ids[WALLET], 500, "CNY"), 0);
    int64_t before = tu_scalar(t, &Q_TRANSFERS);
    const struct {
        const char *xid;
        enum role debit, credit;
        int64_t amount;
        const char *unit;
        int flags;
        const char *pending_xid;
        int want;
    } rows[] = {
        /* credit account is in bytes */
        {"u1", WALLET, DATA, 5, "CNY", XFER_POSTED, NULL, ERR_UNIT_MISMATCH},
        /* debit account is in bytes */
        {"u2", DATA, SRC, 5, "CNY", XFER_POSTED, NULL, ERR_UNIT_MISMATCH},
        /* both accounts in CNY, the transfer says sms */
        {"u3", WALLET, SRC, 5, "sms", XFER_POSTED, NULL, ERR_UNIT_MISMATCH},
        /* a pending between units */
        {"u4", WALLET, DATA, 5, "CNY", XFER_PENDING, NULL, ERR_UNIT_MISMATCH},
        /* the same account on both sides (L1) */
        {"s1", WALLET, WALLET, 5, "CNY", XFER_POSTED, NULL, ERR_INVALID_PARAMETER},
        /* zero */
        {"a0", WALLET, SRC, 0, "CNY", XFER_POSTED, NULL, ERR_INVALID_AMOUNT},
        /* negative */
        {"a1", WALLET, SRC, -5, "CNY", XFER_POSTED, NULL, ERR_INVALID_AMOUNT},
        /* negative pending */
        {"a2", WALLET, SRC, -1, "CNY", XFER_PENDING, NULL, ERR_INVALID_AMOUNT},
        /* no such credit account */
        {"n1", WALLET, GHOST, 5, "CNY", XFER_POSTED, NULL, ERR_ACCOUNT_NOT_FOUND},
        /* no such debit account */
        {"n2", GHOST, SRC, 5, "CNY", XFER_POSTED, NULL, ERR_ACCOUNT_NOT_FOUND},
        /* empty id */
        {"", WALLET, SRC, 5, "CNY", XFER_POSTED, NULL, ERR_INVALID_PARAMETER},
        /* no id */
        {NULL, WALLET, SRC, 5, "CNY", XFER_POSTED, NULL, ERR_INVALID_PARAMETER},
        /* no unit */
        {"nu", WALLET, SRC, 5, NULL, XFER_POSTED, NULL, ERR_INVALID_PARAMETER},
        /* flags outside the enum */
        {"f8", WALLET, SRC, 5, "CNY", 8, NULL, ERR_INVALID_PARAMETER},
        /* post of a pending that does not exist */
        {"pp", NONE, NONE, 0, "CNY", XFER_POST_PENDING, "nope", ERR_PENDING_NOT_FOUND},
        /* post without naming a pending */
        {"pn", NONE, NONE, 0, "CNY", XFER_POST_PENDING, NULL, ERR_PENDING_NOT_FOUND},
        /* void of a transfer that is not pending */
        {"pv", NONE, NONE, 0, "CNY", XFER_VOID_PENDING, "fund", ERR_PENDING_NOT_FOUND},
        /* an xid already used by another transfer */
        {"fund", WALLET, SRC, 5, "CNY", XFER_POSTED, NULL, ERR_TRANSFER_EXISTS},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct transfer tr = {.xid = rows[i].xid, .debit = ids[rows[i].debit], .credit = ids[rows[i].credit],
                              .amount = rows[i].amount, .unit = rows[i].unit, .kind = "test",
                              .flags = rows[i].flags, .pending_xid = rows[i].pending_xid};
        int rc = TU_CMD(t, ledger_transfer(&t->tx, &tr));
        if (rc != rows[i].want)
            print_error("row %zu (%s): %s, want %s\n", i, rows[i].xid ? rows[i].xid : "NULL", err_code(rc),
                        err_code(rows[i].want));
        assert_int_equal(rc, rows[i].want);
    }
    assert_int_equal(tu_scalar(t, &Q_TRANSFERS), before);
    expect(t, ids[WALLET], (struct totals){500, 500, 0, 0});
    expect(t, ids[SRC], (struct totals){-500, -500, 0, 0});
    expect(t, ids[DATA], (struct totals){0, 0, 0, 0});
    tu_ledger_ok(t);
}

/* L4: an xid is applied once; the same xid with other fields is refused. */
static void test_idempotent_xid(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", 0);
    assert_int_equal(xfer(t, "once", src, a, 300, "CNY"), 0);
    assert_int_equal(xfer(t, "once", src, a, 300, "CNY"), 0);   /* replay: no-op */
    assert_int_equal(tu_balance(t, a), 300);
    assert_int_equal(tu_balance(t, src), -300);
    const struct {
        int64_t debit, credit, amount;
        const char *kind;
        int flags;
        const char *why;
    } rows[] = {
        {src, a, 301, "test", XFER_POSTED, "other amount"},
        {src, b, 300, "test", XFER_POSTED, "other credit account"},
        {b, a, 300, "test", XFER_POSTED, "other debit account"},
        {src, a, 300, "other", XFER_POSTED, "other kind"},
        {src, a, 300, "test", XFER_PENDING, "pending instead of posted"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct transfer tr = {.xid = "once", .debit = rows[i].debit, .credit = rows[i].credit,
                              .amount = rows[i].amount, .unit = "CNY", .kind = rows[i].kind,
                              .flags = rows[i].flags};
        int rc = TU_CMD(t, ledger_transfer(&t->tx, &tr));
        if (rc != ERR_TRANSFER_EXISTS)
            print_error("row %zu (%s): %s\n", i, rows[i].why, err_code(rc));
        assert_int_equal(rc, ERR_TRANSFER_EXISTS);
    }
    assert_int_equal(tu_balance(t, a), 300);
    assert_int_equal(tu_balance(t, b), 0);

    /* The same for a post: replaying it is a no-op, another amount is refused. */
    assert_int_equal(pending(t, "p", a, b, 100, 0), 0);
    assert_int_equal(resolve(t, "post", "p", XFER_POST_PENDING, 40), 0);
    assert_int_equal(resolve(t, "post", "p", XFER_POST_PENDING, 40), 0);
    assert_int_equal(resolve(t, "post", "p", XFER_POST_PENDING, 50), ERR_TRANSFER_EXISTS);
    assert_int_equal(resolve(t, "post", "p", XFER_VOID_PENDING, 0), ERR_TRANSFER_EXISTS);
    expect(t, a, (struct totals){260, 260, 0, 0});
    expect(t, b, (struct totals){40, 40, 0, 0});
    tu_ledger_ok(t);
}

/* L5: a pending reserves on both sides until posted (in full or in part, the
 * rest released) or voided; a closed pending cannot be resolved again. */
static void test_two_phase(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", LEDGER_NO_OVERDRAFT);
    assert_int_equal(xfer(t, "fund", src, a, 1000, "CNY"), 0);

    /* Reserve: available drops, balance does not. */
    assert_int_equal(pending(t, "p", a, b, 300, 0), 0);
    expect(t, a, (struct totals){1000, 700, 300, 0});
    expect(t, b, (struct totals){0, 0, 0, 300});
    assert_int_equal(tu_scalar(t, &Q_PENDING_STATE), PENDING_OPEN);
    tu_ledger_ok(t);   /* pending debits equal pending credits */

    /* Post more than reserved: refused, still open. */
    assert_int_equal(resolve(t, "over", "p", XFER_POST_PENDING, 301), ERR_POST_EXCEEDS_PENDING);
    assert_int_equal(resolve(t, "neg", "p", XFER_POST_PENDING, -1), ERR_INVALID_AMOUNT);
    assert_int_equal(tu_scalar(t, &Q_PENDING_STATE), PENDING_OPEN);
    expect(t, a, (struct totals){1000, 700, 300, 0});

    /* Post in full. */
    assert_int_equal(resolve(t, "post-all", "p", XFER_POST_PENDING, 0), 0);
    assert_int_equal(tu_scalar(t, &Q_PENDING_STATE), PENDING_POSTED);
    expect(t, a, (struct totals){700, 700, 0, 0});
    expect(t, b, (struct totals){300, 300, 0, 0});
    assert_int_equal(resolve(t, "again", "p", XFER_POST_PENDING, 0), ERR_PENDING_CLOSED);
    assert_int_equal(resolve(t, "void-late", "p", XFER_VOID_PENDING, 0), ERR_PENDING_CLOSED);
    tu_ledger_ok(t);

    /* Post in part: the rest goes back. */
    assert_int_equal(pending(t, "p2", a, b, 200, 0), 0);
    expect(t, a, (struct totals){700, 500, 200, 0});
    assert_int_equal(resolve(t, "post-part", "p2", XFER_POST_PENDING, 50), 0);
    expect(t, a, (struct totals){650, 650, 0, 0});
    expect(t, b, (struct totals){350, 350, 0, 0});
    tu_ledger_ok(t);

    /* Void: everything goes back; no post after. */
    assert_int_equal(pending(t, "p3", a, b, 650, 0), 0);
    expect(t, a, (struct totals){650, 0, 650, 0});
    assert_int_equal(resolve(t, "void", "p3", XFER_VOID_PENDING, 0), 0);
    expect(t, a, (struct totals){650, 650, 0, 0});
    expect(t, b, (struct totals){350, 350, 0, 0});
    assert_int_equal(resolve(t, "post-after-void", "p3", XFER_POST_PENDING, 0), ERR_PENDING_CLOSED);
    assert_int_equal(resolve(t, "post-after-void", "p3", XFER_POST_PENDING, 10), ERR_PENDING_CLOSED);

    /* A post names its pending's unit. */
    struct transfer tr = {.xid = "wrong-unit", .pending_xid = "p2", .unit = "bytes", .kind = "hold",
                          .flags = XFER_POST_PENDING};
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &tr)), ERR_UNIT_MISMATCH);
    tu_ledger_ok(t);
}

/* L5 by the injected clock: a pending with a timeout can be posted until
 * timeout_at (exclusive) and not after. */
static void test_pending_timeout(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", 0);
    assert_int_equal(xfer(t, "fund", src, a, 1000, "CNY"), 0);
    const struct {
        int64_t timeout, at;   /* seconds after creation */
        int flags, want;
    } rows[] = {
        {60, 0, XFER_POST_PENDING, 0},                    /* post at once */
        {60, 59, XFER_POST_PENDING, 0},                   /* last second before the timeout */
        {60, 60, XFER_POST_PENDING, ERR_PENDING_EXPIRED}, /* at timeout_at: expired */
        {60, 3600, XFER_POST_PENDING, ERR_PENDING_EXPIRED},
        {60, 60, XFER_VOID_PENDING, ERR_PENDING_EXPIRED}, /* a void too */
        {0, 365 * TU_DAY, XFER_POST_PENDING, 0},          /* no timeout: never expires */
    };
    int64_t spent = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char pxid[16], xid[16];
        snprintf(pxid, sizeof pxid, "tp%zu", i);
        snprintf(xid, sizeof xid, "tr%zu", i);
        tu_at(t, TU_T0);
        assert_int_equal(pending(t, pxid, a, b, 10, rows[i].timeout), 0);
        tu_at(t, TU_T0 + rows[i].at);
        int rc = resolve(t, xid, pxid, rows[i].flags, 0);
        if (rc != rows[i].want)
            print_error("row %zu: %s\n", i, err_code(rc));
        assert_int_equal(rc, rows[i].want);
        if (!rc)
            spent += 10;
    }
    struct account acc = tu_account(t, a);
    assert_int_equal(ledger_balance(&acc), 1000 - spent);
    assert_int_equal(acc.debits_pending, 30);   /* the three expired ones are still held until expired */
    tu_at(t, TU_T0 + 3600);
    int n = -1;
    assert_int_equal(TU_CMD(t, ledger_expire_pending(&t->tx, 100, &n)), 0);
    assert_int_equal(n, 3);
    acc = tu_account(t, a);
    assert_int_equal(acc.debits_pending, 0);
    assert_int_equal(ledger_available(&acc), 1000 - spent);
    tu_ledger_ok(t);
}

/* ledger_expire_pending releases what the clock says is due, and only that. */
static void test_expire_pending(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", 0);
    assert_int_equal(xfer(t, "fund", src, a, 1000, "CNY"), 0);
    assert_int_equal(pending(t, "p", a, b, 100, 10), 0);     /* due at T0+10 */
    assert_int_equal(pending(t, "p20", a, b, 200, 20), 0);   /* due at T0+20 */
    assert_int_equal(pending(t, "p0", a, b, 300, 0), 0);     /* never */
    expect(t, a, (struct totals){1000, 400, 600, 0});

    const struct {
        int64_t at;
        int count;
        int64_t available, b_cpend;
    } rows[] = {
        {9, 0, 400, 600},      /* nothing due yet */
        {10, 1, 500, 500},     /* p at its timeout */
        {15, 0, 500, 500},     /* p is not expired twice */
        {100000, 1, 700, 300}, /* p20; p0 never */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tu_at(t, TU_T0 + rows[i].at);
        int n = -1;
        assert_int_equal(TU_CMD(t, ledger_expire_pending(&t->tx, 100, &n)), 0);
        assert_int_equal(n, rows[i].count);
        expect(t, a, (struct totals){1000, rows[i].available, 1000 - rows[i].available, 0});
        expect(t, b, (struct totals){0, 0, 0, rows[i].b_cpend});
    }
    assert_int_equal(tu_scalar(t, &Q_PENDING_STATE), PENDING_EXPIRED);
    assert_int_equal(resolve(t, "late", "p", XFER_POST_PENDING, 0), ERR_PENDING_CLOSED);
    tu_ledger_ok(t);
}

/* ledger_expire_pending(limit = 1) expires one due pending, not every one the
 * query finds (up to 64), as it did until 005bc3d. */
static void test_expire_pending_limit(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", 0);
    assert_int_equal(xfer(t, "fund", src, a, 1000, "CNY"), 0);
    for (int i = 0; i < 3; i++) {
        char xid[8];
        snprintf(xid, sizeof xid, "p%d", i);
        assert_int_equal(pending(t, xid, a, b, 10, 5), 0);
    }
    tu_at(t, TU_T0 + 60);
    int n = -1;
    assert_int_equal(TU_CMD(t, ledger_expire_pending(&t->tx, 1, &n)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tu_account(t, a).debits_pending, 20);
}

/* Runs sql inside a savepoint, expects ledger_check to find `violations`,
 * the first naming `first`, then rolls back and expects a clean ledger. */
static void corrupt_and_check(struct tu *t, int row, const char *sql, int violations, const char *first)
{
    tu_sp_begin(t);
    int rc = store_script(t->st, sql);
    if (rc)
        print_error("row %d: the corrupting SQL failed\n", row);
    assert_int_equal(rc, 0);
    struct ledger_report r;
    assert_int_equal(ledger_check(&t->tx, &r), 0);
    if (r.violations != violations)
        print_error("row %d: %d violations, first: %s\n", row, r.violations, r.first_violation);
    assert_int_equal(r.violations, violations);
    assert_non_null(strstr(r.first_violation, first));
    tu_sp_end(t, 1);
    tu_ledger_ok(t);   /* rolled back: clean again */
}

/* ledger_check can fail: each row corrupts the stored ledger behind its back
 * (inside a savepoint that is rolled back afterwards). */
static void test_check_detects_corruption(void **state)
{
    struct tu *t = *state;
    int64_t src = account_new(t, "CNY", 0), a = account_new(t, "CNY", LEDGER_NO_OVERDRAFT), b = account_new(t, "CNY", LEDGER_NO_OVERDRAFT);
    assert_int_equal(xfer(t, "fund", src, a, 1000, "CNY"), 0);
    assert_int_equal(xfer(t, "move", a, b, 400, "CNY"), 0);
    tu_ledger_ok(t);
    char sql[6][256];
    /* one account's credits grow: the unit no longer balances (L2) and the account disagrees with its transfers (L6) */
    snprintf(sql[0], sizeof sql[0], "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = %lld",
             (long long)a);
    /* balanced but invented: L2 holds, L6 fails on both accounts */
    snprintf(sql[1], sizeof sql[1],
             "UPDATE accounts SET credits_posted = credits_posted + 5 WHERE id = %lld;"
             "UPDATE accounts SET debits_posted = debits_posted + 5 WHERE id = %lld",
             (long long)b, (long long)src);
    /* a transfer row that never moved the totals: L6 on both of its accounts */
    snprintf(sql[2], sizeof sql[2],
             "INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, state, created_at) "
             "VALUES ('ghost', %lld, %lld, 7, 'CNY', 'test', 0, 0, 0)",
             (long long)src, (long long)b);
    /* pending debits only (no matching credit): L2 pending and L6 */
    snprintf(sql[3], sizeof sql[3], "UPDATE accounts SET debits_pending = 3 WHERE id = %lld", (long long)src);
    /* an overdraft the CHECK would refuse, slipped in with checks off: L3 */
    snprintf(sql[4], sizeof sql[4],
             "PRAGMA ignore_check_constraints = ON; UPDATE accounts SET flags = 1 WHERE id = %lld;"
             "PRAGMA ignore_check_constraints = OFF",
             (long long)src);
    /* money from an account that does not exist (no foreign key stops the row): L1, and L2 */
    snprintf(sql[5], sizeof sql[5],
             "INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, state, created_at) "
             "VALUES ('nowhere', 424242, %lld, 7, 'CNY', 'test', 0, 0, 0);"
             "UPDATE accounts SET credits_posted = credits_posted + 7 WHERE id = %lld",
             (long long)b, (long long)b);
    const struct {
        int violations;
        const char *first;
    } want[6] = {
        {2, "posted debits differ from credits in CNY"},
        {2, "totals differ from transfers on"},
        {2, "totals differ from transfers on"},
        {2, "pending debits differ from credits in CNY"},
        {1, "overdraft on"},
        {2, "transfers on a missing account 424242"},
    };
    for (int i = 0; i < 6; i++)
        corrupt_and_check(t, i, sql[i], want[i].violations, want[i].first);
}

/* The text of a unit-level violation names the unit alone; until 005bc3d it
 * ended in the account id there is none of: "... in CNY0". */
static void test_violation_text(void **state)
{
    struct tu *t = *state;
    int64_t a = account_new(t, "CNY", 0);
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE accounts SET credits_posted = 1 WHERE id = %lld", (long long)a);
    assert_int_equal(store_script(t->st, sql), 0);
    struct ledger_report r;
    assert_int_equal(ledger_check(&t->tx, &r), 0);
    assert_string_equal(r.first_violation, "posted debits differ from credits in CNY");
}

/* System accounts are found by name, created once. */
static void test_system_account(void **state)
{
    struct tu *t = *state;
    int64_t x = 0, y = 0, z = 0;
    assert_int_equal(ledger_system_account(&t->tx, "revenue", "CNY", &x), 0);
    assert_int_equal(ledger_system_account(&t->tx, "revenue", "CNY", &y), 0);
    assert_int_equal(ledger_system_account(&t->tx, "revenue", "bytes", &z), 0);
    assert_true(x > 0);
    assert_int_equal(x, y);
    assert_int_not_equal(x, z);
    struct account acc = tu_account(t, z);
    assert_string_equal(acc.unit, "bytes");
    assert_string_equal(acc.kind, "revenue");
    assert_int_equal(acc.flags, 0);
    assert_int_equal(ledger_account_get(&t->tx, 424242, &acc), ERR_ACCOUNT_NOT_FOUND);
}

STORE_SQL(SQL_STORED_TOTALS, "SELECT debits_posted * 1000000 + credits_posted FROM accounts WHERE id = ?");

static void post(struct tu *t, const char *xid, int64_t debit, int64_t credit, int64_t amount, int flags)
{
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){.xid = xid, .debit = debit,
                                                                           .credit = credit, .amount = amount,
                                                                           .unit = "CNY", .kind = "test",
                                                                           .flags = flags})),
                     0);
}

/* L8: while the cache defers, posted moves on the system accounts it knows
 * are summed there and written once by ledger_flush, or by a read of
 * totals; other accounts and pending moves are written at once; clearing
 * the cache (a rollback) drops the sums. Stored totals are debits * 10^6 +
 * credits. */
static void test_deferred_system_totals(void **state)
{
    struct tu *t = *state;
    struct ledger_cache cache = {.defer = 1};
    t->tx.sys = &cache;
    int64_t a, b, plain;
    assert_int_equal(ledger_system_account(&t->tx, "clearing_x", "CNY", &a), 0);
    assert_int_equal(ledger_system_account(&t->tx, "revenue_x", "CNY", &b), 0);
    assert_int_equal(ledger_account_create(&t->tx, "plain", "CNY", 0, 0, &plain), 0);
    post(t, "d:1", a, b, 300, XFER_POSTED);
    post(t, "d:2", a, plain, 50, XFER_POSTED);
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, a), 0);
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, b), 0);
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, plain), 50);   /* not a system account */
    post(t, "d:3", a, b, 7, XFER_PENDING);                              /* pending: at once */
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, a), 0);
    assert_int_equal(tu_account(t, a).debits_pending, 7);
    assert_int_equal(ledger_flush(&t->tx), 0);
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, a), 350 * 1000000);
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, b), 300);
    assert_int_equal(ledger_flush(&t->tx), 0);   /* nothing twice */
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, a), 350 * 1000000);

    post(t, "d:4", b, a, 20, XFER_POSTED);
    assert_int_equal(tu_balance(t, a), -350 + 20);   /* a read flushes first */
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, b), 20 * 1000000 + 300);

    /* Undone: the transfer row with the savepoint, its sums with the cache. */
    tu_sp_begin(t);
    assert_int_equal(ledger_transfer(&t->tx, &(struct transfer){.xid = "d:5", .debit = a, .credit = b, .amount = 9,
                                                                .unit = "CNY", .kind = "test"}),
                     0);
    tu_sp_end(t, ERR_INTERNAL);
    ledger_cache_clear(&cache);
    tu_ledger_ok(t);
    assert_int_equal(tu_balance(t, b), 300 - 20);
    t->tx.sys = NULL;
}

/* A total past int64 fails the move that would take it there,
 * ERR_NUMBER_OVERFLOW, and moves nothing: written at once, or summed in the
 * cache (L8), where a sum that would itself overflow is written at once
 * instead, and a flush past the bound fails (the engine then re-runs the
 * batch with savepoints, so that the move fails alone). */
static void test_totals_past_int64(void **state)
{
    struct tu *t = *state;
    int64_t a, b, c, d;
    assert_int_equal(ledger_account_create(&t->tx, "plain", "CNY", 0, 0, &a), 0);
    assert_int_equal(ledger_account_create(&t->tx, "plain", "CNY", 0, 0, &b), 0);
    post(t, "o:1", a, b, INT64_MAX - 10, XFER_POSTED);
    assert_int_equal(TU_CMD(t, ledger_transfer(&t->tx, &(struct transfer){.xid = "o:2", .debit = a, .credit = b,
                                                                          .amount = 11, .unit = "CNY",
                                                                          .kind = "test"})),
                     ERR_NUMBER_OVERFLOW);
    assert_int_equal(tu_account(t, a).debits_posted, INT64_MAX - 10);
    assert_int_equal(tu_account(t, b).credits_posted, INT64_MAX - 10);
    post(t, "o:3", a, b, 10, XFER_POSTED);   /* up to the bound itself */
    assert_int_equal(tu_account(t, a).debits_posted, INT64_MAX);

    struct ledger_cache cache = {.defer = 1};
    t->tx.sys = &cache;
    assert_int_equal(ledger_system_account(&t->tx, "issuance_x", "CNY", &c), 0);
    assert_int_equal(ledger_system_account(&t->tx, "sold_x", "CNY", &d), 0);
    post(t, "o:4", c, d, INT64_MAX - 10, XFER_POSTED);   /* summed */
    post(t, "o:5", c, d, 11, XFER_POSTED);               /* the sum would overflow: written at once */
    assert_int_equal(tu_scalar_i(t, &SQL_STORED_TOTALS, c), 11 * 1000000);
    assert_int_equal(ledger_flush(&t->tx), ERR_NUMBER_OVERFLOW);
    ledger_cache_clear(&cache);
    t->tx.sys = NULL;
}

/* L7: a SIM's wallet is account -sim_id; its totals move in the SIM's row,
 * its accounts row keeps zeros, and the ledger treats it like any other. */
static void test_wallet_in_sim_row(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    int64_t src = account_new(t, "CNY", 0), sink = account_new(t, "CNY", 0);
    assert_true(src > 0 && sink > 0);   /* positive, though only a wallet existed before them */

    assert_int_equal(xfer(t, "in", src, s.wallet_id, 900, "CNY"), 0);
    assert_int_equal(xfer(t, "out", s.wallet_id, sink, 200, "CNY"), 0);
    assert_int_equal(pending(t, "hold", s.wallet_id, sink, 50, 0), 0);
    assert_int_equal(tu_scalar_i(t, &Q_SIM_WALLET, s.id), 900 * 1000000 + 200 * 1000 + 50);
    assert_int_equal(tu_scalar_i(t, &Q_ACCOUNT_ROW_TOTALS, s.wallet_id), 0);
    expect(t, s.wallet_id, (struct totals){.balance = 700, .available = 650, .dpend = 50});
    struct account w = tu_account(t, s.wallet_id);
    assert_string_equal(w.kind, "wallet");
    assert_string_equal(w.unit, "CNY");
    assert_int_equal(w.flags, LEDGER_NO_OVERDRAFT);
    assert_int_equal(tu_sim_balance(t, &s), 700);

    /* the SIM row's CHECK refuses an overdraft (L3), and nothing moves */
    assert_int_equal(xfer(t, "too-much", s.wallet_id, sink, 651, "CNY"), ERR_INSUFFICIENT_BALANCE);
    assert_int_equal(xfer(t, "bytes", s.wallet_id, sink, 1, "bytes"), ERR_UNIT_MISMATCH);
    assert_int_equal(xfer(t, "nobody", -424242, sink, 1, "CNY"), ERR_ACCOUNT_NOT_FOUND);
    assert_int_equal(resolve(t, "post", "hold", XFER_POST_PENDING, 0), 0);
    expect(t, s.wallet_id, (struct totals){.balance = 650, .available = 650});
    assert_int_equal(ledger_account_get(&t->tx, -424242, &w), ERR_ACCOUNT_NOT_FOUND);
    tu_ledger_ok(t);
}

/* The check sees a wallet's totals where they are, and money parked in its
 * accounts row too (inside savepoints rolled back afterwards). */
static void test_check_sees_wallets(void **state)
{
    struct tu *t = *state;
    struct sim s;
    tu_sim(t, &s);
    int64_t src = account_new(t, "CNY", 0);
    assert_int_equal(xfer(t, "in", src, s.wallet_id, 500, "CNY"), 0);
    tu_ledger_ok(t);
    char sql[5][400];
    /* the SIM's row credits grow: L2 and L6 */
    snprintf(sql[0], sizeof sql[0], "UPDATE sims SET w_credits_posted = w_credits_posted + 1 WHERE id = %lld",
             (long long)s.id);
    /* moved from the SIM's row to its accounts row: L2 (that row is not counted), L6 and L7 */
    snprintf(sql[1], sizeof sql[1],
             "UPDATE sims SET w_credits_posted = 0 WHERE id = %lld; "
             "UPDATE accounts SET credits_posted = 500 WHERE id = %lld",
             (long long)s.id, (long long)s.wallet_id);
    /* an overdraft slipped past the SIM row's CHECK: L3 */
    snprintf(sql[2], sizeof sql[2],
             "PRAGMA ignore_check_constraints = ON; UPDATE sims SET w_debits_posted = 600 WHERE id = %lld; "
             "UPDATE accounts SET credits_posted = 600 WHERE id = %lld; PRAGMA ignore_check_constraints = OFF",
             (long long)s.id, (long long)src);
    /* the wallet's accounts row gone: its transfer is on a missing account (L1), its money uncounted (L2) */
    snprintf(sql[3], sizeof sql[3], "PRAGMA defer_foreign_keys = ON; DELETE FROM accounts WHERE id = %lld",
             (long long)s.wallet_id);
    /* a wallet row without its SIM, credited: it holds nothing (L6), so the money moved is nowhere (L2) */
    snprintf(sql[4], sizeof sql[4],
             "INSERT INTO accounts(id, kind, unit, flags, created_at) VALUES (-777777, 'wallet', 'CNY', 1, 0);"
             "INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, state, created_at) "
             "VALUES ('lost', %lld, -777777, 9, 'CNY', 'test', 0, 0, 0);"
             "UPDATE accounts SET debits_posted = debits_posted + 9 WHERE id = %lld",
             (long long)src, (long long)src);
    const struct {
        int violations;
        const char *first;
    } want[5] = {
        {2, "posted debits differ from credits in CNY"},
        {3, "posted debits differ from credits in CNY"},
        {3, "overdraft on"},
        {2, "transfers on a missing account -"},
        {2, "posted debits differ from credits in CNY"},
    };
    for (int i = 0; i < 5; i++)
        corrupt_and_check(t, i, sql[i], want[i].violations, want[i].first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conservation_random, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_overdraft, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_xid, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_two_phase, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_pending_timeout, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_expire_pending, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_expire_pending_limit, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_check_detects_corruption, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_violation_text, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_system_account, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_deferred_system_totals, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_totals_past_int64, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_wallet_in_sim_row, tu_setup, tu_teardown),
        cmocka_unit_test_setup_teardown(test_check_sees_wallets, tu_setup, tu_teardown),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
