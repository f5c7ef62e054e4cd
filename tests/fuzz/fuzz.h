/* fuzz — what every libFuzzer harness of topup shares: a cursor that splits
 * one fuzz input into structured choices (bytes, lines, the rest), a scratch
 * directory for databases and keys, and FUZZ_CHECK for properties that must
 * hold (a violated one aborts, so libFuzzer keeps the input as a crash).
 *
 * A harness is one file tests/fuzz/fuzz_<name>.c defining
 * LLVMFuzzerTestOneInput (and, if it needs one-time setup, LLVMFuzzerInitialize);
 * the Makefile builds it against all of src/ with ASan + UBSan, and
 * tests/fuzz/run fuzzes it from tests/fuzz/corpus/<name>/ and replays
 * tests/fuzz/regressions/<name>/. See tests/fuzz/README.md.
 */
#pragma once
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A violated property: print why, then abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                  \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  ", __FILE__,    \
                    __LINE__, #cond);                                          \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The input, consumed from the front. Running out yields zeros and empty strings,
 * so every input, however short, is a valid sequence of choices. */
struct fz {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t fz_u8(struct fz *f)
{
    if (!f->n)
        return 0;
    f->n--;
    return *f->p++;
}

static inline uint32_t fz_u32(struct fz *f)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | fz_u8(f);
    return v;
}

/* The bytes up to the next '\n' (not included, the '\n' consumed). */
static inline size_t fz_line(struct fz *f, const uint8_t **out)
{
    const uint8_t *nl = f->n ? memchr(f->p, '\n', f->n) : NULL;
    size_t len = nl ? (size_t)(nl - f->p) : f->n;
    *out = f->p;
    f->p += len + (nl ? 1 : 0);
    f->n -= len + (nl ? 1 : 0);
    return len;
}

/* A line as a NUL-terminated string (malloc'd; free it); NUL bytes become spaces. */
static inline char *fz_line_str(struct fz *f)
{
    const uint8_t *s;
    size_t len = fz_line(f, &s);
    char *out = malloc(len + 1);
    if (!out)
        abort();
    for (size_t i = 0; i < len; i++)
        out[i] = s[i] ? (char)s[i] : ' ';
    out[len] = 0;
    return out;
}

/* All that is left. */
static inline size_t fz_rest(struct fz *f, const uint8_t **out)
{
    size_t len = f->n;
    *out = f->p;
    f->p += len;
    f->n = 0;
    return len;
}

/* A copy of n bytes with a NUL after them (malloc'd; free it). */
static inline char *fuzz_strndup(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* A fresh private directory for databases and keys: in $FUZZ_TMPDIR, else in
 * /dev/shm when it is writable (fsync is free there and topup fsyncs every
 * commit), else in $TMPDIR or /tmp. Named topup-fuzz-<name>-<pid>-XXXXXX: a
 * crash (abort, no atexit) leaves its directory behind, so the directories of
 * processes that no longer exist are removed first. The directory is flat. */
static inline int fuzz_tmpdir(char *out, size_t cap, const char *name)
{
    const char *base = getenv("FUZZ_TMPDIR");
    if (!base && !access("/dev/shm", W_OK))
        base = "/dev/shm";
    if (!base)
        base = getenv("TMPDIR");
    if (!base)
        base = "/tmp";
    char prefix[128], path[4096];
    snprintf(prefix, sizeof prefix, "topup-fuzz-%s-", name);
    DIR *d = opendir(base);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        long pid = strncmp(e->d_name, prefix, strlen(prefix)) ? 0 : strtol(e->d_name + strlen(prefix), NULL, 10);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        DIR *sub = opendir(path);
        struct dirent *f;
        while (sub && (f = readdir(sub)) != NULL) {
            char file[8192];
            snprintf(file, sizeof file, "%s/%s", path, f->d_name);
            if (strcmp(f->d_name, ".") && strcmp(f->d_name, ".."))
                unlink(file);
        }
        if (sub)
            closedir(sub);
        rmdir(path);
    }
    if (d)
        closedir(d);
    snprintf(out, cap, "%s/%s%ld-XXXXXX", base, prefix, (long)getpid());
    return mkdtemp(out) ? 0 : -1;
}
