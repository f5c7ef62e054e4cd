/* server — the HTTP front of topupd: requests from net.c's workers,
 * table-dispatched routes (api/routes.c), authentication, body caps, and the
 * hand-off of mutations to the engine (connections are suspended while their
 * command runs, so a few threads carry many requests in flight).
 * Also runs the lifecycle sweeper. */
#pragma once
#include "util/conf.h"

struct tx;
struct cmd;
struct server;

struct server_opts {
    const char *listen;      /* "127.0.0.1:8080"; NULL: no socket (server_add_connection) */
    const char *tls_cert, *tls_key;   /* PEM files: serve HTTPS (GnuTLS); both or neither */
    const char *db_path;
    const char *key_path;    /* receipt signing key; default <db>.ed25519 */
    int test_clock;          /* enables POST /v1/test/clock */
    const char *fault;       /* store fault injection spec (tests only), or NULL */
    const char *banner;      /* printed to stdout once listening (demo), or NULL */
    struct conf cf;
};

/* Migrates, opens, listens; returns when SIGINT or SIGTERM arrives. 0 on a clean stop. */
int server_run(const struct server_opts *o);

/* The same without signals or the sweeper, for tests and fuzzers. *out is
 * set even on failure (pass it to server_close). With o->listen NULL there is
 * no socket: hand connections over with server_add_connection (it takes the
 * fd; the peer looks like 127.0.0.1). */
int server_open(struct server **out, const struct server_opts *o);
int server_add_connection(struct server *s, int fd);
void server_close(struct server *s);

/* The lifecycle sweep as an engine command: settles due SIMs and bundles and
 * expires pending transfers, up to limit items each (c->arg, a struct
 * sweep); c->status receives how many moved, and more is 1 when it stopped
 * at a limit: the sweeper sweeps again at once. (Counting only what moved
 * would stop it after SIMs topped up since they came due, which are looked
 * at and move nothing, and leave the rest due until the next interval.) */
struct sweep {
    int limit;
    int more;
};
int server_sweep_exec(struct tx *tx, struct cmd *c);

/* Opens the database as the writer and applies migrations. A database keeps
 * the currency it was created with: cf->currency becomes it, or, when the
 * configuration named another (cf->currency_set), ERR_CURRENCY_MISMATCH. A new
 * database takes cf->currency. *version (may be NULL) receives the schema
 * version.
 *
 * With keys (else key_path is unused), loads the receipt signing key from
 * key_path into it. A database keeps the id of the key its receipts are
 * signed with (meta "receipt_key", noted at the first start): a file that is
 * missing, or holds another key, is refused (ERR_NOT_FOUND, ERR_INTERNAL)
 * with what to do in the log, rather than a new key made, under which every
 * receipt already issued would fail to verify. A key is created only when
 * the database names none and has issued no receipt. */
struct receipt_keys;
int server_prepare_db(const char *db_path, struct conf *cf, int *version, const char *key_path,
                      struct receipt_keys *keys);

/* Opens an existing database to read it and nothing else (check, token
 * list): *out is a STORE_READER connection, and neither it nor this call
 * writes, so a user who may only read the file can. A file that is not a
 * topup database, or whose schema version is not this binary's (older: the
 * log says to run `topupd migrate`), is refused with ERR_INVALID_STATE;
 * one SQLite cannot read, ERR_STORAGE. The currency is kept as
 * server_prepare_db keeps it (cf->currency becomes the database's, or
 * ERR_CURRENCY_MISMATCH). On failure *out is untouched and the reason logged. */
struct store;
int server_open_reader(struct store **out, const char *db_path, struct conf *cf);
