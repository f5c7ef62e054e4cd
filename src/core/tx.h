/* tx — what a core function sees: one store transaction and the world around
 * it. Core functions are pure over a tx: they read and write only through
 * tx->st and take the time only from tx->now, so a test can run them on a
 * temporary database at any instant it likes. */
#pragma once
#include <stdint.h>

struct store;
struct conf;
struct arena;
struct receipt_keys;
struct ledger_cache;

struct tx {
    struct store *st;
    int64_t now;                       /* Unix seconds, fixed for the whole command */
    const struct conf *cf;
    const struct receipt_keys *keys;   /* receipt signing; NULL on readers */
    struct arena *a;                   /* freed when the request or command ends */
    const char *principal;             /* who asked, for records ("token:12") */
    struct ledger_cache *sys;          /* the writer's system-account ids, or NULL */
};
