/* bench/folios — what a random page write costs the kernel, by how the file
 * came into the page cache (store.h S10).
 *
 *   cc -O2 -o build/bench/folios bench/folios.c
 *   build/bench/folios [--mib 2048] [--writes 200000] [--page 2048] [--dir /var/tmp]
 *
 * Makes a file of MIB MiB, drops it from the page cache, and twice over:
 * reads it back in, either with read(2) in 1 MiB pieces (the kernel's
 * readahead then builds large folios) or with readahead(2) in 128 KiB pieces
 * (what store_prefetch does: single pages); then times, in CPU per call, PAGE-
 * byte preads and pwrites at random offsets and one fdatasync, as SQLite's
 * reads and a checkpoint's copies do. Prints one line per way and one JSON
 * line. The file is deleted at the end.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static double cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_stime.tv_sec +
           ((double)r.ru_utime.tv_usec + (double)r.ru_stime.tv_usec) / 1e6;
}

static uint64_t rng = 88172645463325252u;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

struct result {
    double fill_s, read_us, write_us, sync_us;
};

/* Drops the file from the page cache, fills it in again the given way, then
 * times random reads, random writes and the sync. */
static struct result run(int fd, off_t size, int by_readahead, long writes, int page)
{
    static char big[1 << 20];
    char *buf = malloc((size_t)page);
    if (!buf)
        die("malloc");
    memset(buf, 0x5a, (size_t)page);
    if (fdatasync(fd) || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
        die("dropping the file from the page cache");
    struct result r;
    double t0 = cpu_s();
    if (by_readahead)
        for (off_t off = 0; off < size; off += 128 << 10)
            if (readahead(fd, off, 128 << 10))
                die("readahead");
    for (off_t off = 0; off < size; off += sizeof big)   /* by_readahead: waits for it, all hits */
        if (pread(fd, big, sizeof big, off) < 0)
            die("pread");
    r.fill_s = cpu_s() - t0;
    long pages = (long)(size / page);
    t0 = cpu_s();
    for (long i = 0; i < writes; i++)
        if (pread(fd, buf, (size_t)page, (off_t)(next() % (uint64_t)pages) * page) != page)
            die("pread");
    r.read_us = (cpu_s() - t0) / (double)writes * 1e6;
    t0 = cpu_s();
    for (long i = 0; i < writes; i++)
        if (pwrite(fd, buf, (size_t)page, (off_t)(next() % (uint64_t)pages) * page) != page)
            die("pwrite");
    r.write_us = (cpu_s() - t0) / (double)writes * 1e6;
    t0 = cpu_s();
    if (fdatasync(fd))
        die("fdatasync");
    r.sync_us = (cpu_s() - t0) / (double)writes * 1e6;
    free(buf);
    return r;
}

int main(int argc, char **argv)
{
    long mib = 2048, writes = 200000;
    int page = 2048;
    const char *dir = "/var/tmp";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mib"))
            mib = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--writes"))
            writes = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--page"))
            page = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else {
            fprintf(stderr, "folios: unknown option %s (see the head of bench/folios.c)\n", argv[i]);
            return 2;
        }
    }
    if (mib < 1 || writes < 1 || page < 512 || page > (1 << 16)) {
        fprintf(stderr, "folios: --mib, --writes and --page (512..65536) must be positive\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/topup-folios.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        die(path);
    unlink(path);
    static char fill[1 << 20];
    memset(fill, 1, sizeof fill);
    for (long i = 0; i < mib; i++)
        if (write(fd, fill, sizeof fill) != (ssize_t)sizeof fill)
            die("writing the file");
    off_t size = (off_t)mib << 20;
    struct result by_read = run(fd, size, 0, writes, page);
    struct result by_ra = run(fd, size, 1, writes, page);
    close(fd);
    printf("%ld MiB file, %ld random %d-byte calls each, CPU per call:\n", mib, writes, page);
    printf("  filled by read(2):      pread %6.2f us  pwrite %6.2f us  fdatasync %5.2f us/page\n", by_read.read_us,
           by_read.write_us, by_read.sync_us);
    printf("  filled by readahead(2): pread %6.2f us  pwrite %6.2f us  fdatasync %5.2f us/page\n", by_ra.read_us,
           by_ra.write_us, by_ra.sync_us);
    printf("{\"bench\":\"folios\",\"mib\":%ld,\"writes\":%ld,\"page\":%d,"
           "\"read\":{\"pread_us\":%.3f,\"pwrite_us\":%.3f,\"sync_us\":%.3f},"
           "\"readahead\":{\"pread_us\":%.3f,\"pwrite_us\":%.3f,\"sync_us\":%.3f}}\n",
           mib, writes, page, by_read.read_us, by_read.write_us, by_read.sync_us, by_ra.read_us, by_ra.write_us,
           by_ra.sync_us);
    return 0;
}
