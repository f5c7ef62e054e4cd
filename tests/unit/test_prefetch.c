/* store_prefetch (store.h S10): the whole database file comes into the page
 * cache, and in single pages, not large folios. A file the kernel cannot drop
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
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define PAGE 4096
#define SIZE ((off_t)24 << 20 | 1234)   /* not a whole number of chunks or pages */
#define PAGES ((SIZE + PAGE - 1) / PAGE)

static char path[64];

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

static void finish(int fd)
{
    close(fd);
    unlink(path);
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
        finish(fd);
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

static void test_reads_the_whole_file(void **state)
{
    (void)state;
    int fd = cold_file();
    assert_int_equal(store_prefetch_fd(fd), 0);
    assert_int_equal(wait_resident(fd), PAGES);
    finish(fd);
}

static void test_prefetch_by_path(void **state)
{
    (void)state;
    int fd = cold_file();
    store_prefetch(path);   /* a process of its own; returns at once */
    assert_int_equal(wait_resident(fd), PAGES);
    store_prefetch("/nonexistent/topup.db");   /* best effort: nothing to read, nothing fails */
    finish(fd);
}

/* How many of the file's pages sit in large folios, by the page flags of
 * the frames behind a read-only mapping of it; -1 if they cannot be read. */
static long in_large_folios(int fd)
{
    int pm = open("/proc/self/pagemap", O_RDONLY), kf = open("/proc/kpageflags", O_RDONLY);
    char *p = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    long large = 0;
    volatile char sink = 0;
    for (long i = 0; i < PAGES && large >= 0; i++) {
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
    munmap(p, SIZE);
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
    long by_read = in_large_folios(fd);
    if (by_read < 0) {
        finish(fd);
        skip();   /* not root */
    }
    print_message("read(2): %ld of %ld pages in large folios\n", by_read, (long)PAGES);

    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    assert_int_equal(store_prefetch_fd(fd), 0);
    assert_int_equal(wait_resident(fd), PAGES);
    assert_int_equal(in_large_folios(fd), 0);
    finish(fd);
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
        cmocka_unit_test(test_reads_the_whole_file),
        cmocka_unit_test(test_prefetch_by_path),
        cmocka_unit_test(test_single_pages),
        cmocka_unit_test(test_bad_descriptor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
