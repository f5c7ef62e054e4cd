/* pcache — the page cache SQLite keeps its pages in (store.h S7).
 *
 * SQLite's own cache (pcache1) finds a page through a hash table of chained
 * page headers and keeps the unpinned ones on a doubly linked LRU list: a
 * lookup follows the chain from its bucket, and a hit unlinks the page from
 * the list, which writes the headers of both its neighbours. Each of those
 * is a cache line that no CPU cache holds once the cache is large. A top-up
 * fetches about 32 pages (31 found, one read); with 10M SIMs the writer's
 * cache holds 123k pages, and pcache1 took 17% of the writer's time (perf:
 * 3.9 us a top-up, against 1.5 us with 100k SIMs).
 *
 * Here:
 *  - the index is one open-addressed table of (key, page) entries, probed
 *    linearly from a multiplicative hash and kept at most half full: a
 *    lookup reads one line;
 *  - in front of it, a small direct-mapped table of the pages fetched
 *    lately, which stays in the L1 cache: the interior and append pages a
 *    top-up fetches again and again are found there without the table;
 *  - a page's pin and reference bits are in its own header, beside the
 *    extra bytes SQLite reads as soon as it has the page, so a hit and an
 *    unpin cost no line SQLite does not read anyway;
 *  - eviction is CLOCK: the hand walks the table in order (prefetching the
 *    headers ahead of it), passes over pinned pages, and gives a page whose
 *    reference bit is set a second chance; the victim's memory takes the
 *    new page in place.
 * With 10M SIMs the cache's share of the writer's time fell from 17% to
 * 11.5% (perf), and the writer's CPU per top-up by 5% (bench/threads, three
 * alternating pairs: 13.8/15.0, 13.5/14.3, 14.0/14.6 us); with 100k SIMs by
 * 2.5% (8.9/9.3, 9.0/9.2, 9.1/9.2 us).
 *
 * What SQLite requires (sqlite3.h, "Application Defined Page Cache"), and
 * what this cache keeps:
 *  P1. A page found keeps its content; a page handed out new (allocated or
 *      recycled) has the first pointer of its extra bytes zeroed, which is
 *      how SQLite knows to set its header up (pcache1 does the same).
 *  P2. A pinned page (fetched, not yet unpinned) is never evicted; one
 *      xUnpin unpins it whatever the number of fetches before.
 *  P3. A cache that is not purgeable (an in-memory database) never drops a
 *      page unless told to (xUnpin with discard, xTruncate, xRekey).
 *  P4. With createFlag 1 a new page is refused once nine pages in ten of
 *      the cache's size are pinned, so that SQLite spills dirty pages to the
 *      log before the cache grows; with createFlag 2 it is refused only if
 *      memory runs out. Otherwise the cache holds at most its size, the
 *      pinned pages aside.
 *  P5. xTruncate drops every page numbered at or past its limit, pinned
 *      ones too; xRekey drops a page already at the new number.
 *
 * xTruncate would have to walk the whole table. SQLite asks for one at the
 * end of every transaction that split a B-tree page: when the new sibling
 * pages are out of order it swaps their numbers through a spare one, the
 * page that holds the lock byte at 1 GiB, which no table ever uses, and
 * then drops every page past the end of the database. So the cache keeps
 * an upper bound on its page numbers, that spare one aside, and looks the
 * spare one up: a truncation that cannot drop anything is skipped. (This was
 * 14% of the writer's time at 9k top-ups/s, when the cache was pcache1.)
 *
 * One cache belongs to one connection, which one thread uses at a time
 * (store.h S2): nothing here is shared or locked.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/store.h"

/* Where SQLite keeps its file locks (its default, changed only by a test control). */
#define LOCK_BYTE_OFFSET 0x40000000u
#define MIN_BITS 6           /* the smallest table: 64 entries */

enum { PINNED = 1, REFERENCED = 2 };

struct page {
    sqlite3_pcache_page pg;  /* first: SQLite's handle is the page */
    unsigned key;
    unsigned flags;          /* PINNED, REFERENCED: beside the extra bytes SQLite reads next */
};

struct entry {
    unsigned key;
    struct page *page;       /* NULL: the entry is empty */
};

#define FRONT_BITS 8
#define PREFETCH_AHEAD 4

struct cache {
    size_t size_page, size_extra;   /* the extra bytes rounded up to 8 */
    int purgeable;
    unsigned max;            /* xCachesize: the pages to keep, pinned ones aside */
    unsigned pinned;
    struct entry *tab;
    unsigned bits, mask, used, hand;   /* used: the pages cached, one entry each */
    unsigned spare;          /* the lock-byte page: SQLite's spare number for swaps */
    unsigned max_key;        /* no page above it, the spare one aside */
    struct entry front[1 << FRONT_BITS];   /* pages fetched lately, by key: a lookup that stays in L1 */
};

/* The top bits of a multiplicative hash: page numbers run in long
 * sequences, which the low bits of the number itself would pile up. */
static unsigned hash(unsigned key, unsigned bits) { return (key * 0x9E3779B1u) >> (32 - bits); }
static unsigned home(const struct cache *c, unsigned key) { return hash(key, c->bits); }
static struct entry *front(struct cache *c, unsigned key) { return &c->front[hash(key, FRONT_BITS)]; }

/* Keeps max_key an upper bound of the numbers in the table, the spare one aside. */
static void note_key(struct cache *c, unsigned key)
{
    if (key != c->spare && key > c->max_key)
        c->max_key = key;
}

static int find(const struct cache *c, unsigned key)
{
    for (unsigned i = home(c, key);; i = (i + 1) & c->mask) {
        if (!c->tab[i].page)
            return -1;
        if (c->tab[i].key == key)
            return (int)i;
    }
}

static void place(struct cache *c, unsigned key, struct page *p)
{
    unsigned i = home(c, key);
    while (c->tab[i].page)
        i = (i + 1) & c->mask;
    c->tab[i] = (struct entry){key, p};
    c->used++;
}

/* Keeps the table at most half full; 0 or -1 when memory runs out. */
static int room_for_one(struct cache *c)
{
    if (c->tab && 2 * (c->used + 1) <= c->mask + 1)
        return 0;
    unsigned bits = c->tab ? c->bits + 1 : MIN_BITS;
    struct entry *old = c->tab, *tab = calloc((size_t)1 << bits, sizeof *tab);
    if (!tab)
        return -1;
    unsigned n = c->tab ? c->mask + 1 : 0;
    c->tab = tab, c->bits = bits, c->mask = (1u << bits) - 1, c->used = 0, c->hand = 0;
    for (unsigned i = 0; i < n; i++)
        if (old[i].page)
            place(c, old[i].key, old[i].page);
    free(old);
    return 0;
}

/* Empties entry i and moves back the entries after it that their home
 * allows, so that no probe finds a hole before its key. */
static void erase(struct cache *c, unsigned i)
{
    unsigned j = i;
    for (;;) {
        c->tab[i].page = NULL;
        unsigned k;
        do {
            j = (j + 1) & c->mask;
            if (!c->tab[j].page) {
                c->used--;
                return;
            }
            k = home(c, c->tab[j].key);
        } while (i <= j ? i < k && k <= j : i < k || k <= j);   /* k in (i, j]: j stays */
        c->tab[i] = c->tab[j];
        i = j;
    }
}

/* Takes entry i's page out of the table, and out of the front. */
static void take_out(struct cache *c, unsigned i)
{
    struct entry *f = front(c, c->tab[i].key);
    if (f->page == c->tab[i].page)
        f->page = NULL;
    erase(c, i);
}

static struct page *page_new(struct cache *c)
{
    struct page *p = malloc(sizeof *p + c->size_extra + c->size_page);
    if (p) {
        p->pg.pExtra = p + 1;
        p->pg.pBuf = (char *)(p + 1) + c->size_extra;
    }
    return p;
}

/* Takes an unpinned page out of the table (CLOCK), or NULL if none is. */
static struct page *evict(struct cache *c)
{
    if (c->pinned >= c->used)
        return NULL;
    for (;;) {
        struct page *p = c->tab[c->hand].page, *ahead = c->tab[(c->hand + PREFETCH_AHEAD) & c->mask].page;
        unsigned at = c->hand;
        c->hand = (c->hand + 1) & c->mask;
        if (ahead)
            __builtin_prefetch(&ahead->flags, 1);   /* the flags of the pages the hand reaches next */
        if (!p || p->flags & PINNED)
            continue;
        if (p->flags & REFERENCED) {
            p->flags &= ~REFERENCED;
            continue;
        }
        take_out(c, at);
        return p;
    }
}

static void drop(struct cache *c, unsigned i)
{
    struct page *p = c->tab[i].page;
    if (p->flags & PINNED)
        c->pinned--;
    take_out(c, i);
    free(p);
}

/* Evicts unpinned pages until at most limit are left, or none is unpinned. */
static void enforce(struct cache *c, unsigned limit)
{
    struct page *p;
    while (c->used > limit && (p = evict(c)))
        free(p);
}

static sqlite3_pcache *create(int page_size, int extra, int purgeable)
{
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->size_page = (size_t)page_size;
    c->size_extra = ((size_t)extra + 7) & ~(size_t)7;
    c->purgeable = purgeable;
    c->spare = LOCK_BYTE_OFFSET / (unsigned)page_size + 1;
    if (room_for_one(c)) {
        free(c);
        return NULL;
    }
    return (sqlite3_pcache *)c;
}

static void cachesize(sqlite3_pcache *pc, int n)
{
    struct cache *c = (struct cache *)pc;
    c->max = n > 0 ? (unsigned)n : 0;
    if (c->purgeable)
        enforce(c, c->max);
}

static int pagecount(sqlite3_pcache *pc) { return (int)((struct cache *)pc)->used; }

static sqlite3_pcache_page *fetch(sqlite3_pcache *pc, unsigned key, int create_flag)
{
    struct cache *c = (struct cache *)pc;
    struct entry *f = front(c, key);
    struct page *p = f->page && f->key == key ? f->page : NULL;
    if (!p) {
        int i = find(c, key);
        if (i >= 0)
            p = c->tab[i].page, *f = c->tab[i];
    }
    if (p) {
        if (!(p->flags & PINNED))
            c->pinned++;
        p->flags |= PINNED | REFERENCED;
        return &p->pg;
    }
    if (!create_flag || (create_flag == 1 && c->purgeable && c->pinned >= c->max - c->max / 10))
        return NULL;
    if (room_for_one(c))
        return NULL;
    p = c->purgeable && c->used >= c->max ? evict(c) : NULL;
    if (!p && !(p = page_new(c)))
        return NULL;
    p->key = key;
    p->flags = PINNED;
    *(void **)p->pg.pExtra = NULL;   /* P1 */
    place(c, key, p);
    *f = (struct entry){key, p};
    c->pinned++;
    note_key(c, key);
    return &p->pg;
}

static void unpin(sqlite3_pcache *pc, sqlite3_pcache_page *pg, int discard)
{
    struct cache *c = (struct cache *)pc;
    struct page *p = (struct page *)pg;
    if (discard || (c->purgeable && c->used > c->max)) {
        int i = find(c, p->key);
        if (i >= 0)
            drop(c, (unsigned)i);
        return;
    }
    if (p->flags & PINNED)
        c->pinned--;
    p->flags &= ~PINNED;
}

static void rekey(sqlite3_pcache *pc, sqlite3_pcache_page *pg, unsigned old_key, unsigned new_key)
{
    struct cache *c = (struct cache *)pc;
    struct page *p = (struct page *)pg;
    int i = find(c, old_key);
    if (i < 0 || c->tab[i].page != p)
        return;
    take_out(c, (unsigned)i);
    int other = find(c, new_key);
    if (other >= 0)
        drop(c, (unsigned)other);   /* P5: never pinned, SQLite says */
    p->key = new_key;
    place(c, new_key, p);
    note_key(c, new_key);
}

static void truncate_from(sqlite3_pcache *pc, unsigned limit)
{
    struct cache *c = (struct cache *)pc;
    if (limit > c->max_key && (c->spare < limit || find(c, c->spare) < 0))
        return;   /* nothing that high is cached */
    for (unsigned i = 0; i <= c->mask;) {
        if (c->tab[i].page && c->tab[i].key >= limit)
            drop(c, i);   /* an entry from further on may have moved into i; any other it moved was seen */
        else
            i++;
    }
    if (limit <= c->max_key)
        c->max_key = limit ? limit - 1 : 0;
}

static void shrink(sqlite3_pcache *pc)
{
    struct cache *c = (struct cache *)pc;
    if (c->purgeable)
        enforce(c, 0);
}

static void destroy(sqlite3_pcache *pc)
{
    struct cache *c = (struct cache *)pc;
    for (unsigned i = 0; i <= c->mask; i++)
        free(c->tab[i].page);
    free(c->tab);
    free(c);
}

static int init(void *arg) { return SQLITE_OK; }

int store_pcache_install(void)
{
    static const sqlite3_pcache_methods2 methods = {
        .iVersion = 1,
        .xInit = init,
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
    return sqlite3_config(SQLITE_CONFIG_PCACHE2, &methods) == SQLITE_OK ? 0 : -1;
}
