/* sqlite_ceiling — the raw SQLite ceiling for top-ups (baseline a).
 *
 * A fresh database with the project's schema (the migration files, read at run
 * time and applied in the order given, as store_migrate does), the writer's
 * pragmas (the page size a new database gets, WAL, synchronous=FULL,
 * foreign_keys=ON, and the engine's cache_size and temp_store), N SIMs with their wallet accounts and
 * the clearing account created with the statements the server uses. Then, per
 * top-up, exactly the SQL writes one top-up makes in the server
 * (src/core/topup.c, ledger.c, sim.c, receipt.c, record.c, src/engine/engine.c):
 *
 *   INSERT topups (no receipt: it is composed from the row when fetched, receipt.h R1; the row is its
 *   record too, record.h), INSERT transfers (ON CONFLICT(xid) DO
 *   NOTHING), UPDATE sims (its state, with its check_at on
 *   a first activation, its newest record and the wallet's credit: the
 *   wallet's totals are in the SIM's row, ledger L7), INSERT idempotency
 *   (the answer by reference to the topups row: engine.h E4);
 *   and once a transaction, UPDATE accounts (the clearing account's debits,
 *   summed as the engine's writer sums them, ledger L8)
 *
 * each prepared once, 1,000 top-ups per transaction, for a fixed time or
 * count. No reads (the server reads the next top-up id, which the receipt
 * names, before its INSERT; the ceiling, alone on a fresh database, counts
 * it), no savepoints, no JSON library: the receipt payload and the
 * response body are rendered with the same shape and length as the
 * server's, by snprintf. (The server signs a
 * receipt when it is served, off the writer, so no signing here either.)
 * Prints one JSON line.
 *
 *   sqlite_ceiling --schema src/store/migrations/001_core.sql
 *                  --schema src/store/migrations/002_lean_topup.sql
 *                  --schema src/store/migrations/003_lazy_indexes.sql
 *                  --schema src/store/migrations/004_wallet_in_sim.sql --db /tmp/x.db
 *                  [--sims 100000] [--seconds 20 | --count N] [--batch 1000] [--seed S]
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "simgen.h"

#define DIE(...) (fprintf(stderr, "sqlite_ceiling: " __VA_ARGS__), fputc('\n', stderr), exit(1))

static sqlite3 *db;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void exec(const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        DIE("%s: %s", sql, msg ? msg : "?");
}

static sqlite3_stmt *prep(const char *sql)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK)
        DIE("prepare %s: %s", sql, sqlite3_errmsg(db));
    return s;
}

static void step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    if (rc != SQLITE_DONE)
        DIE("step %s: %s (%d)", sqlite3_sql(s), sqlite3_errmsg(db), rc);
    sqlite3_reset(s);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        DIE("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    if (n < 0 || n > (1 << 24))
        DIE("%s: bad size", path);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        DIE("cannot read %s", path);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void rfc3339(int64_t t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Per-SIM state the writes need (what the server reads back before writing). */
struct simstate {
    int64_t wallet, balance, active_until, day_total, check_at;
    int64_t head;   /* the SIM's last record (sims.last_txn), as the server reads it with the SIM */
};

int main(int argc, char **argv)
{
    const char *schema[16], *path = NULL;
    int nschema = 0;
    int64_t nsims = 100000, count = 0, batch = 1000;
    double seconds = 20;
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            DIE("%s needs a value", a);
        if (!strcmp(a, "--schema")) {
            if (nschema == (int)(sizeof schema / sizeof schema[0]))
                DIE("too many --schema");
            schema[nschema++] = v;
        } else if (!strcmp(a, "--db"))
            path = v;
        else if (!strcmp(a, "--sims"))
            nsims = atoll(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--count"))
            count = atoll(v);
        else if (!strcmp(a, "--batch"))
            batch = atoll(v);
        else if (!strcmp(a, "--seed"))
            seed = strtoull(v, NULL, 0) | 1;
        else
            DIE("unknown argument %s", a);
        i++;
    }
    if (!nschema || !path || nsims < 1 || nsims > SIMGEN_MAX || batch < 1 || (seconds <= 0 && count <= 0))
        DIE("usage: sqlite_ceiling --schema FILE [--schema FILE]... --db PATH [--sims N] [--seconds S | --count N] "
            "[--batch B]");

    char wal[4200], shm[4200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(path), unlink(wal), unlink(shm);
    /* The library settings the server uses (src/store/sqlite.c), so the
     * ceiling is never below what the server could reach. */
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL))
        DIE("open %s", path);
    /* The engine's writer pragmas (src/store/sqlite.c). */
    exec("PRAGMA page_size=2048; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
         "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;");
    for (int i = 0; i < nschema; i++) {   /* each migration in its own transaction */
        char *ddl = read_file(schema[i]);
        exec("BEGIN");
        exec(ddl);
        exec("COMMIT");
        free(ddl);
    }
    exec("INSERT INTO meta(key, value) VALUES ('currency', 'CNY')");

    int64_t t0 = (int64_t)time(NULL);
    /* Provisioning as sim_create + ledger_system_account do it (the wallet is
     * account -sim_id). SIM i's id is i + 1, its home (sim_home_id), where the
     * server puts it too. */
    sqlite3_stmt *acct = prep("INSERT INTO accounts(id, kind, unit, sim_id, flags, name, created_at) "
                              "VALUES (MAX(1, (SELECT COALESCE(MAX(id), 0) + 1 FROM accounts)), ?, ?, ?, ?, ?, ?)");
    sqlite3_stmt *wnew = prep("INSERT INTO accounts(id, kind, unit, sim_id, flags, created_at) VALUES (?, 'wallet', ?, ?, ?, ?)");
    sqlite3_stmt *sim = prep("INSERT INTO sims(id, iccid, msisdn, imsi, lang, state, active_until, wallet_id, "
                             "created_at, updated_at, room) "
                             "VALUES (?, ?, ?, ?, ?, 'inactive', NULL, ?, ?, ?, zeroblob(24))");
    struct simstate *ss = calloc((size_t)nsims + 1, sizeof *ss);
    if (!ss)
        DIE("out of memory");
    double p0 = now_s();
    exec("BEGIN IMMEDIATE");
    for (int64_t i = 0; i < nsims; i++) {
        char iccid[SIMGEN_ICCID_LEN + 1], msisdn[24], imsi[24];
        simgen_iccid(i, iccid);
        simgen_msisdn(i, msisdn);
        simgen_imsi(i, imsi);
        int64_t sid = i + 1, wallet = -sid;
        sqlite3_bind_int64(wnew, 1, wallet);
        sqlite3_bind_text(wnew, 2, "CNY", -1, SQLITE_STATIC);
        sqlite3_bind_int64(wnew, 3, sid);
        sqlite3_bind_int(wnew, 4, 1);
        sqlite3_bind_int64(wnew, 5, t0);
        step(wnew);
        sqlite3_bind_int64(sim, 1, sid);
        sqlite3_bind_text(sim, 2, iccid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(sim, 3, msisdn, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(sim, 4, imsi, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(sim, 5, simgen_lang(i), -1, SQLITE_STATIC);
        sqlite3_bind_int64(sim, 6, wallet);
        sqlite3_bind_int64(sim, 7, t0);
        sqlite3_bind_int64(sim, 8, t0);
        step(sim);
        ss[sid].wallet = wallet;
        if ((i + 1) % 100000 == 0) {
            exec("COMMIT");
            exec("BEGIN IMMEDIATE");
        }
    }
    sqlite3_bind_text(acct, 1, "clearing_alipay", -1, SQLITE_STATIC);
    sqlite3_bind_text(acct, 2, "CNY", -1, SQLITE_STATIC);
    sqlite3_bind_int64(acct, 3, 0);
    sqlite3_bind_int(acct, 4, 0);
    sqlite3_bind_text(acct, 5, "clearing_alipay:CNY", -1, SQLITE_STATIC);
    sqlite3_bind_int64(acct, 6, t0);
    step(acct);
    int64_t clearing = sqlite3_last_insert_rowid(db);
    exec("COMMIT");
    double provision_s = now_s() - p0;

    /* The four writes of one top-up (the UPDATE sims in one of two forms; the top-up's row is its own
     * record, record.h) and the clearing account's, once a transaction, with the server's exact statements. */
    sqlite3_stmt *w_topup = prep(
        "INSERT INTO topups(id, sim_id, amount, currency, channel, method, fee, balance_after, active_until, "
        "reactivated, principal, created_at, prev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    sqlite3_stmt *w_xfer = prep(
        "INSERT INTO transfers(xid, debit_id, credit_id, amount, unit, kind, flags, pending_id, timeout_at, "
        "state, sim_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT(xid) DO NOTHING");
    sqlite3_stmt *w_apply = prep(
        "UPDATE accounts SET debits_pending = debits_pending + ?, debits_posted = debits_posted + ?, "
        "credits_pending = credits_pending + ?, credits_posted = credits_posted + ? WHERE id = ? AND unit = ?");
    sqlite3_stmt *w_sim = prep(
        "UPDATE sims SET state = ?, active_until = ?, day_start = ?, day_total = ?, updated_at = ?, "
        "last_txn = COALESCE(?, last_txn), w_credits_posted = w_credits_posted + ?, room = NULL "
        "WHERE id = ? AND check_at IS ?");
    sqlite3_stmt *w_sim_check = prep(
        "UPDATE sims SET state = ?, active_until = ?, day_start = ?, day_total = ?, updated_at = ?, check_at = ?, "
        "check_seq = ?, last_txn = COALESCE(?, last_txn), w_credits_posted = w_credits_posted + ?, room = NULL "
        "WHERE id = ?");
    sqlite3_stmt *w_idem = prep(
        "INSERT INTO idempotency(scope, key, request_hash, status, body, sign_off, sign_len, created_at, topup_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");

    const int64_t amount = 100;
    int64_t done = 0, commits = 0, tid = 0;
    size_t payload_bytes = 0, body_bytes = 0;
    char payload[1024], body[2048], number[32], xid[48], idem[64], iccid[SIMGEN_ICCID_LEN + 1], msisdn[24];
    char issued[21], until[21];
    unsigned char hash[32];
    uint64_t rnd = seed;
    struct cpu_snap c0, c1;
    cpu_snap(&c0, 0);
    double start = now_s(), end = start + seconds;
    while (count ? done < count : now_s() < end) {
        exec("BEGIN IMMEDIATE");
        int64_t cleared = 0;   /* ledger L8: the clearing account's debits, written once a transaction */
        for (int64_t b = 0; b < batch && (!count || done < count); b++, done++) {
            int64_t now = (int64_t)time(NULL);
            int64_t idx = simgen_pick(&rnd, nsims), sid = idx + 1;
            struct simstate *s = &ss[sid];
            int64_t base = s->active_until > now ? s->active_until : now;
            s->active_until = base + 30 * 86400;
            s->balance += amount;
            s->day_total += amount;
            simgen_iccid(idx, iccid);
            simgen_msisdn(idx, msisdn);
            rfc3339(now, issued);
            rfc3339(s->active_until, until);

            tid++;   /* topup.c reads it (MAX(id) + 1): this is the only writer, from an empty table */
            snprintf(number, sizeof number, "R%010lld", (long long)tid);   /* receipt.c: numbered by its top-up */
            int pl = snprintf(payload, sizeof payload,
                              "{\"active_until\":\"%s\",\"amount\":%lld,\"balance_after\":%lld,\"channel\":\"portal\","
                              "\"currency\":\"CNY\",\"iccid\":\"%s\",\"issued_at\":\"%s\",\"method\":\"alipay\","
                              "\"msisdn\":\"%s\",\"number\":\"%s\",\"reactivation_fee\":0,\"served_by\":\"token:1\","
                              "\"topup\":\"tu_%lld\"}",
                              until, (long long)amount, (long long)s->balance, iccid, issued, msisdn, number,
                              (long long)tid);
            payload_bytes += (size_t)pl;

            sqlite3_bind_int64(w_topup, 1, tid);
            sqlite3_bind_int64(w_topup, 2, sid);
            sqlite3_bind_int64(w_topup, 3, amount);
            sqlite3_bind_text(w_topup, 4, "CNY", -1, SQLITE_STATIC);
            sqlite3_bind_text(w_topup, 5, "portal", -1, SQLITE_STATIC);
            sqlite3_bind_text(w_topup, 6, "alipay", -1, SQLITE_STATIC);
            sqlite3_bind_int64(w_topup, 7, 0);
            sqlite3_bind_int64(w_topup, 8, s->balance);
            sqlite3_bind_int64(w_topup, 9, s->active_until);
            sqlite3_bind_int(w_topup, 10, 0);
            sqlite3_bind_text(w_topup, 11, "token:1", -1, SQLITE_STATIC);
            sqlite3_bind_int64(w_topup, 12, now);
            sqlite3_bind_int64(w_topup, 13, s->head);
            step(w_topup);

            snprintf(xid, sizeof xid, "topup:%lld", (long long)tid);
            sqlite3_bind_text(w_xfer, 1, xid, -1, SQLITE_STATIC);
            sqlite3_bind_int64(w_xfer, 2, clearing);
            sqlite3_bind_int64(w_xfer, 3, s->wallet);
            sqlite3_bind_int64(w_xfer, 4, amount);
            sqlite3_bind_text(w_xfer, 5, "CNY", -1, SQLITE_STATIC);
            sqlite3_bind_text(w_xfer, 6, "topup", -1, SQLITE_STATIC);
            sqlite3_bind_int(w_xfer, 7, 0);
            sqlite3_bind_null(w_xfer, 8);
            sqlite3_bind_null(w_xfer, 9);
            sqlite3_bind_int64(w_xfer, 10, sid);
            sqlite3_bind_int64(w_xfer, 11, now);
            step(w_xfer);
            if (sqlite3_changes(db) != 1)
                DIE("transfer not inserted");

            cleared += amount;

            int64_t link = -tid;   /* record.h: the top-up's own record heads the SIM's chain */
            s->head = link;

            /* sim.c: check_at is set with the row when it moves (a first
             * activation), else the row must still hold the one it had. */
            int check_moves = !(s->check_at > now && s->check_at <= s->active_until);
            sqlite3_stmt *w = check_moves ? w_sim_check : w_sim;
            sqlite3_bind_text(w, 1, "active", -1, SQLITE_STATIC);
            sqlite3_bind_int64(w, 2, s->active_until);
            sqlite3_bind_int64(w, 3, now - (now + 480 * 60) % 86400);
            sqlite3_bind_int64(w, 4, s->day_total);
            sqlite3_bind_int64(w, 5, now);
            if (check_moves) {
                s->check_at = s->active_until;
                sqlite3_bind_int64(w, 6, s->check_at);
                sqlite3_bind_int64(w, 7, tid);      /* check_seq: the record's id (migration 011) */
                sqlite3_bind_int64(w, 8, link);
                sqlite3_bind_int64(w, 9, amount);   /* ledger L7: the wallet's credit, with its SIM's row */
                sqlite3_bind_int64(w, 10, sid);
                step(w);
            } else {
                sqlite3_bind_int64(w, 6, link);
                sqlite3_bind_int64(w, 7, amount);
                sqlite3_bind_int64(w, 8, sid);
                sqlite3_bind_int64(w, 9, s->check_at);
                step(w);
                if (sqlite3_changes(db) != 1)
                    DIE("sim not updated");
            }

            /* The response, the API's 201 body (the receipt unsigned: it is signed when fetched), is
             * rendered as the writer renders it; it is stored as the top-up's id (engine.h E4). */
            int head = snprintf(body, sizeof body,
                                "{\"topup\":{\"id\":\"tu_%lld\",\"iccid\":\"%s\",\"amount\":%lld,"
                                "\"currency\":\"CNY\",\"channel\":\"portal\",\"method\":\"alipay\","
                                "\"reactivation_fee\":0,\"reactivated\":false,\"created_at\":\"%s\"},\"receipt\":",
                                (long long)tid, iccid, (long long)amount, issued);
            int bl = head + snprintf(body + head, sizeof body - (size_t)head,
                                     "%s,\"balance\":{\"amount\":%lld,\"currency\":\"CNY\"},"
                                     "\"active_until\":\"%s\",\"state\":\"active\"}",
                                     payload, (long long)s->balance, until);
            body_bytes += (size_t)bl;
            snprintf(idem, sizeof idem, "ceiling-%llx-%lld", (unsigned long long)seed, (long long)done);
            for (int k = 0; k < 32; k++)
                hash[k] = (unsigned char)(simgen_rand(&rnd) >> 56);
            sqlite3_bind_text(w_idem, 1, "token:1", -1, SQLITE_STATIC);
            sqlite3_bind_text(w_idem, 2, idem, -1, SQLITE_STATIC);
            sqlite3_bind_blob(w_idem, 3, hash, 32, SQLITE_STATIC);
            sqlite3_bind_int(w_idem, 4, 201);
            sqlite3_bind_text(w_idem, 5, "", 0, SQLITE_STATIC);
            sqlite3_bind_int64(w_idem, 6, 0);   /* sign_off, sign_len: nothing to sign on replay */
            sqlite3_bind_int64(w_idem, 7, 0);
            sqlite3_bind_int64(w_idem, 8, now);
            sqlite3_bind_int64(w_idem, 9, tid);
            step(w_idem);
        }
        int64_t debit[5] = {0, cleared, 0, 0, clearing};
        for (int c = 0; c < 5; c++)
            sqlite3_bind_int64(w_apply, c + 1, debit[c]);
        sqlite3_bind_text(w_apply, 6, "CNY", -1, SQLITE_STATIC);
        step(w_apply);
        if (sqlite3_changes(db) != 1)
            DIE("clearing account not updated");
        exec("COMMIT");
        commits++;
    }
    double elapsed = now_s() - start;
    cpu_snap(&c1, 0);
    sqlite3_stmt *all[] = {acct, wnew, sim, w_topup, w_xfer, w_apply, w_sim, w_sim_check, w_idem};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]);
    sqlite3_close(db);
    printf("{\"name\":\"sqlite_ceiling\",\"sims\":%lld,\"batch\":%lld,\"topups\":%lld,\"commits\":%lld,"
           "\"seconds\":%.3f,\"topups_per_s\":%.1f,\"provision_s\":%.2f,\"writes_per_topup\":4,"
           "\"receipt_payload_bytes\":%.0f,\"response_body_bytes\":%.0f,\"sqlite\":\"%s\",",
           (long long)nsims, (long long)batch, (long long)done, (long long)commits, elapsed,
           elapsed > 0 ? (double)done / elapsed : 0.0, provision_s, done ? (double)payload_bytes / (double)done : 0.0,
           done ? (double)body_bytes / (double)done : 0.0, sqlite3_libversion());
    cpu_print(stdout, &c0, &c1, "self", NULL);
    printf(",\"write_bytes_per_topup\":%.0f}\n", done ? (c1.wchar - c0.wchar) / (double)done : 0.0);
    free(ss);
    return 0;
}
