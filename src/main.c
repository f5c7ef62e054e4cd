/* topupd — one binary, Git-style subcommands dispatched from commands[]. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "core/ledger.h"
#include "core/plan.h"
#include "core/sim.h"
#include "http/auth.h"
#include "http/server.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/clock.h"
#include "util/conf.h"
#include "util/err.h"
#include "util/files.h"
#include "util/i18n.h"
#include "util/log.h"
#include "util/text.h"

struct opts {
    const char *listen, *db, *key, *role, *name, *replaces, *to, *fault, *tls_cert, *tls_key;
    int test_clock, help;
    const char *arg, *arg2;   /* positional arguments ("token revoke 12"), as many as the command takes */
    struct conf cf;
};

/* Flags every subcommand understands; a subcommand ignores those it has no use for.
 * The configuration is built as conf.h has it: defaults, then each --config
 * file, then every --set flag, wherever it stands among the files. */
static int parse(int argc, char **argv, int max_args, struct opts *o)
{
    char eb[256];
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0, nargs = 0, rc = 0;   /* max_args <= 2: arg, arg2 */
    if (!sets)
        return fprintf(stderr, "out of memory\n"), -1;
    conf_defaults(&o->cf);
    for (int i = 0; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = !strcmp(a, "--listen") ? &o->listen
                          : !strcmp(a, "--db")     ? &o->db
                          : !strcmp(a, "--key")    ? &o->key
                          : !strcmp(a, "--role")   ? &o->role
                          : !strcmp(a, "--name")   ? &o->name
                          : !strcmp(a, "--replaces") ? &o->replaces
                          : !strcmp(a, "--to")     ? &o->to
                          : !strcmp(a, "--fault")  ? &o->fault
                          : !strcmp(a, "--tls-cert") ? &o->tls_cert
                          : !strcmp(a, "--tls-key")  ? &o->tls_key : NULL;
        int valued = slot || !strcmp(a, "--config") || !strcmp(a, "--set");
        if (valued && !v) {
            fprintf(stderr, "%s needs a value\n", a);
            rc = -1;
        } else if (slot) {
            *slot = v;
            i++;
        } else if (!strcmp(a, "--test-clock")) {
            o->test_clock = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = 1;
            break;   /* whatever follows is not run */
        } else if (!strcmp(a, "--config")) {
            rc = conf_load_file(&o->cf, v, eb, sizeof eb);
            if (rc)
                fprintf(stderr, "configuration: %s\n", eb);
            i++;
        } else if (!strcmp(a, "--set")) {
            sets[nsets++] = v;
            i++;
        } else if (a[0] != '-' && nargs < max_args) {
            *(nargs++ ? &o->arg2 : &o->arg) = a;
        } else if (a[0] != '-') {   /* "serve --db x.db 127.0.0.1:9000" served on the default address */
            fprintf(stderr, "unexpected argument '%s'\n", a);
            rc = -1;
        } else {
            fprintf(stderr, "unknown argument '%s'\n", a);
            rc = -1;
        }
    }
    for (int i = 0; i < nsets && !rc && !o->help; i++) {
        rc = conf_set_pair(&o->cf, sets[i], eb, sizeof eb);
        if (rc)
            fprintf(stderr, "configuration: %s\n", eb);
    }
    if (!rc && !o->help) {
        rc = conf_check(&o->cf, eb, sizeof eb);
        if (rc)
            fprintf(stderr, "configuration: %s\n", eb);
    }
    free(sets);
    return rc;
}

static int need_db(const struct opts *o)
{
    if (o->db)
        return 0;
    fprintf(stderr, "--db PATH is required\n");
    return -1;
}

/* Commands that read or change what a database already holds never create
 * one: a mistyped path would otherwise "check" a new, empty ledger and pass.
 * Returns the exit status to give, or 0 to go on. */
static int need_existing_db(const struct opts *o, const char *cmd)
{
    if (need_db(o))
        return 2;
    struct stat sb;
    if (stat(o->db, &sb) == 0 && sb.st_size > 0)
        return 0;
    if (access(o->db, F_OK))
        fprintf(stderr, "%s: no database at '%s'\n", cmd, o->db);
    else
        fprintf(stderr, "%s: %s is not a topup database (an empty file)\n", cmd, o->db);
    return 1;
}

/* Runs fn in one transaction on the database, outside the server: a write
 * transaction (STORE_WRITER) on a database migrated first, or a snapshot
 * (STORE_READER) that a running server's writer goes on beside, of a
 * database at this binary's schema, which nothing writes: neither a file
 * that is not a topup database nor one a user may only read is changed. */
static int in_tx(struct opts *o, enum store_mode mode, int (*fn)(struct tx *tx, void *arg), void *arg)
{
    struct store *st = NULL;
    int rc = mode == STORE_READER ? server_open_reader(&st, o->db, &o->cf)
                                  : server_prepare_db(o->db, &o->cf, NULL, NULL, NULL);
    if (!rc && !st)
        rc = store_open(&st, o->db, mode);
    if (rc) {
        store_close(st);
        return rc;
    }
    struct clock clk;
    struct arena a;
    clock_init_system(&clk);
    arena_init(&a);
    struct tx tx = {.st = st, .now = clock_now(&clk), .cf = &o->cf, .a = &a, .principal = "cli"};
    rc = store_begin(st);
    if (!rc)
        rc = fn(&tx, arg);
    rc = rc ? rc : store_commit(st);
    if (rc)
        store_rollback(st);
    store_close(st);
    arena_free(&a);
    return rc;
}

static int with_tx(struct opts *o, int (*fn)(struct tx *tx, void *arg), void *arg)
{
    return in_tx(o, STORE_WRITER, fn, arg);
}

/* glibc adapts its trim and mmap thresholds to the last large free, and then
 * gives memory back to the kernel and takes it again all the time: requests
 * are allocated on one thread and freed on another, and each round trip is an
 * mprotect and a page fault per page. A server keeps what it will reuse: fixed
 * thresholds measured 11.3k -> 13.2k top-ups/s at the HTTP peak. */
static void tune_malloc(void)
{
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

static int cmd_serve(struct opts *o)
{
    if (need_db(o))
        return 2;
    tune_malloc();
    struct server_opts so = {.listen = o->listen ? o->listen : "127.0.0.1:8080", .db_path = o->db,
                             .key_path = o->key, .test_clock = o->test_clock, .fault = o->fault, .tls_cert = o->tls_cert,
                             .tls_key = o->tls_key, .cf = o->cf};
    return server_run(&so);
}

static int cmd_migrate(struct opts *o)
{
    if (need_db(o))
        return 2;
    int rc = server_prepare_db(o->db, &o->cf, NULL, NULL, NULL);
    if (rc)
        fprintf(stderr, "migrate: %s\n", err_code(rc));
    return rc ? 1 : 0;
}

struct token_arg {
    struct token_spec spec;
    char secret[TOKEN_LEN + 8];
    int64_t id;
};

static int token_create(struct tx *tx, void *arg)
{
    struct token_arg *t = arg;
    return auth_token_create(tx, &t->spec, t->secret, &t->id);
}

static int token_revoke(struct tx *tx, void *arg) { return auth_token_revoke(tx, *(int64_t *)arg); }

static void print_token(void *arg, const struct token_row *t)
{
    char replaces[32] = "";
    if (t->replaces)
        snprintf(replaces, sizeof replaces, "\treplaces %lld", (long long)t->replaces);
    printf("%lld\t%s…\t%s\t%s\t%s%s\n", (long long)t->id, t->prefix, t->role, t->revoked_at ? "revoked" : "active",
           t->name, replaces);
}

static int token_list(struct tx *tx, void *arg) { return auth_token_list(tx, print_token, NULL); }

#define TOKEN_USAGE "token create|list|revoke ID --db PATH [--role admin|operator|monitor] [--name NAME] [--replaces ID]"

/* A token id as `token list` prints it: a positive decimal, nothing after it. */
static int parse_id(const char *s, int64_t *id)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return -1;
    *id = v;
    return 0;
}

static int cmd_token(struct opts *o)
{
    int create = o->arg && !strcmp(o->arg, "create") && !o->arg2;
    int list = o->arg && !strcmp(o->arg, "list") && !o->arg2;
    int revoke = o->arg && !strcmp(o->arg, "revoke") && o->arg2;
    if (!create && !list && !revoke)
        return fprintf(stderr, "usage: topupd " TOKEN_USAGE "\n"), 2;
    int64_t id = 0;
    if (revoke && parse_id(o->arg2, &id))
        return fprintf(stderr, "token: '%s' is not a token id (see 'topupd token list')\n", o->arg2), 2;
    if (create && o->replaces && parse_id(o->replaces, &id))
        return fprintf(stderr, "token: --replaces '%s' is not a token id (see 'topupd token list')\n", o->replaces), 2;
    /* create may make the database; a replacement needs the token it replaces */
    int rc = create && !o->replaces ? (need_db(o) ? 2 : 0) : need_existing_db(o, "token");
    if (rc)
        return rc;
    if (create) {
        /* A replacement takes the replaced token's role unless --role says it */
        const char *role = o->role ? o->role : o->replaces ? NULL : "admin";
        struct token_arg t = {.spec = {.role = role ? auth_role_parse(role) : -1, .name = o->name, .replaces = id}};
        if (role && t.spec.role < 0)
            return fprintf(stderr, "--role must be admin, operator or monitor\n"), 2;
        if (t.spec.name && !text_printable(t.spec.name, TOKEN_NAME_MAX))
            return fprintf(stderr, "--name must be text of at most %d bytes, without control characters\n",
                           TOKEN_NAME_MAX), 2;
        rc = with_tx(o, token_create, &t);
        if (!rc) {
            printf("%s\n", t.secret);
            fprintf(stderr, "token %lld created (%s%s); it is shown only now\n", (long long)t.id,
                    auth_role_name(t.spec.role), id ? ", sharing the idempotency keys of the one it replaces" : "");
        }
        sodium_memzero(t.secret, sizeof t.secret);
    } else if (list) {
        rc = in_tx(o, STORE_READER, token_list, NULL);
    } else {
        rc = with_tx(o, token_revoke, &id);
        if (!rc && auth_share(o->db, 1))   /* a running server forgets the token (auth.h A2) */
            fprintf(stderr, "token: could not tell a running server; it refuses the token within %d ms\n",
                    AUTH_REMEMBER_MS);
    }
    if (rc == ERR_NOT_FOUND)
        fprintf(stderr, "token: %s: there is no token %lld (see 'topupd token list')\n", err_code(rc), (long long)id);
    else if (rc == ERR_INVALID_PARAMETER && create)
        fprintf(stderr, "token: token %lld has another role: a token replaces one of its own role\n", (long long)id);
    else if (rc)
        fprintf(stderr, "token: %s\n", err_code(rc));
    return rc ? 1 : 0;
}

static int ledger_report(struct tx *tx, void *arg)
{
    struct ledger_report *r = arg;
    return ledger_check(tx, r);
}

static int cmd_check(struct opts *o)
{
    int rc = need_existing_db(o, "check");
    if (rc)
        return rc;
    struct ledger_report r;
    rc = in_tx(o, STORE_READER, ledger_report, &r);   /* a snapshot: a running server's writes go on */
    if (rc)
        return fprintf(stderr, "check: %s\n", err_code(rc)), 1;
    for (int i = 0; i < r.nunits; i++)
        printf("%-8s debits %lld credits %lld accounts %lld\n", r.units[i].unit, (long long)r.units[i].debits,
               (long long)r.units[i].credits, (long long)r.units[i].accounts);
    printf("%s\n", r.violations ? r.first_violation : "ledger ok");
    return r.violations ? 1 : 0;
}

/* ---- backup ----------------------------------------------------------------- */

STORE_SQL(SQL_RECEIPT_KEY, "SELECT value FROM meta WHERE key = 'receipt_key'");

/* Creates path empty (VACUUM INTO takes an empty file) with db's mode, so
 * that the copy is never more readable than the database, not even while it
 * is written: SQLite would create it 0644, and its journal as the copy. */
static int make_private(const char *path, const char *db)
{
    struct stat sb;
    if (stat(db, &sb))
        return ERR_STORAGE;
    mode_t mode = (sb.st_mode & 0777) | S_IWUSR;   /* the owner writes it (a 0444 database too); no one else */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return ERR_STORAGE;
    int rc = fchmod(fd, mode);   /* the umask only ever narrows it; this makes it the db's */
    close(fd);
    return rc ? ERR_STORAGE : 0;
}

/* Renames from to to, refusing (EEXIST) when anything is at to: a file
 * that appeared there while the copy was made is kept. */
static int put_new(const char *from, const char *to)
{
    if (!renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE))
        return 0;
    if (errno != EINVAL && errno != ENOSYS)   /* a file system without it: a link is as exclusive */
        return -1;
    return link(from, to) ? -1 : unlink(from);
}

/* Whether path, once its directory is resolved, is the database (resolved)
 * or a file kept beside it: SQLite's log, index and journal, the receipt key
 * and the token epoch. A copy put there would be taken for one of them. */
static int beside_db(const char *path, const char *db_real, const char *key)
{
    static const char *const files[] = {"", "-wal", "-shm", "-journal", ".ed25519", ".token-epoch"};
    char d[4096], b[4096], dir[PATH_MAX], full[PATH_MAX + 4096], k[PATH_MAX], other[PATH_MAX + 16];
    snprintf(d, sizeof d, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    if (!realpath(dirname(d), dir))
        return 0;   /* no such directory: the copy fails there, and nothing is touched */
    snprintf(full, sizeof full, "%s/%s", strcmp(dir, "/") ? dir : "", basename(b));
    if (key && realpath(key, k) && !strcmp(full, k))
        return 1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(other, sizeof other, "%s%s", db_real, files[i]);
        if (!strcmp(full, other))
            return 1;
    }
    return 0;
}

struct copy_check {
    int version;          /* the copy's schema */
    int balanced;         /* the ledger was checked (a database at this topupd's schema) */
    struct ledger_report ledger;
    char why[256];        /* quick_check's first finding */
    char key_id[17];      /* the key its receipts are signed with; "" if none yet */
};

/* A topup database at any schema this topupd knows (a backup before an
 * upgrade is the one most wanted); its version into *version. */
static int open_ours(struct store **st, const char *path, int *version)
{
    int rc = store_open(st, path, STORE_READER);
    if (!rc)
        rc = store_ours(*st);   /* another program's, or a newer topupd's: said there */
    if (!rc)
        rc = store_version(*st, version);
    if (!rc && !*version) {
        fprintf(stderr, "backup: %s is not a topup database (it has no schema version)\n", path);
        rc = ERR_INVALID_STATE;
    }
    return rc;
}

/* The copy is whole (quick_check) and, at this topupd's schema, balanced. */
static int check_copy(const char *path, struct conf *cf, struct copy_check *c)
{
    struct store *st = NULL;
    int rc = open_ours(&st, path, &c->version);
    if (!rc && (rc = store_quick_check(st, c->why, sizeof c->why)))
        fprintf(stderr, "backup: the copy fails SQLite's quick_check: %s\n", c->why);
    if (!rc && c->version == store_version_latest()) {
        store_close(st);
        st = NULL;
        rc = server_open_reader(&st, path, cf);
        c->balanced = 1;
    }
    struct arena a;
    arena_init(&a);
    struct tx tx = {.st = st, .now = 0, .cf = cf, .a = &a, .principal = "cli"};
    if (!rc && !(rc = store_begin(st))) {
        rc = c->balanced ? ledger_check(&tx, &c->ledger) : 0;
        struct store_q *q;
        int k = rc ? rc : store_one(st, &q, &SQL_RECEIPT_KEY, "");
        if (!k) {
            text_copy(c->key_id, sizeof c->key_id, store_text(q, 0));
            store_end(q);
        }
        store_rollback(st);
    }
    store_close(st);
    arena_free(&a);
    return rc;
}

/* A consistent copy of a database, while a server runs on it: taken from one
 * snapshot into <to>.partial, synced, checked (SQLite's quick_check and the
 * ledger), and only then renamed to <to>, its directory synced. So a file at
 * <to> is always a whole, checked backup; one interrupted leaves .partial,
 * which the next run replaces. Nothing is ever overwritten at <to>. */
static int cmd_backup(struct opts *o)
{
    int rc = need_existing_db(o, "backup");
    if (rc)
        return rc;
    if (!o->to)
        return fprintf(stderr, "--to FILE is required\n"), 2;
    struct stat sb;
    if (!lstat(o->to, &sb))   /* a dangling link too: rename would replace the link */
        return fprintf(stderr, "backup: %s exists; a backup never replaces a file\n", o->to), 1;
    char part[4096];
    if (snprintf(part, sizeof part, "%s.partial", o->to) >= (int)sizeof part)
        return fprintf(stderr, "backup: --to is too long\n"), 2;
    char db_real[PATH_MAX];
    if (!realpath(o->db, db_real))
        return fprintf(stderr, "backup: %s: %s\n", o->db, strerror(errno)), 1;
    if (beside_db(o->to, db_real, o->key) || beside_db(part, db_real, o->key))
        return fprintf(stderr, "backup: %s is the database or one of its files (or its .partial would be); "
                       "put the backup elsewhere\n", o->to), 1;
    if (unlink(part) && errno != ENOENT)
        return fprintf(stderr, "backup: cannot remove %s: %s\n", part, strerror(errno)), 1;
    int64_t t0 = clock_mono_ms();
    struct store *st = NULL;
    int version = 0;
    rc = open_ours(&st, o->db, &version);
    if (!rc && (rc = make_private(part, o->db)))
        fprintf(stderr, "backup: cannot create %s: %s\n", part, strerror(errno));
    if (!rc && (rc = store_copy(st, part)))
        fprintf(stderr, "backup: could not write %s (see above)\n", part);
    store_close(st);
    struct stat db_sb;
    if (!rc && !stat(o->db, &db_sb))
        chmod(part, db_sb.st_mode & 0777);   /* as the database, the owner's write too */
    if (!rc && files_sync(part)) {
        fprintf(stderr, "backup: could not sync %s: %s\n", part, strerror(errno));
        rc = ERR_STORAGE;
    }
    int64_t took = clock_mono_ms() - t0;
    struct copy_check c = {0};
    if (!rc && (rc = check_copy(part, &o->cf, &c)) == 0 && c.ledger.violations) {
        fprintf(stderr, "backup: the copy's ledger does not balance: %s\n", c.ledger.first_violation);
        rc = ERR_CONSTRAINT;
    }
    if (!rc && (put_new(part, o->to) || files_sync_dir_of(o->to))) {
        fprintf(stderr, "backup: could not put the copy at %s: %s\n", o->to, strerror(errno));
        rc = ERR_STORAGE;
    }
    if (rc) {
        unlink(part);
        return fprintf(stderr, "backup: %s; no backup was made\n", err_code(rc)), 1;
    }
    stat(o->to, &sb);
    printf("backup %s: %.1f MB from one snapshot of %s in %.1f s, schema %d; quick_check ok; ", o->to,
           (double)sb.st_size / 1e6, o->db, (double)took / 1e3, c.version);
    if (!c.balanced)
        printf("ledger not checked (this topupd checks schema %d: run its check after the upgrade)",
               store_version_latest());
    else
        printf("ledger ok");
    for (int i = 0; i < c.ledger.nunits; i++)
        printf("%s%s debits = credits = %lld", i ? ", " : " (", c.ledger.units[i].unit,
               (long long)c.ledger.units[i].debits);
    printf("%s\n", c.ledger.nunits ? ")" : "");
    if (c.key_id[0])
        printf("its receipts are signed with key %s: keep %s%s with the backups, but apart from them\n", c.key_id,
               o->key ? o->key : o->db, o->key ? "" : ".ed25519");
    return 0;
}

/* ---- demo ------------------------------------------------------------------- */

/* Appends the Luhn check digit to a run of digits. */
static void luhn_complete(char *digits)
{
    size_t n = strlen(digits);
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = digits[n - 1 - i] - '0';
        if (i % 2 == 0 && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    digits[n] = (char)('0' + (10 - sum % 10) % 10);
    digits[n + 1] = 0;
}

#define DEMO_MSISDN "+7916000%04d"   /* demo SIM i's number */

static int demo_seed(struct tx *tx, void *arg)
{
    static const struct {
        const char *code, *zh, *en, *ru;
        int64_t price, days, data, voice, sms;
        const char *zones;
    } plans[] = {
        {"data5", "5GB 流量包", "5 GB data", "5 ГБ интернета", 3000, 30, 5LL << 30, 0, 0, "[\"250\"]"},
        {"travel10", "10GB 漫游套餐", "10 GB roaming", "10 ГБ в роуминге", 9900, 30, 10LL << 30, 3600, 100,
         "[\"250\",\"460\"]"},
        {"talk100", "100 分钟通话", "100 minutes", "100 минут", 1500, 30, 0, 6000, 50, "[\"250\"]"},
    };
    int existed, rc = 0;
    for (size_t i = 0; !rc && i < sizeof plans / sizeof plans[0]; i++) {
        struct plan p = {.price = plans[i].price, .validity_days = plans[i].days,
                         .allowance = {plans[i].data, plans[i].voice, plans[i].sms}};
        snprintf(p.code, sizeof p.code, "%s", plans[i].code);
        snprintf(p.name_zh, sizeof p.name_zh, "%s", plans[i].zh);
        snprintf(p.name_en, sizeof p.name_en, "%s", plans[i].en);
        snprintf(p.name_ru, sizeof p.name_ru, "%s", plans[i].ru);
        snprintf(p.currency, sizeof p.currency, "%s", tx->cf->currency);
        snprintf(p.zones, sizeof p.zones, "%s", plans[i].zones);
        rc = plan_create(tx, &p, &existed);
    }
    static const char *const langs[] = {"ru", "zh", "en"};
    for (int i = 1; !rc && i <= 5; i++) {
        struct sim s = {0};
        snprintf(s.iccid, sizeof s.iccid, "897010000000000%03d", i);
        luhn_complete(s.iccid);
        snprintf(s.msisdn, sizeof s.msisdn, DEMO_MSISDN, i);
        snprintf(s.lang, sizeof s.lang, "%s", langs[i % 3]);
        rc = sim_create(tx, &s, &existed);
        if (!rc && i == 1)
            snprintf(arg, ICCID_MAX + 1, "%s", s.iccid);
    }
    return rc;
}

/* The demo's admin token: a new one at each start (only its hash is kept, so
 * the last one cannot be shown again), and the ones earlier starts printed
 * revoked in the same transaction, so that one demo token works at a time. */
struct demo_tokens {
    int64_t ids[64];
    int n;
};

static void note_demo_token(void *arg, const struct token_row *t)
{
    struct demo_tokens *d = arg;
    int room = d->n < (int)(sizeof d->ids / sizeof d->ids[0]);
    if (room && !t->revoked_at && !strcmp(t->name, "demo") && !strcmp(t->role, "admin"))
        d->ids[d->n++] = t->id;
}

static int demo_token(struct tx *tx, void *arg)
{
    struct demo_tokens d;
    int rc;
    do {   /* a listing notes at most 64; the next one skips those revoked */
        d.n = 0;
        rc = auth_token_list(tx, note_demo_token, &d);
        for (int i = 0; !rc && i < d.n; i++)
            rc = auth_token_revoke(tx, d.ids[i]);
    } while (!rc && d.n == (int)(sizeof d.ids / sizeof d.ids[0]));
    return rc ? rc : token_create(tx, arg);
}

static int cmd_demo(struct opts *o)
{
    if (!o->db)
        o->db = "demo/topup.db";
    if (!o->listen)
        o->listen = "127.0.0.1:8080";
    char iccid[ICCID_MAX + 1], number[MSISDN_MAX + 1];
    snprintf(number, sizeof number, DEMO_MSISDN, 1);
    struct token_arg t = {.spec = {.role = ROLE_ADMIN, .name = "demo"}};
    int rc = with_tx(o, demo_seed, iccid);
    if (!rc)
        rc = with_tx(o, demo_token, &t);
    if (rc)
        return fprintf(stderr, "demo: %s\n", err_code(rc)), 1;
    char banner[2048];
    snprintf(banner, sizeof banner,
             "\ntopupd demo is running on http://%s (database %s)\n"
             "admin token: %s\n\n"
             "try:\n"
             "  curl -s http://%s/v1/sims/%s -H 'Authorization: Bearer %s'\n"
             "  curl -s -X POST http://%s/v1/sims/%s/topups -H 'Authorization: Bearer %s' \\\n"
             "       -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' \\\n"
             "       -d '{\"amount\":5000,\"currency\":\"%s\",\"channel\":\"portal\",\"method\":\"alipay\"}'\n"
             "  curl -s http://%s/v1/sims/%s/transactions -H 'Authorization: Bearer %s'   # by its number\n"
             "  curl -s http://%s/v1/plans -H 'Accept-Language: zh'\n\n"
             "Ctrl-C stops it.\n",
             o->listen, o->db, t.secret, o->listen, iccid, t.secret, o->listen, iccid, t.secret,
             o->cf.currency, o->listen, number, t.secret, o->listen);
    sodium_memzero(t.secret, sizeof t.secret);
    struct server_opts so = {.listen = o->listen, .db_path = o->db, .key_path = o->key,
                             .test_clock = o->test_clock, .banner = banner, .cf = o->cf};
    return server_run(&so);
}

/* The route table as JSON: what the authorization matrix test walks. */
static int cmd_routes(struct opts *o)
{
    static const struct { int bit; const char *name; } roles[] = {
        {ROLE_ANON, "anonymous"}, {ROLE_OPERATOR, "operator"}, {ROLE_ADMIN, "admin"}, {ROLE_MONITOR, "monitor"}};
    printf("[");
    for (size_t i = 0; i < api_route_count; i++) {
        const struct route *rt = &api_routes[i];
        printf("%s\n {\"method\":\"%s\",\"path\":\"%s\",\"roles\":[", i ? "," : "",
               http_method_name(rt->method), rt->pattern);
        int n = 0;
        for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
            if (rt->roles & roles[k].bit)
                printf("%s\"%s\"", n++ ? "," : "", roles[k].name);
        printf("],\"idempotency_key_required\":%s,\"csv\":%s,\"test_clock_only\":%s}",
               rt->flags & ROUTE_IDEM_REQUIRED ? "true" : "false", rt->flags & ROUTE_CSV ? "true" : "false",
               rt->flags & ROUTE_TEST_CLOCK ? "true" : "false");
    }
    printf("\n]\n");
    return 0;
}

static int cmd_help(struct opts *o);

static const struct command {
    const char *name;
    int (*run)(struct opts *o);
    int args;   /* the most positional arguments it takes; one more is a usage error */
    const char *help;
} commands[] = {
    {"serve",        cmd_serve,   0, "serve --db PATH [--listen IP:PORT] [--key PATH] [--config FILE] [--set k=v]...\n"
                                     "               [--tls-cert PEM --tls-key PEM]\n"
                                     "               [--test-clock] [--fault write@N|full@N|fsync@N[,once]]  (tests only)"},
    {"migrate",      cmd_migrate, 0, "migrate --db PATH        apply the schema migrations"},
    {"token",        cmd_token,   2, TOKEN_USAGE},
    {"check",        cmd_check,   0, "check --db PATH          verify the ledger (exit 1 on a violation)"},
    {"backup",       cmd_backup,  0, "backup --db PATH --to FILE [--key PATH]  a checked copy, while the server runs"},
    {"routes",       cmd_routes,  0, "routes                   print the route table and its roles as JSON"},
    {"demo",         cmd_demo,    0, "demo [--db PATH] [--listen IP:PORT] [--key PATH]  seed demo data and serve"},
    {"help",         cmd_help,    1, "help [COMMAND]           this, or one command's usage (also: COMMAND --help)"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const struct command *command_named(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(name, commands[i].name))
            return &commands[i];
    return NULL;
}

static void usage(FILE *out, const struct command *c)
{
    if (c) {
        fprintf(out, "usage: topupd %s\n", c->help);
        return;
    }
    fprintf(out, "usage: topupd COMMAND [options]\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  topupd %s\n", commands[i].help);
}

static int cmd_help(struct opts *o)
{
    const struct command *c = o->arg ? command_named(o->arg) : NULL;
    if (o->arg && !c)
        return fprintf(stderr, "topupd: '%s' is not a command; see 'topupd help'\n", o->arg), 2;
    usage(stdout, c);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0 || i18n_init())
        return 1;
    if (argc < 2)
        return usage(stderr, NULL), 2;
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h"))
        name = "help";
    const struct command *c = command_named(name);
    if (!c) {
        fprintf(stderr, "topupd: '%s' is not a command; see 'topupd help'\n", name);
        return 2;
    }
    struct opts o = {0};
    if (parse(argc - 2, argv + 2, c->args, &o))
        return 2;
    if (o.help)
        return usage(stdout, c == command_named("help") ? NULL : c), 0;
    return c->run(&o);
}
