/* store_prefetch (store.h S10): the whole database file comes into the page
 * cache, and in single pages, not large folios; and so does what SQLite
 * itself reads, even in order. A file the kernel cannot drop
 * from its cache (tmpfs) cannot show either; those tests then skip. The folio
 * sizes are read from /proc/kpageflags, which needs root; without it, skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define PAGE 4096
#define SIZE ((off_t)24 << 20 | 1234)   /* not a whole number of chunks or pages */
#define PAGES ((SIZE + PAGE - 1) / PAGE)

static char path[64];   /* the test's file; removed after it, passed or failed */

static int remove_files(void **state)
{
    (void)state;
    static const char *const tails[] = {"", "-wal", "-shm"};
    char name[sizeof path + 8];
    for (size_t i = 0; path[0] && i < sizeof tails / sizeof tails[0]; i++) {
        snprintf(name, sizeof name, "%s%s", path, tails[i]);
        unlink(name);
    }
    path[0] = 0;
    return 0;
}

static long resident(int fd)
{
    void *p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    static unsigned char vec[PAGES];
    assert_int_equal(mincore(p, SIZE, vec), 0);
    munmap(p, SIZE);
    long n = 0;
    for (long i = 0; i < PAGES; i++)
        n += vec[i] & 1;
    return n;
}

/* A file of SIZE bytes on a disk, out of the page cache; the test skips if
 * the kernel keeps it in memory whatever we ask (tmpfs). */
static int cold_file(void)
{
    snprintf(path, sizeof path, "/var/tmp/topup-prefetch-XXXXXX");   /* a disk, more often than /tmp */
    int fd = mkstemp(path);
    if (fd < 0) {
        snprintf(path, sizeof path, "/tmp/topup-prefetch-XXXXXX");
        fd = mkstemp(path);
    }
    assert_true(fd >= 0);
    static char chunk[1 << 20];
    memset(chunk, 7, sizeof chunk);
    for (off_t off = 0; off < SIZE; off += sizeof chunk) {
        size_t n = SIZE - off < (off_t)sizeof chunk ? (size_t)(SIZE - off) : sizeof chunk;
        assert_int_equal(pwrite(fd, chunk, n, off), (ssize_t)n);
    }
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    if (resident(fd) > PAGES / 2) {
        close(fd);
        skip();
    }
    return fd;
}

/* Waits up to 10 s for every page of the file to be in the page cache. */
static long wait_resident(int fd)
{
    long n = 0;
    for (int i = 0; i < 1000 && (n = resident(fd)) < PAGES; i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    return n;
}

/* The file came into the page cache. readahead(2) is advice, and the kernel
 * may drop a piece of it: once, in a fresh clone's run under the
 * sanitizers, 16 pages of 6,145 never came. So nearly all of it is asked
 * for, which a prefetch that reads next to nothing (one WILLNEED of the
 * whole file) or stops part of the way still fails. */
static void assert_read_in(int fd)
{
    long n = wait_resident(fd);
    if (n < PAGES)
        print_message("%ld of %ld pages in the page cache\n", n, (long)PAGES);
    assert_true(n >= PAGES - PAGES / 100);
}

static void test_reads_the_whole_file(void **state)
{
    (void)state;
    int fd = cold_file();
    assert_int_equal(store_prefetch_fd(fd), 0);
    assert_read_in(fd);
    close(fd);
}

static void test_prefetch_by_path(void **state)
{
    (void)state;
    int fd = cold_file();
    store_prefetch(path);   /* a process of its own; returns at once */
    assert_read_in(fd);
    store_prefetch("/nonexistent/topup.db");   /* best effort: nothing to read, nothing fails */
    close(fd);
}

/* How many pages of the file's first `size` bytes sit in large folios, by
 * the page flags of the frames behind a read-only mapping of them; -1 if
 * they cannot be read. */
static long in_large_folios(int fd, off_t size)
{
    int pm = open("/proc/self/pagemap", O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY);
    char *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    long large = 0;
    volatile char sink = 0;
    for (long i = 0; i < (size + PAGE - 1) / PAGE && large >= 0; i++) {
        sink += p[i * PAGE];   /* map it: the frame is then in pagemap */
        uint64_t entry = 0, flags = 0;
        if (pm < 0 || kf < 0 || pread(pm, &entry, 8, (off_t)((uintptr_t)p / PAGE + (uintptr_t)i) * 8) != 8) {
            large = -1;
            break;
        }
        uint64_t pfn = entry & ((UINT64_C(1) << 55) - 1);
        if (!(entry >> 63) || !pfn || pread(kf, &flags, 8, (off_t)pfn * 8) != 8) {
            large = -1;   /* no frame numbers without CAP_SYS_ADMIN */
            break;
        }
        large += (flags >> 15 & 1) || (flags >> 16 & 1);   /* KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL */
    }
    (void)sink;
    munmap(p, size);
    if (pm >= 0)
        close(pm);
    if (kf >= 0)
        close(kf);
    return large;
}

/* The control: read(2) in big pieces, which on kernels with large folios
 * for this file system puts most of the file in them; then the prefetch,
 * which must put none there. */
static void test_single_pages(void **state)
{
    (void)state;
    int fd = cold_file();
    static char big[1 << 20];
    for (off_t off = 0; off < SIZE; off += sizeof big)
        assert_true(pread(fd, big, sizeof big, off) >= 0);
    long by_read = in_large_folios(fd, SIZE);
    if (by_read < 0) {
        close(fd);
        skip();   /* not root */
    }
    print_message("read(2): %ld of %ld pages in large folios\n", by_read, (long)PAGES);

    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    assert_int_equal(store_prefetch_fd(fd), 0);
    assert_read_in(fd);
    assert_int_equal(in_large_folios(fd, SIZE), 0);
    close(fd);
}

STORE_SQL(SQL_SCAN, "SELECT sum(length(b)) FROM t");

/* A scan through SQLite (a migration building an index, the ledger check)
 * reads the file in order, a page at a time; without readahead turned off
 * on SQLite's descriptors it leaves the file in large folios, as read(2)
 * does above (sqlite.c: open_at_random). */
static void test_sqlite_scan_single_pages(void **state)
{
    (void)state;
    char *db = path;   /* the teardown removes it, with its -wal and -shm */
    snprintf(db, sizeof path, "/var/tmp/topup-scan-XXXXXX");
    int fd = mkstemp(db);
    assert_true(fd >= 0);
    close(fd);
    struct store *st;
    assert_int_equal(store_open(&st, db, STORE_WRITER), 0);
    assert_int_equal(store_script(st, "CREATE TABLE t(b BLOB);"
                                      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)"
                                      " INSERT INTO t SELECT randomblob(600) FROM n;"
                                      "PRAGMA wal_checkpoint(TRUNCATE);"),
                     0);
    store_close(st);
    fd = open(db, O_RDONLY);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(fdatasync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);

    struct store_q *q;
    assert_int_equal(store_open(&st, db, STORE_READER), 0);
    assert_int_equal(store_one(st, &q, &SQL_SCAN, ""), 0);
    assert_int_equal(store_i64(q, 0), 40000 * 600);
    assert_int_equal(store_end(q), 0);
    store_close(st);

    long large = in_large_folios(fd, sb.st_size);
    close(fd);
    if (large < 0)
        skip();   /* not root */
    assert_int_equal(large, 0);
}

static void test_bad_descriptor(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(store_prefetch_fd(-1), -1);
    assert_int_equal(errno, EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_reads_the_whole_file, remove_files),
        cmocka_unit_test_teardown(test_prefetch_by_path, remove_files),
        cmocka_unit_test_teardown(test_single_pages, remove_files),
        cmocka_unit_test_teardown(test_sqlite_scan_single_pages, remove_files),
        cmocka_unit_test(test_bad_descriptor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
