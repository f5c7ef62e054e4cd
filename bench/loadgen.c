/* loadgen — the project's HTTP load generator for topupd (loopback only).
 *
 *   loadgen topup  --port P --token-file F --sims N [--first F] [--connections 64] [--seconds 20]
 *                  [--warmup 2] [--rate R] [--amount 100] [--drain 10] [--host 127.0.0.1]
 *                  [--keys seq|random]
 *   loadgen get    (same options): GET /v1/sims/{iccid}
 *                  --watch-pid PID: report topupd's CPU use in the window (and everybody else's)
 *   loadgen import --port P --token-file F --first F --count N   POST /v1/sims/import (CSV)
 *   loadgen wait   --port P [--since EPOCH_SECONDS.FRACTION] [--timeout 30]   until /healthz is 200
 *
 * topup/get: one epoll thread, N keep-alive HTTP/1.1 connections, one request
 * outstanding per connection. Closed loop (no --rate): each connection sends
 * its next request as soon as the previous answer arrived. Open loop (--rate
 * R): request k is scheduled at t0 + k/R whatever happens; it goes out on the
 * first idle connection, and its latency is measured from its scheduled time,
 * not from when it could be sent (no coordinated omission). Each top-up
 * carries a unique Idempotency-Key: a client's own counter (--keys seq, the
 * default: "lg-<run>-<n>", so keys arrive nearly in order) or a random
 * UUIDv4 (--keys random: what a browser or an SDK sends, so every key lands
 * at a random place of the server's key index). The SIM is drawn uniformly
 * from [first, first+sims) of the simgen.h population.
 *
 * Only requests sent (closed) or scheduled (open) after the warm-up and
 * before its end are measured; after the end, the outstanding ones are given
 * --drain seconds. 2xx answers are successes; every other status and every
 * connection error is counted and reported. Latency: log-linear histogram at
 * microsecond resolution (under 1% relative error) → p50/p90/p99/p99.9/max.
 * One JSON line on stdout.
 *
 * Caps: request 2 KiB, response headers 16 KiB, response body 1 MiB (the
 * connection is dropped beyond), 1..16384 connections, import 4M rows, import
 * answer 64 MiB. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"
#include "simgen.h"

#define DIE(...) (fprintf(stderr, "loadgen: " __VA_ARGS__), fputc('\n', stderr), exit(2))

#define REQ_CAP 2048
#define HDR_CAP 16384
#define BODY_CAP (1 << 20)
#define MAX_CONNS 16384
#define IMPORT_MAX_ROWS 4000000
#define IMPORT_ANSWER_CAP (64 << 20)
#define IMPORT_RETRIES 60          /* 503s an import waits out, a second apart */
#define TOKEN_CAP 256

/* ---- time ------------------------------------------------------------------ */

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------- */

/* Values in microseconds. Below 256 one bucket per µs; above, 128 buckets per
 * power of two (relative width 1/128). Values are clamped at 2^40 µs. */
#define H_LIN 256
#define H_SUB 128
#define H_MAXBIT 40
#define H_BUCKETS (H_LIN + (H_MAXBIT - 8 + 1) * H_SUB)

struct hist {
    uint64_t b[H_BUCKETS];
    uint64_t count, max;
    double sum;
};

static int h_index(uint64_t v)
{
    if (v < H_LIN)
        return (int)v;
    if (v >= (1ULL << H_MAXBIT))
        v = (1ULL << H_MAXBIT) - 1;
    int bit = 63 - __builtin_clzll(v);           /* >= 8 */
    int shift = bit - 7;
    int sub = (int)(v >> shift) - H_SUB;         /* 0..127 */
    return H_LIN + (bit - 8) * H_SUB + sub;
}

/* The middle of bucket i. */
static double h_value(int i)
{
    if (i < H_LIN)
        return i;
    int bit = (i - H_LIN) / H_SUB + 8, sub = (i - H_LIN) % H_SUB + H_SUB, shift = bit - 7;
    double lo = (double)((uint64_t)sub << shift), w = (double)(1ULL << shift);
    return lo + w / 2;
}

static void h_add(struct hist *h, uint64_t us)
{
    h->b[h_index(us)]++;
    h->count++;
    h->sum += (double)us;
    if (us > h->max)
        h->max = us;
}

static double h_pct(const struct hist *h, double p)
{
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            double v = h_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* ---- options --------------------------------------------------------------- */

enum mode { M_TOPUP, M_GET, M_IMPORT, M_WAIT };

struct opts {
    enum mode mode;
    const char *host;
    int port;
    char token[TOKEN_CAP];
    int connections;
    double seconds, warmup, rate, drain, timeout, since;
    int64_t sims, first, count, amount;
    int watch_pid;
    int random_keys;
};

static void read_token(const char *path, char *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        DIE("cannot open token file %s", path);
    if (!fgets(out, TOKEN_CAP, f))
        DIE("empty token file %s", path);
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    for (const char *p = out; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            DIE("token file %s: not a token", path);
}

static void parse(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->connections = 64;
    o->seconds = 20;
    o->warmup = 2;
    o->drain = 10;
    o->timeout = 30;
    o->amount = 100;
    if (argc < 2)
        DIE("usage: loadgen topup|get|import|wait [options] (see bench/loadgen.c)");
    const char *m = argv[1];
    o->mode = !strcmp(m, "topup") ? M_TOPUP : !strcmp(m, "get") ? M_GET : !strcmp(m, "import") ? M_IMPORT
            : !strcmp(m, "wait") ? M_WAIT : (DIE("unknown mode %s", m), M_WAIT);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            DIE("%s needs a value", a);
        if (!strcmp(a, "--host"))
            o->host = v;
        else if (!strcmp(a, "--port"))
            o->port = atoi(v);
        else if (!strcmp(a, "--token-file"))
            read_token(v, o->token);
        else if (!strcmp(a, "--connections"))
            o->connections = atoi(v);
        else if (!strcmp(a, "--seconds"))
            o->seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            o->warmup = atof(v);
        else if (!strcmp(a, "--rate"))
            o->rate = atof(v);
        else if (!strcmp(a, "--drain"))
            o->drain = atof(v);
        else if (!strcmp(a, "--timeout"))
            o->timeout = atof(v);
        else if (!strcmp(a, "--since"))
            o->since = atof(v);
        else if (!strcmp(a, "--sims"))
            o->sims = atoll(v);
        else if (!strcmp(a, "--first"))
            o->first = atoll(v);
        else if (!strcmp(a, "--count"))
            o->count = atoll(v);
        else if (!strcmp(a, "--watch-pid"))
            o->watch_pid = atoi(v);
        else if (!strcmp(a, "--amount"))
            o->amount = atoll(v);
        else if (!strcmp(a, "--keys")) {
            if (strcmp(v, "seq") && strcmp(v, "random"))
                DIE("--keys must be seq or random, not %s", v);
            o->random_keys = !strcmp(v, "random");
        }
        else
            DIE("unknown argument %s", a);
        i++;
    }
    if (o->port <= 0 || o->port > 65535)
        DIE("--port is required");
    struct in_addr ia;
    if (inet_pton(AF_INET, o->host, &ia) != 1 || (ntohl(ia.s_addr) >> 24) != 127)
        DIE("--host must be a loopback IPv4 address (127.0.0.0/8)");
    if ((o->mode == M_TOPUP || o->mode == M_GET || o->mode == M_IMPORT) && !o->token[0])
        DIE("--token-file is required");
    if (o->mode == M_TOPUP || o->mode == M_GET) {
        if (o->connections < 1 || o->connections > MAX_CONNS)
            DIE("--connections must be 1..%d", MAX_CONNS);
        if (o->sims < 1 || o->first < 0 || o->first + o->sims > SIMGEN_MAX)
            DIE("--sims must be 1..%lld", SIMGEN_MAX);
        if (o->seconds <= 0 || o->seconds > 3600 || o->warmup < 0 || o->warmup > 600 || o->drain < 0 ||
            o->drain > 600 || o->rate < 0 || o->rate > 1e7)
            DIE("--seconds 0..3600, --warmup 0..600, --drain 0..600, --rate 0..1e7");
    }
    if (o->mode == M_IMPORT && (o->count < 1 || o->count > IMPORT_MAX_ROWS || o->first < 0 ||
                                o->first + o->count > SIMGEN_MAX))
        DIE("--count must be 1..%d", IMPORT_MAX_ROWS);
}

static struct sockaddr_in addr_of(const struct opts *o)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o->port);
    inet_pton(AF_INET, o->host, &sa.sin_addr);
    return sa;
}

/* ---- response parsing (shared) --------------------------------------------- */

/* Parses a complete header block (ending in CRLFCRLF, hlen bytes). Returns 0
 * and fills status, content length and close; -1 on anything unsupported. */
static int parse_head(const char *h, size_t hlen, int *status, long long *clen, int *close_after)
{
    *status = 0;
    *clen = -1;
    *close_after = 0;
    if (hlen < 12 || strncmp(h, "HTTP/1.", 7))
        return -1;
    if (h[7] == '0')
        *close_after = 1;
    const char *p = h + 8;
    while (*p == ' ')
        p++;
    if (p[0] < '1' || p[0] > '5' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return -1;
    *status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    const char *end = h + hlen, *line = memchr(h, '\n', hlen);
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        size_t n = (size_t)(eol - line);
        if (n >= 15 && !strncasecmp(line, "Content-Length:", 15)) {
            char num[32];
            size_t k = 0;
            for (const char *q = line + 15; q < eol && k < sizeof num - 1; q++)
                if (*q >= '0' && *q <= '9')
                    num[k++] = *q;
            num[k] = 0;
            if (!k)
                return -1;
            *clen = atoll(num);
        } else if (n >= 18 && !strncasecmp(line, "Transfer-Encoding:", 18)) {
            return -1;   /* topupd answers with Content-Length; chunked is not expected */
        } else if (n >= 11 && !strncasecmp(line, "Connection:", 11)) {
            for (const char *q = line + 11; q + 5 <= eol; q++)
                if (!strncasecmp(q, "close", 5))
                    *close_after = 1;
        }
        line = eol;
    }
    if (*clen < 0)
        *clen = 0;   /* no body: 204/304 or a bodiless answer */
    return 0;
}

/* ---- load: topup / get ----------------------------------------------------- */

enum cstate { C_CLOSED, C_CONNECTING, C_IDLE, C_BUSY };

struct conn {
    int fd, state;
    char out[REQ_CAP];
    size_t out_len, out_off;
    char in[HDR_CAP];
    size_t in_len;
    int have_head, status, close_after;
    long long body_left;
    uint64_t t_start;   /* latency origin: sent (closed loop) or scheduled (open loop) */
    uint64_t t_sent;    /* when it went out (later than t_start when open loop lags) */
    int measured;       /* sent/scheduled inside the window */
};

struct load {
    struct opts *o;
    int ep;
    struct sockaddr_in sa;
    struct conn *c;
    int *idle, nidle;
    uint64_t seq;
    uint64_t rnd;
    char runid[32];
    /* A request is these pieces around its SIM and its key, formatted once
     * (snprintf per request was a fifth of this generator's own CPU). */
    char pre[32], mid[REQ_CAP], tail[REQ_CAP], key_pre[48];
    size_t pre_len, mid_len, tail_len, key_pre_len;
    uint64_t t0, win0, win1;
    struct hist h;       /* every answer, from t_start */
    struct hist h_ok;    /* 2xx answers only, from t_start */
    struct hist h_lag;   /* 2xx answers: t_sent - t_start, how late this generator sent */
    struct hist h_sent;  /* 2xx answers from t_sent: the server's part (and the wire's) */
    uint64_t status[600];
    uint64_t sent_window, done_window, ok_window, ok_in_window_time;
    uint64_t sent_in_window_time, done_in_window_time;   /* by when sent / answered, whatever was scheduled */
    uint64_t err_connect, err_io, err_parse, err_too_big, reconnects, unfinished, unsent;
    int busy;
};

static void conn_open(struct load *L, int i);

static void conn_close(struct load *L, int i)
{
    struct conn *c = &L->c[i];
    if (c->fd >= 0) {
        epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->state == C_BUSY)
        L->busy--;
    if (c->state == C_IDLE)
        for (int k = 0; k < L->nidle; k++)
            if (L->idle[k] == i) {
                L->idle[k] = L->idle[--L->nidle];
                break;
            }
    c->fd = -1;
    c->state = C_CLOSED;
}

/* A connection broke: count it, and open another in its place. */
static void conn_fail(struct load *L, int i, uint64_t *counter, int reopen)
{
    (*counter)++;
    conn_close(L, i);
    if (reopen) {
        L->reconnects++;
        conn_open(L, i);
    }
}

static void conn_open(struct load *L, int i)
{
    struct conn *c = &L->c[i];
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        DIE("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->in_len = 0;
    c->have_head = 0;
    int rc = connect(c->fd, (struct sockaddr *)&L->sa, sizeof L->sa);
    if (rc && errno != EINPROGRESS) {
        L->err_connect++;
        close(c->fd);
        c->fd = -1;
        c->state = C_CLOSED;
        return;
    }
    c->state = C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* The request pieces that never change (struct load). */
static void request_pieces(struct load *L)
{
    const struct opts *o = L->o;
    int n;
    if (o->mode == M_TOPUP) {
        char body[160];
        int bl = snprintf(body, sizeof body,
                          "{\"amount\":%lld,\"currency\":\"CNY\",\"channel\":\"portal\",\"method\":\"alipay\"}",
                          (long long)o->amount);
        snprintf(L->pre, sizeof L->pre, "POST /v1/sims/");
        n = snprintf(L->mid, sizeof L->mid,
                     "/topups HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\nIdempotency-Key: ", o->host,
                     o->port, o->token);
        if (n < 0 || (size_t)n >= sizeof L->mid)
            DIE("request over %d bytes", REQ_CAP);
        n = snprintf(L->tail, sizeof L->tail, "\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                     bl, body);
    } else {
        snprintf(L->pre, sizeof L->pre, "GET /v1/sims/");
        n = snprintf(L->mid, sizeof L->mid, " HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n", o->host,
                     o->port, o->token);
        if (n < 0 || (size_t)n >= sizeof L->mid)
            DIE("request over %d bytes", REQ_CAP);
        n = 0;
        L->tail[0] = 0;
    }
    if (n < 0 || (size_t)n >= sizeof L->tail)
        DIE("request over %d bytes", REQ_CAP);
    snprintf(L->key_pre, sizeof L->key_pre, "lg-%s-", L->runid);
    L->pre_len = strlen(L->pre), L->mid_len = strlen(L->mid), L->tail_len = strlen(L->tail);
    L->key_pre_len = strlen(L->key_pre);
}

/* Appends v in hex, `digits` wide (zero-padded), at p; returns the end. */
static char *put_hex(char *p, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--, v >>= 4)
        p[i] = "0123456789abcdef"[v & 15];
    return p + digits;
}

static char *put_dec(char *p, uint64_t v)
{
    char d[20];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = d[--n];
    return p;
}

static void make_request(struct load *L, struct conn *c)
{
    char iccid[SIMGEN_ICCID_LEN + 1];
    simgen_iccid(L->o->first + simgen_pick(&L->rnd, L->o->sims), iccid);
    size_t iccid_len = strlen(iccid);
    if (L->pre_len + iccid_len + L->mid_len + 48 + L->tail_len >= sizeof c->out)
        DIE("request over %d bytes", REQ_CAP);
    char *p = c->out;
    memcpy(p, L->pre, L->pre_len), p += L->pre_len;
    memcpy(p, iccid, iccid_len), p += iccid_len;
    memcpy(p, L->mid, L->mid_len), p += L->mid_len;
    if (L->o->mode == M_TOPUP) {
        if (L->o->random_keys) {   /* a UUIDv4: 8-4-4-4-12 hex digits, version 4, variant 10 */
            uint64_t hi = simgen_rand(&L->rnd), lo = simgen_rand(&L->rnd);
            p = put_hex(p, hi >> 32, 8), *p++ = '-';
            p = put_hex(p, hi >> 16 & 0xffff, 4), *p++ = '-';
            *p++ = '4', p = put_hex(p, hi & 0xfff, 3), *p++ = '-';
            p = put_hex(p, 0x8000 | (lo >> 48 & 0x3fff), 4), *p++ = '-';
            p = put_hex(p, lo & 0xffffffffffffULL, 12);
        } else {
            memcpy(p, L->key_pre, L->key_pre_len), p += L->key_pre_len;
            p = put_dec(p, L->seq++);
        }
        memcpy(p, L->tail, L->tail_len), p += L->tail_len;
    }
    c->out_len = (size_t)(p - c->out);
    c->out_off = 0;
}

/* Writes what is pending; 0 ok (maybe partial), -1 on error. */
static int conn_flush(struct load *L, int i)
{
    struct conn *c = &L->c[i];
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
            epoll_ctl(L->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return 0;
        }
        if (w <= 0)
            return -1;
        c->out_off += (size_t)w;
    }
    return 0;
}

static void conn_send(struct load *L, int i, uint64_t t_start)
{
    struct conn *c = &L->c[i];
    make_request(L, c);
    c->t_start = t_start;
    c->t_sent = mono_ns();
    c->measured = t_start >= L->win0 && t_start < L->win1;
    if (c->measured)
        L->sent_window++;
    if (c->t_sent >= L->win0 && c->t_sent < L->win1)
        L->sent_in_window_time++;
    c->state = C_BUSY;
    L->busy++;
    c->in_len = 0;
    c->have_head = 0;
    if (conn_flush(L, i))
        conn_fail(L, i, &L->err_io, 1);
}

static void conn_idle(struct load *L, int i)
{
    L->c[i].state = C_IDLE;
    L->idle[L->nidle++] = i;
}

/* A connection in progress became writable: 1 when it is up (now waiting
 * for answers), 0 when it failed (counted and closed). */
static int conn_connected(struct load *L, int i)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(L->c[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        L->err_connect++;
        conn_close(L, i);
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(L->ep, EPOLL_CTL_MOD, L->c[i].fd, &ev);
    return 1;
}

/* ,"name":{count, mean and percentiles} */
static void print_hist(const char *name, const struct hist *h)
{
    printf("\"%s\":{\"count\":%llu,\"mean\":%.0f,\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p999\":%.0f,"
           "\"max\":%llu},",
           name, (unsigned long long)h->count, h->count ? h->sum / (double)h->count : 0.0, h_pct(h, 50),
           h_pct(h, 90), h_pct(h, 99), h_pct(h, 99.9), (unsigned long long)h->max);
}

/* A whole answer arrived on connection i. */
static void answered(struct load *L, int i, uint64_t now)
{
    struct conn *c = &L->c[i];
    if (c->measured) {
        L->done_window++;
        h_add(&L->h, (now - c->t_start) / 1000);
        if (c->status >= 100 && c->status < 600)
            L->status[c->status]++;
        if (c->status >= 200 && c->status < 300) {
            L->ok_window++;
            h_add(&L->h_ok, (now - c->t_start) / 1000);
            h_add(&L->h_lag, (c->t_sent - c->t_start) / 1000);
            h_add(&L->h_sent, (now - c->t_sent) / 1000);
        }
    }
    if (now >= L->win0 && now < L->win1) {
        L->done_in_window_time++;
        L->ok_in_window_time += c->status >= 200 && c->status < 300;
    }
    c->state = C_IDLE;   /* not yet on the idle list: the caller decides */
    L->busy--;
    if (c->close_after) {   /* the server will not keep this one: open another */
        epoll_ctl(L->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        c->state = C_CLOSED;
        L->reconnects++;
        conn_open(L, i);
    }
}

/* One recv on connection i: bytes read (> 0), 0 when nothing is there yet,
 * -1 after failing the connection (closed or broken). */
static ssize_t recv_some(struct load *L, int i, char *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(L->c[i].fd, buf, n, 0);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        conn_fail(L, i, &L->err_io, 1);
        return -1;
    }
}

/* Reads what is there; returns 1 when an answer completed, 0 when more is
 * needed, -1 after failing the connection. */
static int conn_read(struct load *L, int i, uint64_t *now)
{
    struct conn *c = &L->c[i];
    for (;;) {
        if (!c->have_head) {
            if (c->in_len == sizeof c->in) {
                conn_fail(L, i, &L->err_too_big, 1);
                return -1;
            }
            ssize_t r = recv_some(L, i, c->in + c->in_len, sizeof c->in - c->in_len);
            if (r <= 0)
                return (int)r;
            c->in_len += (size_t)r;
            char *eoh = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (!eoh)
                continue;
            size_t hlen = (size_t)(eoh - c->in) + 4;
            long long clen;
            if (parse_head(c->in, hlen, &c->status, &clen, &c->close_after)) {
                conn_fail(L, i, &L->err_parse, 1);
                return -1;
            }
            if (clen > BODY_CAP) {
                conn_fail(L, i, &L->err_too_big, 1);
                return -1;
            }
            long long extra = (long long)(c->in_len - hlen);
            if (extra > clen) {   /* nothing was pipelined, so this is garbage */
                conn_fail(L, i, &L->err_parse, 1);
                return -1;
            }
            c->have_head = 1;
            c->body_left = clen - extra;
        } else if (c->body_left > 0) {
            char sink[16384];
            size_t want = c->body_left < (long long)sizeof sink ? (size_t)c->body_left : sizeof sink;
            ssize_t r = recv_some(L, i, sink, want);
            if (r <= 0)
                return (int)r;
            c->body_left -= r;
        }
        if (c->have_head && c->body_left == 0) {
            *now = mono_ns();
            answered(L, i, *now);
            return 1;
        }
    }
}

/* Waits for events until now + wait_ns at most. The open loop's next send
 * is such a deadline: a timeout to the nanosecond (epoll_pwait2, Linux 5.11)
 * costs no system call of its own, where a timer file cost two per request
 * (arming it, reading it), a fifth of the load generator's CPU at 17k/s. */
static int wait_events(int ep, struct epoll_event *evs, int max, uint64_t wait_ns)
{
    static int no_pwait2;
    if (!no_pwait2) {
        struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u), .tv_nsec = (long)(wait_ns % 1000000000u)};
        int n = epoll_pwait2(ep, evs, max, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        no_pwait2 = 1;
    }
    return epoll_wait(ep, evs, max, (int)((wait_ns + 999999u) / 1000000u));
}

static int run_load(struct opts *o)
{
    struct load L;
    memset(&L, 0, sizeof L);
    L.o = o;
    L.sa = addr_of(o);
    L.c = calloc((size_t)o->connections, sizeof *L.c);
    L.idle = calloc((size_t)o->connections, sizeof *L.idle);
    if (!L.c || !L.idle)
        DIE("out of memory");
    snprintf(L.runid, sizeof L.runid, "%lx%x", (long)time(NULL), (unsigned)getpid());
    request_pieces(&L);
    L.rnd = ((uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)getpid() << 32) ^ mono_ns();
    L.rnd |= 1;
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    if (L.ep < 0)
        DIE("epoll: %s", strerror(errno));

    for (int i = 0; i < o->connections; i++) {
        L.c[i].fd = -1;
        conn_open(&L, i);
    }
    /* Wait (up to 5 s) for the connections before the clock starts. */
    uint64_t deadline = mono_ns() + 5000000000ull;
    struct epoll_event evs[256];
    int connecting = o->connections;
    while (connecting > 0 && mono_ns() < deadline) {
        int n = epoll_wait(L.ep, evs, 256, 100);
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            if (L.c[i].state != C_CONNECTING)
                continue;
            connecting--;
            if (conn_connected(&L, (int)i))
                conn_idle(&L, (int)i);
        }
    }
    if (!L.nidle)
        DIE("no connection to %s:%d could be made", o->host, o->port);

    int open_loop = o->rate > 0;
    double interval_ns = open_loop ? 1e9 / o->rate : 0;
    L.t0 = mono_ns();
    L.win0 = L.t0 + (uint64_t)(o->warmup * 1e9);
    L.win1 = L.win0 + (uint64_t)(o->seconds * 1e9);
    uint64_t drain_end = L.win1 + (uint64_t)(o->drain * 1e9), k_next = 0;
    uint64_t next_due = L.t0, last_retry = L.t0;

    if (!open_loop)
        while (L.nidle)
            conn_send(&L, L.idle[--L.nidle], L.t0);

    struct cpu_snap cpu0, cpu1;
    int have0 = 0, have1 = 0;
    for (;;) {
        uint64_t now = mono_ns();
        int sending = now < L.win1;
        if (!have0 && now >= L.win0)
            cpu_snap(&cpu0, o->watch_pid), have0 = 1;
        if (!have1 && now >= L.win1)
            cpu_snap(&cpu1, o->watch_pid), have1 = 1;
        if (!sending && (L.busy == 0 || now >= drain_end))
            break;
        if (open_loop && sending) {
            /* Everything due goes out on idle connections, stamped with its
             * schedule; what finds none goes as connections free up. */
            while (next_due <= now && next_due < L.win1 && L.nidle) {
                conn_send(&L, L.idle[--L.nidle], next_due);
                k_next++;
                next_due = L.t0 + (uint64_t)((double)k_next * interval_ns);
            }
        }
        /* Reopen connections that failed to connect, at most every 10 ms. */
        if (sending && now - last_retry > 10000000u) {
            last_retry = now;
            for (int i = 0; i < o->connections; i++)
                if (L.c[i].state == C_CLOSED) {
                    L.reconnects++;
                    conn_open(&L, i);
                }
        }
        uint64_t until = sending ? L.win1 : drain_end;
        if (open_loop && sending && next_due > now && next_due < until && L.nidle)
            until = next_due;   /* the next request is due before anything else */
        int n = wait_events(L.ep, evs, 256, until > now ? until - now : 0);
        if (n < 0 && errno != EINTR)
            DIE("epoll_wait: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            uint32_t i = evs[k].data.u32;
            struct conn *c = &L.c[i];
            if (c->state == C_CONNECTING) {
                if (!conn_connected(&L, (int)i))
                    continue;
                uint64_t t = mono_ns();
                if (!open_loop && t < L.win1)
                    conn_send(&L, (int)i, t);
                else
                    conn_idle(&L, (int)i);
                continue;
            }
            if (c->state == C_IDLE && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                /* The server closed an idle keep-alive connection, or sent
                 * something nobody asked for: either way, a new connection. */
                char b;
                ssize_t r = recv(c->fd, &b, 1, MSG_PEEK);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r > 0)
                    L.err_parse++;
                conn_close(&L, (int)i);
                if (mono_ns() < L.win1) {
                    L.reconnects++;
                    conn_open(&L, (int)i);
                }
                continue;
            }
            if (c->state != C_BUSY)
                continue;
            if ((evs[k].events & EPOLLOUT) && c->out_off < c->out_len) {
                if (conn_flush(&L, (int)i)) {
                    conn_fail(&L, (int)i, &L.err_io, 1);
                    continue;
                }
                if (c->out_off == c->out_len) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
                    epoll_ctl(L.ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            uint64_t t = 0;
            if (conn_read(&L, (int)i, &t) != 1 || c->state != C_IDLE)
                continue;
            if (t >= L.win1) {
                conn_idle(&L, (int)i);
            } else if (!open_loop) {
                conn_send(&L, (int)i, t);
            } else if (next_due <= t && next_due < L.win1) {
                conn_send(&L, (int)i, next_due);
                k_next++;
                next_due = L.t0 + (uint64_t)((double)k_next * interval_ns);
            } else {
                conn_idle(&L, (int)i);
            }
        }
    }
    /* What never got an answer still waited: it enters the histogram with the
     * time it had waited when the run ended (a lower bound), so an overloaded
     * run cannot show good percentiles. */
    uint64_t end = mono_ns();
    if (!have0)
        cpu_snap(&cpu0, o->watch_pid);
    if (!have1)
        cpu_snap(&cpu1, o->watch_pid);
    for (int i = 0; i < o->connections; i++) {
        if (L.c[i].state == C_BUSY && L.c[i].measured) {
            L.unfinished++;
            h_add(&L.h, (end - L.c[i].t_start) / 1000);
        }
        conn_close(&L, i);
    }
    if (open_loop) {
        /* Scheduled inside the window but never sent: the server did not keep up. */
        for (uint64_t k = k_next; k < 100000000u; k++) {
            uint64_t due = L.t0 + (uint64_t)((double)k * interval_ns);
            if (due >= L.win1)
                break;
            if (due >= L.win0) {
                L.unsent++;
                h_add(&L.h, (end - due) / 1000);
            }
        }
    }

    printf("{\"name\":\"loadgen\",\"mode\":\"%s\",\"keys\":\"%s\",\"connections\":%d,\"rate\":%.1f,\"warmup_s\":%.1f,"
           "\"seconds\":%.1f,\"sims\":%lld,\"scheduled\":%llu,\"sent\":%llu,\"completed\":%llu,\"ok\":%llu,\"ok_per_s\":%.1f,"
           "\"completed_per_s\":%.1f,\"sent_per_s\":%.1f,\"answers_per_s\":%.1f,\"status\":{",
           o->mode == M_TOPUP ? "topup" : "get", o->random_keys ? "random" : "seq", o->connections, o->rate, o->warmup, o->seconds,
           (long long)o->sims, (unsigned long long)(L.sent_window + L.unsent), (unsigned long long)L.sent_window,
           (unsigned long long)L.done_window,
           (unsigned long long)L.ok_window, (double)L.ok_in_window_time / o->seconds,
           (double)L.done_window / o->seconds, (double)L.sent_in_window_time / o->seconds,
           (double)L.done_in_window_time / o->seconds);
    int first = 1;
    for (int s = 0; s < 600; s++)
        if (L.status[s]) {
            printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)L.status[s]);
            first = 0;
        }
    printf("},\"non_2xx\":%llu,\"errors\":{\"connect\":%llu,\"io\":%llu,\"parse\":%llu,\"too_big\":%llu,"
           "\"unfinished\":%llu,\"unsent\":%llu},\"reconnects\":%llu,",
           (unsigned long long)(L.done_window - L.ok_window), (unsigned long long)L.err_connect,
           (unsigned long long)L.err_io, (unsigned long long)L.err_parse, (unsigned long long)L.err_too_big,
           (unsigned long long)L.unfinished, (unsigned long long)L.unsent, (unsigned long long)L.reconnects);
    print_hist("latency_us", &L.h);
    print_hist("latency_ok_us", &L.h_ok);
    print_hist("send_lag_ok_us", &L.h_lag);
    print_hist("latency_ok_from_sent_us", &L.h_sent);
    cpu_print(stdout, &cpu0, &cpu1, "loadgen", o->watch_pid ? "topupd" : NULL);
    if (o->watch_pid) {
        /* topupd's writes (database, WAL, sockets) per 2xx answer in the window */
        double rate = cpu_write_rate(&cpu0, &cpu1), ok_rate = (double)L.ok_in_window_time / o->seconds;
        printf(",\"topupd_write_bytes_per_s\":%.0f,\"topupd_write_bytes_per_ok\":%.0f,", rate,
               ok_rate > 0 ? rate / ok_rate : 0.0);
        /* per 2xx answer, over the window's own span (the same as the rate's) */
        cpu_print_threads(stdout, "topupd_thread_cpu_us_per_ok", &cpu0, &cpu1, ok_rate * (cpu1.t - cpu0.t));
    }
    printf("}\n");
    fflush(stdout);
    close(L.ep);
    free(L.c);
    free(L.idle);
    return 0;
}

/* ---- blocking helpers: import and wait ------------------------------------- */

static int connect_blocking(const struct opts *o, double timeout_s)
{
    struct sockaddr_in sa = addr_of(o);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = (time_t)timeout_s, .tv_usec = (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one answer (headers up to HDR_CAP, body up to cap). Returns the
 * status or -1; *body (malloc'd, NUL-terminated) receives the body. */
static int read_answer(int fd, size_t cap, char **body, size_t *body_len)
{
    char head[HDR_CAP];
    size_t n = 0;
    char *eoh = NULL;
    *body = NULL;
    *body_len = 0;
    while (!eoh) {
        if (n == sizeof head)
            return -1;
        ssize_t r = recv(fd, head + n, sizeof head - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        n += (size_t)r;
        eoh = memmem(head, n, "\r\n\r\n", 4);
    }
    size_t hlen = (size_t)(eoh - head) + 4;
    int status, close_after;
    long long clen;
    if (parse_head(head, hlen, &status, &clen, &close_after) || clen < 0 || (size_t)clen > cap ||
        (long long)(n - hlen) > clen)
        return -1;
    char *b = malloc((size_t)clen + 1);
    if (!b)
        return -1;
    size_t have = n - hlen;
    memcpy(b, head + hlen, have);
    while ((long long)have < clen) {
        ssize_t r = recv(fd, b + have, (size_t)clen - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(b);
            return -1;
        }
        have += (size_t)r;
    }
    b[have] = 0;
    *body = b;
    *body_len = have;
    return status;
}

static long long json_num(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = body ? strstr(body, pat) : NULL;
    return p ? atoll(p + strlen(pat)) : -1;
}

static int run_import(struct opts *o)
{
    static const char header[] = "iccid,msisdn,imsi,language\n";
    size_t cap = sizeof header + (size_t)o->count * 64;
    char *csv = malloc(cap);
    if (!csv)
        DIE("out of memory for %lld rows", (long long)o->count);
    size_t len = sizeof header - 1;
    memcpy(csv, header, len);
    for (int64_t i = o->first; i < o->first + o->count; i++)
        len += (size_t)simgen_csv_line(i, csv + len, cap - len);
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "POST /v1/sims/import HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: text/csv\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      o->host, o->port, o->token, len);
    /* A server that is busy (503: the writer still copying the log of the
     * last import into the database) is asked again a second later, as a
     * client honouring Retry-After would; the refusals are reported. */
    char *body = NULL;
    size_t blen;
    int status, refused = 0, fd = -1;
    uint64_t t0, t_sent, t1, t_first = mono_ns();
    for (;;) {
        fd = connect_blocking(o, 3600);
        if (fd < 0)
            DIE("cannot connect to %s:%d", o->host, o->port);
        t0 = mono_ns();
        if (send_all(fd, head, (size_t)hl) || send_all(fd, csv, len))
            DIE("sending the CSV failed: %s", strerror(errno));
        t_sent = mono_ns();
        status = read_answer(fd, IMPORT_ANSWER_CAP, &body, &blen);
        t1 = mono_ns();
        if (status != 503 || ++refused > IMPORT_RETRIES)
            break;
        close(fd);
        free(body);
        sleep(1);
    }
    close(fd);
    free(csv);
    double s = (double)(t1 - t0) / 1e9;
    long long imported = json_num(body, "imported"), existing = json_num(body, "existing"),
              failed = json_num(body, "failed"), rows = json_num(body, "rows");
    printf("{\"name\":\"import\",\"first\":%lld,\"count\":%lld,\"csv_bytes\":%zu,\"status\":%d,\"seconds\":%.3f,"
           "\"upload_s\":%.3f,\"rows\":%lld,\"imported\":%lld,\"existing\":%lld,\"failed\":%lld,\"rows_per_s\":%.0f,"
           "\"refused\":%d,\"waited_s\":%.3f}\n",
           (long long)o->first, (long long)o->count, len, status, s, (double)(t_sent - t0) / 1e9, rows, imported,
           existing, failed, s > 0 ? (double)o->count / s : 0.0, refused > IMPORT_RETRIES ? IMPORT_RETRIES : refused,
           (double)(t0 - t_first) / 1e9);
    if (status != 200 && body)
        fprintf(stderr, "loadgen import: status %d: %.300s\n", status, body);
    free(body);
    return status == 200 && failed == 0 ? 0 : 1;
}

static int run_wait(struct opts *o)
{
    uint64_t deadline = mono_ns() + (uint64_t)(o->timeout * 1e9);
    char req[256];
    int rl = snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", o->host,
                      o->port);
    int tries = 0;
    while (mono_ns() < deadline) {
        tries++;
        int fd = connect_blocking(o, 2);
        if (fd >= 0) {
            char *body;
            size_t blen;
            int status = send_all(fd, req, (size_t)rl) ? -1 : read_answer(fd, 65536, &body, &blen);
            close(fd);
            if (status == 200) {
                free(body);
                struct timespec t;
                clock_gettime(CLOCK_REALTIME, &t);
                double now = (double)t.tv_sec + (double)t.tv_nsec / 1e9;
                printf("{\"name\":\"wait\",\"tries\":%d,\"ready_ms\":%.1f}\n", tries,
                       o->since > 0 ? (now - o->since) * 1000.0 : -1.0);
                return 0;
            }
            if (status > 0)
                free(body);
        }
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    fprintf(stderr, "loadgen wait: %s:%d/healthz did not answer 200 in %.0f s\n", o->host, o->port, o->timeout);
    return 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    signal(SIGPIPE, SIG_IGN);
    parse(argc, argv, &o);
    switch (o.mode) {
    case M_IMPORT:
        return run_import(&o);
    case M_WAIT:
        return run_wait(&o);
    default:
        return run_load(&o);
    }
}
