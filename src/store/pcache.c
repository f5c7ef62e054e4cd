/* pcache — SQLite's own page cache, minus a full scan at every commit that
 * split a B-tree page (store.h S7).
 *
 * When a split leaves the new sibling pages out of order, SQLite swaps their
 * numbers through a spare one: the page that holds the lock byte, at 1 GiB,
 * which no table ever uses. The default cache then remembers that page
 * number as its largest key. At the end of the transaction SQLite asks it to
 * drop every page past the end of the database. Because that largest key is
 * far past the end, the default cache walks its whole hash table, about one
 * bucket per cached page, so 16k buckets for the writer's cache (64 MiB
 * then). This was 14% of the writer's time at 9k top-ups/s on a database under 1 GiB (perf
 * with call graphs, against Debian's libsqlite3.a).
 *
 * This shim forwards every call to the default cache. It also keeps, per
 * cache, an upper bound on the page numbers it holds, and counts the pages
 * parked on the spare number. With both in hand it skips a truncation that
 * cannot drop anything. The default cache then gives the same answers as
 * before; only a walk that would have found nothing is left out.
 */
#include <sqlite3.h>
#include <stdlib.h>

#include "store/store.h"

/* Where SQLite keeps its file locks (its default, changed only by a test control). */
#define LOCK_BYTE_OFFSET 0x40000000u

static sqlite3_pcache_methods2 base;

struct cache {
    sqlite3_pcache *inner;
    unsigned spare;      /* the lock-byte page: SQLite's spare number for swaps */
    unsigned max_key;    /* no page above it, the spare one aside */
    int parked;          /* pages put on the spare number and not yet moved off it (an upper bound) */
};

static sqlite3_pcache *create(int page_size, int extra, int purgeable)
{
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->inner = base.xCreate(page_size, extra, purgeable);
    if (!c->inner) {
        free(c);
        return NULL;
    }
    c->spare = LOCK_BYTE_OFFSET / (unsigned)page_size + 1;
    return (sqlite3_pcache *)c;
}

static void cachesize(sqlite3_pcache *p, int n) { base.xCachesize(((struct cache *)p)->inner, n); }
static int pagecount(sqlite3_pcache *p) { return base.xPagecount(((struct cache *)p)->inner); }
static void shrink(sqlite3_pcache *p) { base.xShrink(((struct cache *)p)->inner); }

static sqlite3_pcache_page *fetch(sqlite3_pcache *p, unsigned key, int create_flag)
{
    struct cache *c = (struct cache *)p;
    if (create_flag && key == c->spare)
        c->parked++;   /* SQLite drops it at once (it is never read), but no call tells us */
    else if (create_flag && key > c->max_key)
        c->max_key = key;
    return base.xFetch(c->inner, key, create_flag);
}

static void unpin(sqlite3_pcache *p, sqlite3_pcache_page *pg, int discard)
{
    base.xUnpin(((struct cache *)p)->inner, pg, discard);
}

static void rekey(sqlite3_pcache *p, sqlite3_pcache_page *pg, unsigned old_key, unsigned new_key)
{
    struct cache *c = (struct cache *)p;
    if (old_key == c->spare)
        c->parked--;
    if (new_key == c->spare)
        c->parked++;
    else if (new_key > c->max_key)
        c->max_key = new_key;
    base.xRekey(c->inner, pg, old_key, new_key);
}

/* Drops every page numbered limit or above. */
static void truncate_from(sqlite3_pcache *p, unsigned limit)
{
    struct cache *c = (struct cache *)p;
    if (c->parked <= 0 && limit > c->max_key)
        return;   /* nothing that high is cached */
    base.xTruncate(c->inner, limit);
    if (limit <= c->max_key)
        c->max_key = limit ? limit - 1 : 0;
    if (limit <= c->spare)
        c->parked = 0;
}

static void destroy(sqlite3_pcache *p)
{
    struct cache *c = (struct cache *)p;
    base.xDestroy(c->inner);
    free(c);
}

static int init(void *arg) { return base.xInit ? base.xInit(base.pArg) : SQLITE_OK; }

static void shutdown(void *arg)
{
    if (base.xShutdown)
        base.xShutdown(base.pArg);
}

int store_pcache_install(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETPCACHE2, &base) != SQLITE_OK || !base.xTruncate)
        return -1;
    static sqlite3_pcache_methods2 shim;
    shim = (sqlite3_pcache_methods2){
        .iVersion = 1,
        .xInit = init,
        .xShutdown = shutdown,
        .xCreate = create,
        .xCachesize = cachesize,
        .xPagecount = pagecount,
        .xFetch = fetch,
        .xUnpin = unpin,
        .xRekey = rekey,
        .xTruncate = truncate_from,
        .xDestroy = destroy,
        .xShrink = shrink,
    };
    return sqlite3_config(SQLITE_CONFIG_PCACHE2, &shim) == SQLITE_OK ? 0 : -1;
}
