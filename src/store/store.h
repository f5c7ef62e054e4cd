/* store — the database under topup: connections, migrations, transactions and
 * prepared statements. SQLite (WAL, synchronous=FULL, foreign keys on) is the
 * embedded default.
 *
 * Invariants
 *  S1. All SQL runs as prepared statements with bound parameters; each statement
 *      is prepared once per connection and reused (struct store_sql caches the
 *      slot; the connection caches the handle).
 *  S2. Exactly one writer connection mutates the database (the engine's); every
 *      other connection is read-only and reads a snapshot inside store_begin().
 *  S3. On a STORE_WRITER connection store_commit() returns 0 only when the
 *      transaction is durable (synchronous=FULL in WAL mode fsyncs the log on
 *      every commit). On the engine's STORE_LOGGED connection a commit is
 *      written to the log (and visible to readers) but durable only once a
 *      later store_log_sync() has returned 0; the engine acknowledges nothing
 *      before that (engine.h E3), and checkpoints still sync the log before
 *      they copy it into the database (synchronous=NORMAL).
 *  S4. The schema is versioned: store_migrate() applies the embedded migrations
 *      (src/store/migrations/NNN_name.sql) in order, each in its own transaction,
 *      and records them in schema_migrations, which the first one creates: a
 *      crash leaves a database at a version, or one with no table. Migrations
 *      run with foreign keys off (a table can be rebuilt); each commits only if
 *      every table it rebuilt or created, and every table referring to one,
 *      passes PRAGMA foreign_key_check.
 *  S5. Errors are enum err values: a violated constraint is ERR_CONSTRAINT (the
 *      caller maps it to a domain error); anything else the database reports is
 *      ERR_STORAGE, which the engine treats as fatal to the batch.
 *  S6. Faults can be injected beneath the database (fault.c): failed writes,
 *      a full disk, failed fsyncs at the Nth call. Test-only; off by default.
 *  S7. SQLite keeps its pages in the project's own cache (pcache.c): an
 *      open-addressed table evicted by CLOCK, which reads fewer cache lines
 *      per lookup than SQLite's chained table and LRU list, and which keeps
 *      every rule SQLite sets for a page cache (pcache.c, P1-P5).
 *  S8. A STORE_LOGGED connection writes its log through a shim (walbuf.c)
 *      that gathers SQLite's many small appends into large writes; a commit
 *      is in the file before COMMIT returns, and whatever reads, sizes or
 *      syncs the log through that connection sees every byte written.
 *      The same shim has the kernel start writing out the database file's
 *      pages as a checkpoint copies them, so that the checkpoint's sync is
 *      not one burst in front of the log's (W6), and spreads a thread's
 *      writes of the database file over time when it sets a pace (W7).
 *  S9. SQLite's small allocations (cursors, records, column values) come
 *      from per-thread free lists of a few size classes (smalloc.c), bounded
 *      per thread and given back when the thread exits; larger ones, and
 *      every one under AddressSanitizer, from malloc.
 *  S10. What topupd reads into the kernel's page cache itself (store_prefetch)
 *      goes in single pages, not large folios: SQLite writes the file a
 *      page at a time at random, and a 2 KiB write into a large folio costs
 *      the kernel work in proportion to the folio (sqlite.c: the figures).
 *      So does what SQLite reads, even a scan: the database file is opened
 *      with readahead off. A migration reads the file in bulk first.
 *
 * A connection is not thread-safe: one thread uses it at a time.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_q;

/* A statement known by its text; declare with STORE_SQL at file scope. */
struct store_sql {
    const char *text;
    int slot;            /* assigned on first use, -1 before */
};
#define STORE_SQL(name, sqltext) static struct store_sql name = {sqltext, -1}

/* WRITER: commits are durable when they return (CLI, migrations). LOGGED:
 * the engine's writer, synced by store_log_sync (S3). READER: read-only. */
enum store_mode { STORE_WRITER, STORE_LOGGED, STORE_READER };

/* Configures SQLite for topupd (S7, S9; its threading), once, before
 * anything starts it: SQLite takes no configuration once it has started,
 * and any call into it starts it (a VFS lookup too). store_open and
 * store_fault_configure call it first. */
void store_configure(void);
int store_open(struct store **out, const char *path, enum store_mode mode);
/* A database that store_open creates has pages of STORE_PAGE_SIZE bytes; an
 * existing one keeps the size it was made with (sqlite.c: why 2 KiB). */
#define STORE_PAGE_SIZE 2048
/* The database's page size in bytes, 0 if it cannot be read. */
int store_page_size(struct store *st);
void store_close(struct store *st);
/* 0 when the database is topup's at a version this binary knows, or empty;
 * else ERR_INVALID_STATE, with why in the log: another program's database
 * (tables, no schema version of ours), or a newer topupd's. Reads only. */
int store_ours(struct store *st);
/* Applies pending migrations (writer only), once store_ours agrees. *applied counts them. */
int store_migrate(struct store *st, int *applied);
/* The schema version the database is at; 0 for one that has none (an empty
 * file, or another program's database). Reads only, so any mode may ask. A
 * file that is not an SQLite database fails (ERR_STORAGE). */
int store_version(struct store *st, int *version);
/* The version this binary's migrations bring a database to. */
int store_version_latest(void);

/* Transactions. A writer's begin is BEGIN IMMEDIATE; a reader's takes a snapshot. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);
/* One level of savepoint, for one command inside a group commit. */
int store_savepoint(struct store *st);
int store_release(struct store *st);
int store_rollback_to(struct store *st);

/* Binding formats, one character per parameter:
 *   i int64_t   z int64_t, 0 binds NULL   d int   s const char * (NULL binds NULL)
 *   b const void *, size_t   n NULL */
int store_exec(struct store *st, struct store_sql *sql, const char *fmt, ...);
int64_t store_changes(struct store *st);
int64_t store_total_changes(struct store *st);   /* rows written on this connection, ever */
int64_t store_last_id(struct store *st);

/* Queries: q = store_query(...); while (store_next(q)) { ...columns... } rc = store_end(q);
 * store_query never returns NULL; a bind or step failure makes store_next return 0
 * and store_end return the error. Only one query per statement may be open;
 * queries of other statements may be open beside it (ledger_check holds three). */
struct store_q *store_query(struct store *st, struct store_sql *sql, const char *fmt, ...);
int store_next(struct store_q *q);
int store_end(struct store_q *q);
/* Single row: returns 0 with the row ready (finish with store_end), ERR_NOT_FOUND
 * (already ended) or an error (already ended). */
int store_one(struct store *st, struct store_q **out, struct store_sql *sql, const char *fmt, ...);

int64_t store_i64(struct store_q *q, int col);
int store_is_null(struct store_q *q, int col);
const char *store_text(struct store_q *q, int col);   /* valid until the next step; "" for NULL */
const void *store_blob(struct store_q *q, int col, size_t *len);

/* The log (the WAL) of a STORE_LOGGED connection. store_log_attach() runs
 * once, on the connection's thread, before any store_log_sync(); it syncs the
 * log once (which also syncs a new log's directory entry). store_log_sync()
 * makes every commit that returned before it was called durable. It is the
 * one function that may run on another thread while the connection is in use:
 * the engine's syncer calls it while the writer goes on with the next batch. */
int store_log_attach(struct store *st);
int store_log_sync(struct store *st);
/* A STORE_LOGGED connection never checkpoints by itself: store_log_pages()
 * tells how many pages its log held after its last commit, and
 * store_checkpoint() copies into the database what of the log no reader
 * still needs, from any connection of the database, without waiting for
 * anyone (the engine runs it beside the writer), and syncs the database
 * after it. When all of the log has been copied, the next commit starts it
 * over. */
int64_t store_log_pages(struct store *st);
/* sync_partial: also sync the database after a checkpoint that stops short
 * of the end of the log (SQLite syncs only at the end, before the log may
 * start over, so that sync then has everything copied since to write). It
 * costs the caller a sync and buys nothing for durability: the frames stay
 * in the log until a checkpoint that reaches its end has synced them. So the
 * engine's checkpointer asks for it and the writer, whose syncs every
 * command waits on, does not. */
enum { STORE_CKPT_COPY = 0, STORE_CKPT_SYNC_PARTIAL = 1 };
int store_checkpoint(struct store *st, int sync_partial);
/* The log pages in the database after this connection's last checkpoint. */
int64_t store_checkpointed(struct store *st);

/* Has the database file read into the kernel's page cache, by a process of
 * its own: a restarted server on a large database then serves from memory
 * within seconds instead of paging it in one random read at a time. Returns
 * at once; best effort (S10). */
void store_prefetch(const char *path);
/* What that process does: asks the kernel to read all of fd's file, in
 * single pages (S10), without waiting for the reads. 0, or -1 with errno. */
int store_prefetch_fd(int fd);

/* Sets the connection's page cache to mib MiB (a connection opens with 64 MiB
 * on writers, 16 on readers; the engine's writer then takes cache_mb). */
int store_cache_size(struct store *st, int64_t mib);

/* Writes the database as this connection's snapshot shows it into a new
 * file at path (VACUUM INTO: one read transaction, so the copy is consistent
 * while a server writes beside it, and compact). Outside any transaction;
 * a reader may do it. The copy is not synced: that is the caller's. */
int store_copy(struct store *st, const char *path);
/* SQLite's quick_check of every page: 0 when it finds nothing wrong, else
 * ERR_STORAGE with its first finding in why. */
int store_quick_check(struct store *st, char *why, size_t n);

/* Run a whole script (migrations, tests). Not for statements with parameters. */
int store_script(struct store *st, const char *sql);

/* S7: installs the page cache (pcache.c) before SQLite starts; 0 or -1. */
int store_pcache_install(void);
/* S9: installs the small-block allocator (smalloc.c) before SQLite starts:
 * 0; 1 when it stays out on purpose (under AddressSanitizer); -1 on failure.
 * store_malloc_cached: bytes of free blocks the calling thread keeps. */
int store_malloc_install(void);
size_t store_malloc_cached(void);

/* Fault injection (S6). spec: "write@N", "full@N" or "fsync@N", optionally
 * followed by ",once"; or "syncwait@MS", every sync MS ms slower. Writer connections opened afterwards go through it.
 * Returns -1 for a malformed spec. store_fault_counts: calls seen beneath
 * SQLite since it was first configured. */
#define STORE_FAULT_VFS "topup-fault"
/* S8: the name of the log-gathering shim over the VFS in use (the fault
 * shim's when faults are on), registered on first use; NULL if it cannot be. */
#define STORE_WALBUF_VFS "topup-walbuf"
/* A sync flag of the shim's own (SQLite's VFS ignores it): sync what is
 * written, leaving what is buffered alone (walbuf.c W5). */
#define STORE_SYNC_WRITTEN 0x100
const char *store_walbuf_vfs(void);
/* How many times the shim had the kernel start writing out the database
 * file's pages (walbuf.c W6), in this process. */
long store_walbuf_hints(void);
/* walbuf.c W7: from now on the calling thread writes the database file
 * through the shim at most *bytes_per_s bytes a second, read as it goes
 * (0 or less: as fast as it can); NULL: no pace. */
void store_pace_writes(const _Atomic int64_t *bytes_per_s);
int store_fault_configure(const char *spec);
int store_fault_active(void);
void store_fault_counts(long *writes, long *syncs, long *injected);
