/* powercut — an LD_PRELOAD library that keeps, for the files a process writes
 * in one directory, the image a power cut would leave of them: only what an
 * fsync or fdatasync made durable (tests/e2e/test_powercut.py cuts the power
 * by SIGKILL and starts topupd on that image). A kill -9 keeps the kernel's
 * page cache, so it cannot show a sync that is missing or comes too late;
 * this can.
 *
 * POWERCUT_DIR names the directory watched (its files, not subdirectories),
 * POWERCUT_IMAGE an existing directory for the image:
 *   IMAGE/NAME          what a cut leaves at NAME: a hard link to the durable
 *                       content of the file the entry named when its
 *                       directory was last synced; absent if it never was
 *   IMAGE/.pc/NAME.data the durable content of the file NAME names now
 *   IMAGE/.pc/NAME.log  its writes and size changes since, in issue order:
 *                       a header (magic, offset of the first record not yet
 *                       synced), then records {op 'W' or 'T', offset, length,
 *                       data}; 'T' truncates to the offset
 *
 * The model
 *  M1. Writes go to the real file as usual (topupd runs normally) and are
 *      recorded in NAME.log under the file's mutex, in the order they reach
 *      the file.
 *  M2. fsync or fdatasync of a file applies to NAME.data the records logged
 *      before the call began, and only once the real call returned 0: what
 *      completed before a sync is durable after it, nothing else. (Both
 *      calls are data syncs here: the size is data.)
 *  M3. A file created, unlinked or renamed changes the image only at the
 *      next sync of its directory: a file created and never followed by a
 *      directory sync is absent after the cut, whatever was synced into it;
 *      an unlinked one keeps its last durable content.
 *  M4. Left out: the log's index (NAME-shm, which SQLite's first opener
 *      after a crash rebuilds from the log, and which is memory-mapped, so
 *      its writes are never seen here) and every write through mmap (the
 *      token epoch, a hint whose revocations are in the database).
 *      sync_file_range and syncfs make nothing durable (the first never
 *      does; the second is not used). A link names the same durable
 *      content, and stops the test if the file has unsynced writes; rename
 *      is not modelled (neither SQLite nor topupd renames): it is reported
 *      on stderr. One process writes a file at a time, as SQLite's locks
 *      ensure.
 *  M5. A cut while a sync is being applied leaves some of that sync's
 *      records applied, in order: a state a disk may leave too, since the
 *      sync had not returned.
 * The test's second mode lets a random prefix of each file's records since
 * its last sync survive the cut as well, the last one torn at a 512-byte
 * boundary (test_powercut.py reads NAME.log for that).
 *
 * POWERCUT_CUT=CALL:NAME[:N] kills the process (SIGKILL) right after the
 * Nth (default first) open, write, sync or link that succeeded on the file
 * NAME (NAME* : any name that begins so): a cut at a chosen point, not a
 * random one.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS (1 << 16)
#define MAX_FILES 64
#define LOG_MAGIC "PCLOG1\0\0"
#define LOG_HEADER 16

struct record {
    char op;                     /* 'W' or 'T' */
    char pad[7];
    int64_t off, len;            /* 'W': len bytes follow */
};

struct pfile {
    char name[NAME_MAX + 1];
    pthread_mutex_t mu;
    int log_fd;
    int64_t applied;             /* NAME.log: where the records not yet synced begin */
    int64_t end;                 /* NAME.log's size */
    unsigned gen;                /* bumped by unlink: older descriptors are no longer this file */
};

/* What a descriptor is: a watched file (its pfile and generation) or the directory. */
struct fdinfo {
    struct pfile *f;
    unsigned gen;
    int dir;
};

static struct {
    int (*open)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*close)(int);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
    int (*ftruncate)(int, off_t);
    int (*fsync)(int);
    int (*fdatasync)(int);
    int (*unlink)(const char *);
    int (*unlinkat)(int, const char *, int);
    int (*rename)(const char *, const char *);
    int (*linkat)(int, const char *, int, const char *, int);
    int (*renameat)(int, const char *, int, const char *);
} real;

static char watched[PATH_MAX], image[PATH_MAX];
static int active;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;   /* files, fds' entries, directory syncs */
static struct pfile files[MAX_FILES];
static int nfiles;
static struct fdinfo fds[MAX_FDS];
static char cut_call[16], cut_prefix[NAME_MAX + 2];   /* POWERCUT_CUT */
static long cut_after;
static _Atomic long cut_seen;
static _Atomic unsigned char seen[MAX_FDS];   /* fds[fd] is set: the others skip the lock */

static void die(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "powercut: %s (%s)\n", msg, strerror(errno));
    abort();   /* the image no longer follows the files: no result is worth having */
}

/* dir/name, or the test stops: a path cut short would point elsewhere. */
static void join(char *out, const char *dir, const char *name)
{
    size_t d = strlen(dir), n = strlen(name);
    if (d + 1 + n >= PATH_MAX)
        die("path too long: %s/%s", dir, name);
    memcpy(out, dir, d);
    out[d] = '/';
    memcpy(out + d + 1, name, n + 1);
}

static void *next(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p)
        die("no %s below", name);
    return p;
}

/* A fork (topupd's prefetch) must not find the table locked by another thread. */
static void fork_lock(void) { pthread_mutex_lock(&mu); }
static void fork_unlock(void) { pthread_mutex_unlock(&mu); }

__attribute__((constructor)) static void init(void)
{
    real.open = next("open64");
    real.openat = next("openat64");
    real.close = next("close");
    real.write = next("write");
    real.pwrite = next("pwrite64");
    real.writev = next("writev");
    real.pwritev = next("pwritev64");
    real.ftruncate = next("ftruncate64");
    real.fsync = next("fsync");
    real.fdatasync = next("fdatasync");
    real.unlink = next("unlink");
    real.unlinkat = next("unlinkat");
    real.rename = next("rename");
    real.renameat = next("renameat");
    real.linkat = next("linkat");
    const char *d = getenv("POWERCUT_DIR"), *i = getenv("POWERCUT_IMAGE"), *c = getenv("POWERCUT_CUT");
    if (c && sscanf(c, "%15[a-z]:%255[^:]:%ld", cut_call, cut_prefix, &cut_after) < 2)
        die("POWERCUT_CUT=%s: want CALL:NAME[:N]", c);
    if (c && !cut_after)
        cut_after = 1;
    if (!d || !i)
        return;
    if (!realpath(d, watched) || !realpath(i, image))
        die("POWERCUT_DIR %s or POWERCUT_IMAGE %s", d, i);
    char pc[PATH_MAX];
    join(pc, image, ".pc");
    if (mkdir(pc, 0700) && errno != EEXIST)
        die("mkdir %s", pc);
    pthread_atfork(fork_lock, fork_unlock, fork_unlock);
    active = 1;
}

static void pc_path(char *out, const char *name, const char *suffix)
{
    if (snprintf(out, PATH_MAX, "%s/.pc/%s%s", image, name, suffix) >= PATH_MAX)
        die("path too long");
}

static void maybe_cut(const char *call, const char *name)
{
    size_t n = strlen(cut_prefix);
    int any = n && cut_prefix[n - 1] == '*';
    if (cut_after && !strcmp(call, cut_call) &&
        (any ? !strncmp(name, cut_prefix, n - 1) : !strcmp(name, cut_prefix)) && ++cut_seen == cut_after)
        raise(SIGKILL);
}

/* The name of path if it is a file in the watched directory; "" for the
 * directory itself; NULL otherwise. dirfd as openat's. */
static const char *watched_name(int dirfd, const char *path, char *buf)
{
    char full[PATH_MAX * 2], dir[PATH_MAX];
    if (path[0] == '/') {
        snprintf(full, sizeof full, "%s", path);
    } else {
        char base[PATH_MAX];
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof base))
                return NULL;
        } else {
            char link[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof base - 1);
            if (n < 0)
                return NULL;
            base[n] = 0;
        }
        snprintf(full, sizeof full, "%s/%s", base, path);
    }
    char resolved[PATH_MAX];
    if (realpath(full, resolved) && !strcmp(resolved, watched))
        return "";
    char *slash = strrchr(full, '/');
    const char *name = slash + 1;
    *slash = 0;
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || !realpath(full[0] ? full : "/", dir) ||
        strcmp(dir, watched))
        return NULL;
    size_t n = strlen(name);
    if (n > NAME_MAX || (n >= 4 && !strcmp(name + n - 4, "-shm")))   /* M4 */
        return NULL;
    return strcpy(buf, name);
}

static int file_exists(const char *path)
{
    struct stat sb;
    return !stat(path, &sb);
}

static void copy_file(const char *from, const char *to)
{
    int in = real.open(from, O_RDONLY | O_CLOEXEC), out = real.open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0)
        die("copy %s to %s", from, to);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (real.write(out, buf, (size_t)n) != n)
            die("copy to %s", to);
    real.close(in);
    real.close(out);
}

static void log_header(struct pfile *f)
{
    char h[LOG_HEADER];
    memcpy(h, LOG_MAGIC, 8);
    memcpy(h + 8, &f->applied, 8);
    if (real.pwrite(f->log_fd, h, sizeof h, 0) != (ssize_t)sizeof h)
        die("log header of %s", f->name);
}

/* Drops what is pending for f (a new or unlinked file). Under f->mu or mu. */
static void log_reset(struct pfile *f)
{
    if (real.ftruncate(f->log_fd, 0))
        die("truncate the log of %s", f->name);
    f->applied = f->end = LOG_HEADER;
    log_header(f);
}

/* Under mu. */
static struct pfile *file_get(const char *name)
{
    for (int i = 0; i < nfiles; i++)
        if (!strcmp(files[i].name, name))
            return &files[i];
    if (nfiles == MAX_FILES)
        die("more than %d files", MAX_FILES);
    struct pfile *f = &files[nfiles++];
    strcpy(f->name, name);
    pthread_mutex_init(&f->mu, NULL);
    char path[PATH_MAX];
    pc_path(path, name, ".log");
    f->log_fd = real.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat sb;
    if (f->log_fd < 0 || fstat(f->log_fd, &sb))
        die("open %s", path);
    char h[LOG_HEADER];
    if (sb.st_size >= LOG_HEADER && pread(f->log_fd, h, sizeof h, 0) == (ssize_t)sizeof h &&
        !memcmp(h, LOG_MAGIC, 8)) {   /* another process's records, not yet synced, stay pending */
        memcpy(&f->applied, h + 8, 8);
        f->end = sb.st_size;
    } else {
        log_reset(f);
    }
    return f;
}

static void log_append(struct pfile *f, char op, int64_t off, const struct iovec *iov, int iovcnt, int64_t len)
{
    struct record r = {.op = op, .off = off, .len = op == 'W' ? len : 0};
    struct iovec v[1 + 64];
    if (iovcnt > 64)
        die("writev of %d pieces", iovcnt);
    v[0] = (struct iovec){&r, sizeof r};
    int64_t left = len, total = (int64_t)sizeof r;
    int n = 1;
    for (int i = 0; i < iovcnt && left > 0; i++) {   /* only what the write wrote */
        size_t take = iov[i].iov_len < (size_t)left ? iov[i].iov_len : (size_t)left;
        v[n++] = (struct iovec){iov[i].iov_base, take};
        left -= (int64_t)take;
        total += (int64_t)take;
    }
    if (real.pwritev(f->log_fd, v, n, f->end) != total)
        die("append to the log of %s", f->name);
    f->end += total;
}

/* The file behind fd, locked, or NULL: not watched, or no longer the file of that name. */
static struct pfile *lock_fd(int fd)
{
    if (!active || fd < 0 || fd >= MAX_FDS || !seen[fd])
        return NULL;
    pthread_mutex_lock(&mu);
    struct fdinfo i = fds[fd];
    pthread_mutex_unlock(&mu);
    if (!i.f)
        return NULL;
    pthread_mutex_lock(&i.f->mu);
    if (i.gen != i.f->gen) {
        pthread_mutex_unlock(&i.f->mu);
        return NULL;
    }
    return i.f;
}

/* M3: the image's entries become those of the directory now. Under mu. */
static void sync_entries(void)
{
    char path[PATH_MAX], data[PATH_MAX], tmp[PATH_MAX];
    DIR *d = opendir(watched);
    if (!d)
        die("opendir %s", watched);
    struct dirent *e;
    while ((e = readdir(d))) {
        pc_path(data, e->d_name, ".data");
        if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, "..")))
            continue;
        join(path, watched, e->d_name);
        if (!file_exists(data) || !file_exists(path))
            continue;   /* a file this library never saw opened: not in the image */
        join(path, image, e->d_name);
        pc_path(tmp, "", "entry.tmp");
        real.unlink(tmp);
        if (real.linkat(AT_FDCWD, data, AT_FDCWD, tmp, 0) || real.rename(tmp, path))
            die("link %s", path);
    }
    closedir(d);
    d = opendir(image);
    if (!d)
        die("opendir %s", image);
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        join(path, watched, e->d_name);
        if (file_exists(path))
            continue;
        join(path, image, e->d_name);
        if (real.unlink(path))
            die("unlink %s", path);
    }
    closedir(d);
}

static int after_open(int fd, const char *name, int flags, int created)
{
    if (fd < 0 || !name)
        return fd;
    int saved = errno;
    if (fd >= MAX_FDS)
        die("descriptor %d past the table", fd);
    pthread_mutex_lock(&mu);
    if (!*name) {
        fds[fd] = (struct fdinfo){.dir = 1};
        seen[fd] = 1;
        pthread_mutex_unlock(&mu);
        errno = saved;
        return fd;
    }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        pthread_mutex_unlock(&mu);
        errno = saved;
        return fd;
    }
    struct pfile *f = file_get(name);
    pthread_mutex_lock(&f->mu);
    char data[PATH_MAX], path[PATH_MAX];
    pc_path(data, name, ".data");
    if (created) {   /* a new file: nothing durable yet, and no entry until its directory syncs */
        f->gen++;
        log_reset(f);
        real.unlink(data);
        int d = real.open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (d < 0)
            die("create %s", data);
        real.close(d);
    } else if (!file_exists(data)) {   /* there before the model: taken as durable */
        join(path, watched, name);
        copy_file(path, data);
        join(path, image, name);
        real.unlink(path);
        if (real.linkat(AT_FDCWD, data, AT_FDCWD, path, 0))
            die("link %s", path);
    }
    if (flags & O_TRUNC)
        log_append(f, 'T', 0, NULL, 0, 0);
    fds[fd] = (struct fdinfo){.f = f, .gen = f->gen};
    seen[fd] = 1;
    pthread_mutex_unlock(&f->mu);
    pthread_mutex_unlock(&mu);
    maybe_cut("open", name);
    errno = saved;
    return fd;
}

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    char buf[NAME_MAX + 1];
    const char *name = active ? watched_name(dirfd, path, buf) : NULL;
    int created = 0;
    if (name && *name && (flags & O_CREAT)) {
        struct stat sb;
        created = (flags & O_EXCL) || fstatat(dirfd, path, &sb, 0);
    }
    int fd = real.openat(dirfd, path, flags, mode);
    return after_open(fd, name, flags, created);
}

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}

/* _FORTIFY_SOURCE's entry points. */
int __open_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }

int creat(const char *path, mode_t mode) { return do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode); }
int creat64(const char *path, mode_t mode) { return do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode); }

int close(int fd)
{
    if (active && fd >= 0 && fd < MAX_FDS && seen[fd]) {
        pthread_mutex_lock(&mu);
        fds[fd] = (struct fdinfo){0};
        seen[fd] = 0;
        pthread_mutex_unlock(&mu);
    }
    return real.close(fd);
}

/* M1. off < 0: the descriptor's own position (write, writev). */
static ssize_t written(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    struct pfile *f = lock_fd(fd);
    ssize_t n = off < 0 ? real.writev(fd, iov, iovcnt) : real.pwritev(fd, iov, iovcnt, off);
    if (!f)
        return n;
    int saved = errno;
    if (n > 0) {
        int64_t at = off >= 0 ? off : (int64_t)lseek(fd, 0, SEEK_CUR) - n;   /* O_APPEND included */
        if (at < 0)
            die("no position for a write to %s", f->name);
        log_append(f, 'W', at, iov, iovcnt, n);
    }
    pthread_mutex_unlock(&f->mu);
    if (n > 0)
        maybe_cut("write", f->name);
    errno = saved;
    return n;
}

ssize_t write(int fd, const void *p, size_t n)
{
    struct iovec v = {(void *)p, n};
    return active ? written(fd, &v, 1, -1) : real.write(fd, p, n);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    struct iovec v = {(void *)p, n};
    return active && off >= 0 ? written(fd, &v, 1, off) : real.pwrite(fd, p, n, off);
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off) { return pwrite(fd, p, n, off); }

ssize_t writev(int fd, const struct iovec *iov, int iovcnt)
{
    return active ? written(fd, iov, iovcnt, -1) : real.writev(fd, iov, iovcnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    return active && off >= 0 ? written(fd, iov, iovcnt, off) : real.pwritev(fd, iov, iovcnt, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int iovcnt, off_t off) { return pwritev(fd, iov, iovcnt, off); }

int ftruncate(int fd, off_t size)
{
    struct pfile *f = lock_fd(fd);
    int rc = real.ftruncate(fd, size);
    if (!f)
        return rc;
    int saved = errno;
    if (!rc)
        log_append(f, 'T', size, NULL, 0, 0);
    pthread_mutex_unlock(&f->mu);
    errno = saved;
    return rc;
}

int ftruncate64(int fd, off_t size) { return ftruncate(fd, size); }

/* M2: the records in [f->applied, upto) reach NAME.data. Under f->mu. */
static void apply(struct pfile *f, int64_t upto)
{
    char data[PATH_MAX];
    pc_path(data, f->name, ".data");
    int d = real.open(data, O_WRONLY | O_CLOEXEC);
    if (d < 0)
        die("open %s", data);
    char *buf = NULL;
    size_t cap = 0;
    for (int64_t at = f->applied; at < upto;) {
        struct record r;
        if (pread(f->log_fd, &r, sizeof r, at) != (ssize_t)sizeof r)
            die("read the log of %s", f->name);
        at += (int64_t)sizeof r;
        if (r.op == 'T') {
            if (real.ftruncate(d, r.off))
                die("truncate %s", data);
            continue;
        }
        if ((size_t)r.len > cap && !(buf = realloc(buf, cap = (size_t)r.len)))
            die("out of memory");
        if (pread(f->log_fd, buf, (size_t)r.len, at) != r.len || real.pwrite(d, buf, (size_t)r.len, r.off) != r.len)
            die("apply a write to %s", data);
        at += r.len;
    }
    free(buf);
    real.close(d);
    f->applied = upto;
    if (f->applied == f->end)
        log_reset(f);
    else
        log_header(f);
}

static int synced(int fd, int (*sync)(int))
{
    if (!active || fd < 0 || fd >= MAX_FDS || !seen[fd])
        return sync(fd);
    pthread_mutex_lock(&mu);
    struct fdinfo i = fds[fd];
    pthread_mutex_unlock(&mu);
    if (i.dir) {   /* M3; under mu, so that no open or unlink runs between */
        pthread_mutex_lock(&mu);
        int rc = sync(fd);
        if (!rc)
            sync_entries();
        pthread_mutex_unlock(&mu);
        return rc;
    }
    struct pfile *f = lock_fd(fd);
    if (!f)
        return sync(fd);
    int64_t upto = f->end;   /* M2: what was written before the sync began */
    pthread_mutex_unlock(&f->mu);
    int rc = sync(fd);
    int saved = errno;
    if (!rc && (f = lock_fd(fd))) {
        if (upto > f->applied && upto <= f->end)
            apply(f, upto);
        pthread_mutex_unlock(&f->mu);
        maybe_cut("sync", f->name);
    }
    errno = saved;
    return rc;
}

int fsync(int fd) { return synced(fd, real.fsync); }
int fdatasync(int fd) { return synced(fd, real.fdatasync); }

/* M3: the entry stays in the image until the directory syncs. */
static int unlinked(int dirfd, const char *path, int flags)
{
    char buf[NAME_MAX + 1];
    const char *name = active && !(flags & AT_REMOVEDIR) ? watched_name(dirfd, path, buf) : NULL;
    if (!name || !*name)
        return real.unlinkat(dirfd, path, flags);
    pthread_mutex_lock(&mu);
    int rc = real.unlinkat(dirfd, path, flags), saved = errno;
    if (!rc) {
        struct pfile *f = file_get(name);
        pthread_mutex_lock(&f->mu);
        f->gen++;
        log_reset(f);
        char data[PATH_MAX];
        pc_path(data, name, ".data");
        real.unlink(data);
        pthread_mutex_unlock(&f->mu);
    }
    pthread_mutex_unlock(&mu);
    errno = saved;
    return rc;
}

int unlink(const char *path) { return unlinked(AT_FDCWD, path, 0); }
int unlinkat(int dirfd, const char *path, int flags) { return unlinked(dirfd, path, flags); }

/* M4: the new name's durable content is the old one's (one inode). */
int linkat(int from_dir, const char *from, int to_dir, const char *to, int flags)
{
    char a[NAME_MAX + 1], b[NAME_MAX + 1];
    const char *old = active ? watched_name(from_dir, from, a) : NULL;
    const char *new = active ? watched_name(to_dir, to, b) : NULL;
    if (!old && !new)
        return real.linkat(from_dir, from, to_dir, to, flags);
    if (!old || !new || !*old || !*new)
        die("link %s -> %s: into or out of the watched directory is not modelled", from, to);
    pthread_mutex_lock(&mu);
    int rc = real.linkat(from_dir, from, to_dir, to, flags), saved = errno;
    if (!rc) {
        struct pfile *f = file_get(old), *t = file_get(new);
        char data[PATH_MAX], linked[PATH_MAX];
        pc_path(data, old, ".data");
        pc_path(linked, new, ".data");
        pthread_mutex_lock(&f->mu);
        if (f->end > f->applied)
            die("link of %s, which has unsynced writes, is not modelled", old);
        pthread_mutex_unlock(&f->mu);
        pthread_mutex_lock(&t->mu);
        t->gen++;
        log_reset(t);
        real.unlink(linked);
        if (real.linkat(AT_FDCWD, data, AT_FDCWD, linked, 0))
            die("link %s", linked);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&mu);
    if (!rc)
        maybe_cut("link", new);
    errno = saved;
    return rc;
}

int link(const char *from, const char *to) { return linkat(AT_FDCWD, from, AT_FDCWD, to, 0); }

static void rename_seen(int from_dir, const char *from, int to_dir, const char *to)
{
    char buf[NAME_MAX + 1];
    if (active && (watched_name(from_dir, from, buf) || watched_name(to_dir, to, buf)))
        fprintf(stderr, "powercut: rename %s -> %s in the watched directory is not modelled\n", from, to);
}

int rename(const char *from, const char *to)
{
    rename_seen(AT_FDCWD, from, AT_FDCWD, to);
    return real.rename(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to)
{
    rename_seen(from_dir, from, to_dir, to);
    return real.renameat(from_dir, from, to_dir, to);
}
