/* net — see net.h. A connection's states:
 *   S_TLS     the TLS handshake (HTTPS only)
 *   S_HEAD    reading a request head into c->in
 *   S_BODY    reading its body into c->body (Content-Length or chunked)
 *   S_WAIT    the server holds the request (deciding, or suspended)
 *   S_SEND    writing the answer
 *   S_SKIP    dropping a body answered before it was read (after the answer,
 *             or before it when the body is long: drain_first)
 *   S_LINGER  answered for the last time: drop what still comes, then close
 *   S_CLOSED  closed; freed at the end of the worker's event batch
 * Edge-triggered epoll: a state that waits for the socket has read or written
 * until EAGAIN, so the next event is sure to come. A plain socket's read that
 * came back short counts as that EAGAIN (rd_more = 0): what arrives after it
 * raises a new edge, and a FIN that came before it was reported with the
 * event (EPOLLRDHUP, which keeps rd_more set). That saves one recv() per
 * request, a tenth of what a refused one costs.
 */
#include "http/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "http/metrics.h"
#include "http/peers.h"
#include "util/log.h"
#include "util/text.h"

#define IN_FIRST 2048            /* a connection's head buffer starts here, grows to head_max */
#define READ_CHUNK 16384         /* most bytes read at once into a chunked body */
#define SKIP_MAX (1 << 20)       /* an unread body up to this is skipped; past it the connection closes */
#define LINGER_MS 2000
#define LINGER_MAX (1 << 20)
#define ACCEPT_BURST 64
#define EVENTS 4096   /* a batch this large shows how many wait (flood_check) */
#define FLOOD_BEGIN_MS 100
#define FLOOD_END_MS 1000
#define BODY_MIN_RATE 500        /* bytes a second a body must average, beside request_timeout_s (net.h) */
#define REPORT_MS 10000          /* refusals and timeouts are logged at most this often */

enum { S_TLS, S_HEAD, S_BODY, S_WAIT, S_SEND, S_SKIP, S_LINGER, S_CLOSED };

/* What net counts (net_stats) and logs (report). */
enum { EV_FULL, EV_CROWDED, EV_STARVED, EV_LATE, EV__COUNT };

struct worker;

struct net_conn {
    struct worker *w;
    int fd;
    int state;
    gnutls_session_t tls;
    char peer[INET6_ADDRSTRLEN];
    uint32_t addr;                  /* counted in net.peers (IPv4, network order); 0: not counted */
    int64_t active_ms;              /* last progress, for the idle timeout */
    int64_t begun_ms;               /* when the request's head began to come, then its body (net.h: timeouts) */
    int64_t got;                    /* body bytes come since begun_ms, read or skipped */
    struct net_conn *prev, *next;   /* the worker's connections */
    struct net_conn *qnext;         /* the worker's resume queue, or its dead list */
    struct net_conn *up, *down;     /* on the worker's ready stack (stacked): newer, older */
    int64_t ready_ms;               /* when it went on the stack */
    int stacked, overdue;
    int held;                       /* refused for overload: the next request goes on the stack (net_hold) */

    char *in;                       /* the current request's head, then what followed it */
    size_t in_len, in_cap, in_off;  /* in[0, in_off) belongs to the current request */
    struct h1_req h;
    void *ctx;                      /* the server's, from head until done */
    int answered, suspended, close_after, keep, drain_first;
    int no_body;                    /* a HEAD: the answer's head alone, its Content-Length the body's */
    int rd_more, rd_hup;            /* the socket may hold unread bytes; the peer has shut its side */
    int status;
    char extra[160];

    char *body;
    size_t body_len, body_alloc;
    size_t cap;
    int64_t body_left;              /* Content-Length bytes still to read */
    struct h1_chunked ch;
    int64_t skip_left;
    size_t lingered;

    char out[512];                  /* status line and headers */
    size_t out_len;
    const char *out_body;
    size_t out_body_len, sent;
};

struct pending_fd {
    struct pending_fd *next;
    int fd;
    char peer[INET6_ADDRSTRLEN];
};

struct worker {
    struct net *n;
    pthread_t th;
    int started;
    int ep, evfd;
    int deaf;                       /* not listening: out of descriptors (refuse_starved), until the next sweep */
    struct net_conn *conns, *dead;
    struct net_conn *newest, *oldest;   /* the ready stack (net.h) */
    int64_t batch_ms;               /* when the current batch of events came */
    int flood;                      /* net.flood, as of flood_at */
    int64_t flood_at;
    int64_t differs_at;             /* since when ops.flood has said otherwise; 0: it agrees */
    int nstacked;                   /* on the ready stack */
    int fresh;                      /* requests read at once in this batch of events */
    atomic_int waiting;             /* nstacked + fresh as of the last flood_check, for the others */
    pthread_mutex_t mu;             /* the three fields below */
    struct net_conn *rq, *rq_tail;  /* resumed, to answer */
    struct pending_fd *adds;        /* from net_add */
    atomic_int queued;              /* rq or adds are not empty: looked at between events */
    int stopping;
    char date[40];
    time_t date_at;
};

struct net {
    struct net_ops ops;
    struct net_opts o;
    int lfd;
    int nworkers;
    struct worker *w;
    atomic_int conns;
    atomic_int flood;               /* a flood (flood_check) */
    _Atomic int64_t flood_from;     /* ... since then */
    atomic_uint rr;
    _Atomic uint64_t events[EV__COUNT];     /* since the start (net_stats) */
    _Atomic uint64_t reported[EV__COUNT];   /* ... as of the last report: the rest is not logged yet */
    atomic_uint crowded_addr;       /* the last address refused at max_per_address */
    struct peers *peers;            /* connections open per address */
    atomic_int spare;               /* a descriptor held back to take, and close, one that cannot be had */
    _Atomic int64_t reported_ms;    /* when they were last logged */
    int tls;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* ---- I/O: plain or TLS ----------------------------------------------------- */

/* > 0 bytes, 0 end of stream, -1 would block, -2 failed. */
static ssize_t io_recv(struct net_conn *c, void *buf, size_t n)
{
    if (c->tls) {
        ssize_t r = gnutls_record_recv(c->tls, buf, n);
        if (r >= 0)
            return r;
        return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ? -1 : -2;
    }
    if (!c->rd_more)
        return -1;
    for (;;) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r > 0 && (size_t)r < n && !c->rd_hup)
            c->rd_more = 0;
        if (r >= 0)
            return r;
        if (errno != EINTR) {
            c->rd_more = 0;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
        }
    }
}

/* Writes what is left of the answer: 1 when all of it is out, 0 would block, -1 failed. */
static int io_flush(struct net_conn *c)
{
    size_t total = c->out_len + c->out_body_len;
    while (c->sent < total) {
        ssize_t r;
        if (c->tls) {
            const char *p = c->sent < c->out_len ? c->out + c->sent : c->out_body + (c->sent - c->out_len);
            size_t n = c->sent < c->out_len ? c->out_len - c->sent : total - c->sent;
            r = gnutls_record_send(c->tls, p, n);
            if (r < 0)
                return r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ? 0 : -1;
        } else {
            struct iovec iov[2];
            int k = 0;
            if (c->sent < c->out_len)
                iov[k++] = (struct iovec){c->out + c->sent, c->out_len - c->sent};
            size_t boff = c->sent > c->out_len ? c->sent - c->out_len : 0;
            if (c->out_body_len > boff)
                iov[k++] = (struct iovec){(char *)c->out_body + boff, c->out_body_len - boff};
            struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)k};
            r = sendmsg(c->fd, &m, MSG_NOSIGNAL);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
            }
        }
        c->sent += (size_t)r;
    }
    return 1;
}

/* ---- connections ----------------------------------------------------------- */

static void unstack(struct net_conn *c)
{
    struct worker *w = c->w;
    w->nstacked--;
    if (c->up)
        c->up->down = c->down;
    else
        w->newest = c->down;
    if (c->down)
        c->down->up = c->up;
    else
        w->oldest = c->up;
    c->up = c->down = NULL;
    c->stacked = 0;
}

static void conn_close(struct net_conn *c)
{
    if (c->state == S_CLOSED)
        return;
    struct worker *w = c->w;
    if (c->stacked)
        unstack(c);
    if (c->ctx && !c->suspended) {
        w->n->ops.done(w->n->ops.cls, c->ctx);
        c->ctx = NULL;
    }
    c->state = S_CLOSED;
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->qnext = w->dead;
    w->dead = c;
    peers_give(w->n->peers, c->addr);
    atomic_fetch_sub(&w->n->conns, 1);
}

static void conn_free(struct net_conn *c)
{
    if (c->tls)
        gnutls_deinit(c->tls);
    free(c->in);
    free(c->body);
    free(c);
}

/* Logs the refusals and timeouts not logged yet, unless that was done less
 * than REPORT_MS ago: an operator sees them, and a flood of them is not a
 * flood of lines. Any worker. */
static void report(struct net *n, int64_t now)
{
    int64_t last = atomic_load_explicit(&n->reported_ms, memory_order_relaxed);
    int news = 0;
    for (int i = 0; i < EV__COUNT; i++)
        news |= atomic_load(&n->events[i]) != atomic_load(&n->reported[i]);
    if ((last && now - last < REPORT_MS) || !news || !atomic_compare_exchange_strong(&n->reported_ms, &last, now))
        return;
    long long fresh[EV__COUNT];   /* since the last report */
    for (int i = 0; i < EV__COUNT; i++) {
        uint64_t seen = atomic_load(&n->events[i]);
        fresh[i] = (long long)(seen - atomic_exchange(&n->reported[i], seen));
    }
    long long refused = fresh[EV_FULL], crowded = fresh[EV_CROWDED], starved = fresh[EV_STARVED], late = fresh[EV_LATE];
    if (starved)
        log_warn("http: refused %lld connection%s: out of file descriptors (%s)", starved, starved == 1 ? "" : "s",
                 "raise the process's open files limit, or lower max_connections");
    if (refused)
        log_warn("http: refused %lld connection%s: max_connections (%d) are open", refused, refused == 1 ? "" : "s",
                 n->o.max_connections);
    if (crowded) {
        char a[INET_ADDRSTRLEN] = "?";
        uint32_t who = atomic_load(&n->crowded_addr);
        inet_ntop(AF_INET, &who, a, sizeof a);
        log_warn("http: refused %lld connection%s: max_connections_per_address (%d) were open from one address (last: %s)",
                 crowded, crowded == 1 ? "" : "s", n->o.max_per_address, a);
    }
    if (late)
        log_warn("http: %lld requests did not arrive in time (request_timeout %d s, bodies at %d B/s): 408",
                 late, n->o.request_timeout_s, BODY_MIN_RATE);
}

static void conn_new(struct worker *w, int fd, const char *peer)
{
    struct net *n = w->n;
    if (atomic_fetch_add(&n->conns, 1) >= n->o.max_connections) {
        atomic_fetch_add(&n->events[EV_FULL], 1);   /* counted before the client can see it */
        atomic_fetch_sub(&n->conns, 1);
        close(fd);
        report(n, now_ms());
        return;
    }
    uint32_t addr = 0;
    if (inet_pton(AF_INET, peer, &addr) != 1)
        addr = 0;
    if (peers_take(n->peers, addr, n->o.max_per_address)) {
        atomic_store(&n->crowded_addr, addr);
        atomic_fetch_add(&n->events[EV_CROWDED], 1);
        atomic_fetch_sub(&n->conns, 1);
        close(fd);
        report(n, now_ms());
        return;
    }
    struct net_conn *c = calloc(1, sizeof *c);
    if (!c || !(c->in = malloc(IN_FIRST))) {
        free(c);
        peers_give(n->peers, addr);
        atomic_fetch_sub(&n->conns, 1);
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->addr = addr;
    c->in_cap = IN_FIRST;
    c->state = S_HEAD;
    c->rd_more = 1;
    c->active_ms = now_ms();
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* fails on socketpairs: harmless */
    if (n->tls) {
        if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) ||
            gnutls_priority_set(c->tls, n->prio) ||
            gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, n->cred)) {
            if (c->tls)
                gnutls_deinit(c->tls);
            free(c->in);
            free(c);
            peers_give(n->peers, addr);
            atomic_fetch_sub(&n->conns, 1);
            close(fd);
            return;
        }
        gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
        gnutls_transport_set_int(c->tls, fd);
        c->state = S_TLS;
    }
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev))
        conn_close(c);
    /* the first event reports what is already readable */
}

static void date_refresh(struct worker *w)
{
    time_t t = time(NULL);
    if (t == w->date_at)
        return;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    w->date_at = t;
}

void net_answer(struct net_conn *c, int status, const char *extra, const char *body, size_t len)
{
    size_t n = extra ? strlen(extra) : 0;
    if (n >= sizeof c->extra)
        abort();   /* the extra lines are the server's own, a few short ones */
    memcpy(c->extra, extra ? extra : "", n + 1);
    c->status = status;
    c->out_len = 0;   /* the head is written when sending starts, once keep is known */
    c->out_body = body;
    c->out_body_len = len;
    c->sent = 0;
    c->answered = 1;
    c->state = S_SEND;
}

/* Appends s at o, within end; returns the new end of what is written. */
static char *put(char *o, const char *end, const char *s)
{
    size_t n = strlen(s);
    if (n > (size_t)(end - o))
        n = (size_t)(end - o);
    memcpy(o, s, n);
    return o + n;
}

static char *put_int(char *o, const char *end, int64_t v)
{
    char buf[TEXT_INT_MAX];
    return put(o, end, text_int(buf, v));
}

/* Whether the request head at p (parsed or not, whole or not) is a HEAD:
 * whatever its answer, it has no body (RFC 9110 9.3.2), or the next answer
 * on the connection would be read as that body. */
static int is_head(const char *p, size_t n)
{
    while (n && (*p == '\r' || *p == '\n'))   /* as h1_parse skips them */
        p++, n--;
    return n > 4 && !memcmp(p, "HEAD", 4) && (p[4] == ' ' || !p[4]);
}

/* The status line and headers of the answer, as sending begins. */
static void format_answer(struct net_conn *c)
{
    struct worker *w = c->w;
    c->keep = c->h.keep_alive && !c->close_after;
    pthread_mutex_lock(&w->mu);
    if (w->stopping)
        c->keep = 0;
    pthread_mutex_unlock(&w->mu);
    date_refresh(w);
    /* By piece, not snprintf, and with a cursor: this runs for every answer. */
    char *o = c->out;
    const char *end = c->out + sizeof c->out - 1;
    o = put(o, end, "HTTP/1.1 ");
    o = put_int(o, end, c->status);
    o = put(o, end, " ");
    o = put(o, end, reason(c->status));
    o = put(o, end, "\r\nDate: ");
    o = put(o, end, w->date);
    o = put(o, end, c->extra[0] && strstr(c->extra, "Content-Type:") ? "\r\nContent-Length: "
                                                                     : "\r\nContent-Type: application/json; "
                                                                       "charset=utf-8\r\nContent-Length: ");
    o = put_int(o, end, (int64_t)c->out_body_len);
    if (c->no_body)
        c->out_body_len = 0;
    o = put(o, end, "\r\n");
    o = put(o, end, c->extra);
    o = put(o, end, !c->keep ? "Connection: close\r\n" : c->h.minor == 0 ? "Connection: keep-alive\r\n" : "");
    o = put(o, end, "\r\n");
    if (o >= end)
        abort();   /* the buffer holds the longest head with room to spare */
    *o = 0;
    c->out_len = (size_t)(o - c->out);
}

void net_suspend(struct net_conn *c) { c->suspended = 1; }

const char *net_peer(const struct net_conn *c) { return c->peer; }

int net_overdue(const struct net_conn *c) { return c->overdue; }
void net_hold(struct net_conn *c) { c->held = c->w->n->o.park_ms > 0; }

/* Wakes the worker up (its eventfd): something waits in its queues. */
static void kick(struct worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof one);
    (void)r;   /* a full counter wakes it all the same */
}

void net_resume(struct net_conn *c)
{
    struct worker *w = c->w;
    pthread_mutex_lock(&w->mu);
    int wake = !w->rq && !w->adds;
    c->qnext = NULL;
    if (w->rq_tail)
        w->rq_tail->qnext = c;
    else
        w->rq = c;
    w->rq_tail = c;
    atomic_store_explicit(&w->queued, 1, memory_order_relaxed);
    pthread_mutex_unlock(&w->mu);
    if (wake)
        kick(w);
}

/* An answer net gives itself, with no request of the server's behind it. */
static void refuse(struct net_conn *c, int status)
{
    struct net *n = c->w->n;
    const char *b = n->ops.refusal(n->ops.cls, status);
    c->close_after = 1;
    metrics_answered(-1, status, (now_ms() - c->begun_ms) * 1000);   /* an answer, with no route: "none" */
    net_answer(c, status, NULL, b, strlen(b));
}

/* The server held the request; it must have answered or suspended it. */
static void after_server(struct net_conn *c)
{
    if (c->answered || c->suspended)
        return;
    log_error("http: a request was neither answered nor suspended");
    refuse(c, 500);
}

static void deliver(struct net_conn *c)
{
    struct net *n = c->w->n;
    c->body[c->body_len] = 0;
    c->state = S_WAIT;
    n->ops.body(n->ops.cls, c->ctx, c->body, c->body_len, 0);
    after_server(c);
}

static void too_large(struct net_conn *c)
{
    struct net *n = c->w->n;
    c->close_after = 1;
    c->state = S_WAIT;
    n->ops.body(n->ops.cls, c->ctx, NULL, 0, 1);
    after_server(c);
}

/* Best effort: a client that waits for it sends the body after this. */
static void send_continue(struct net_conn *c)
{
    static const char k[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->tls)
        gnutls_record_send(c->tls, k, sizeof k - 1);
    else if (send(c->fd, k, sizeof k - 1, MSG_NOSIGNAL) < 0)
        return;
}

static void start_request(struct net_conn *c, size_t head_len)
{
    struct net *n = c->w->n;
    c->in_off = head_len;
    c->answered = c->suspended = c->close_after = c->drain_first = 0;
    c->body_len = 0;
    c->ch = (struct h1_chunked){0};
    c->skip_left = 0;
    c->begun_ms = c->active_ms;   /* the body's time, if it has one, runs from the head's last read */
    c->got = (int64_t)(c->in_len - head_len);
    size_t cap = 0;
    c->ctx = n->ops.head(n->ops.cls, c, &c->h, &cap);
    if (!c->ctx) {
        refuse(c, 503);
        return;
    }
    if (c->answered) {   /* answered from the head alone: what of the body? */
        int64_t cl = c->h.content_length;
        /* A client waiting for 100 that gets a final answer may send its body or
         * not: only a body already begun can be skipped. */
        int unsent = c->h.expect_continue && cl > 0 && c->in_len == c->in_off;
        if (c->h.chunked || unsent || cl > (int64_t)(cap > SKIP_MAX ? cap : SKIP_MAX)) {
            c->close_after = 1;   /* answered, then a lingering close */
        } else if (cl > 0) {
            /* Skipped after the answer; a long one (an import refused under load)
             * before it, since a client that sends its whole body before reading
             * would meet a closed connection instead of the answer. */
            c->skip_left = cl;
            c->drain_first = cl > SKIP_MAX;
            if (c->drain_first)
                c->state = S_SKIP;
        }
        return;
    }
    c->cap = cap;
    if (c->h.content_length > (int64_t)cap) {
        too_large(c);
        return;
    }
    size_t want = c->h.chunked ? (cap < 4096 ? cap : 4096) : (size_t)(c->h.content_length > 0 ? c->h.content_length : 0);
    if (want + 1 > c->body_alloc) {
        char *b = realloc(c->body, want + 1);
        if (!b) {
            refuse(c, 503);
            return;
        }
        c->body = b;
        c->body_alloc = want + 1;
    }
    if (!c->h.chunked && c->h.content_length <= 0) {
        deliver(c);
        return;
    }
    c->body_left = c->h.chunked ? 0 : c->h.content_length;
    if (c->h.expect_continue && c->in_len == c->in_off)
        send_continue(c);
    c->state = S_BODY;
}

/* Decodes chunked input src[0..n) onto the body, at most one byte past the
 * cap (which tells that the body is too large). *used: input consumed.
 * 0, -1 malformed, -2 past the cap. */
static int chunked_take(struct net_conn *c, const char *src, size_t n, size_t *used)
{
    size_t room = c->cap + 1 - c->body_len;   /* body_len <= cap here: room >= 1, so progress */
    if (n > room)
        n = room;
    if (c->body_len + n + 1 > c->body_alloc) {
        size_t want = c->body_alloc * 2 > c->body_len + n + 1 ? c->body_alloc * 2 : c->body_len + n + 1;
        if (want > c->cap + 2)
            want = c->cap + 2;
        char *b = realloc(c->body, want);
        if (!b)
            return -2;
        c->body = b;
        c->body_alloc = want;
    }
    size_t out = 0;
    long u = h1_chunked(&c->ch, src, n, c->body + c->body_len, &out);
    if (u < 0)
        return -1;
    c->body_len += out;
    *used = (size_t)u;
    return c->body_len > c->cap ? -2 : 0;
}

/* Chunked input src[0..n): 0 when all of it was taken (or the body ended and
 * the rest, the next request, went to c->in); else the body is refused. */
static int chunked_feed(struct net_conn *c, const char *src, size_t n, int from_in)
{
    size_t off = 0;
    while (off < n && !h1_chunked_done(&c->ch)) {
        size_t used = 0;
        int rc = chunked_take(c, src + off, n - off, &used);
        if (rc == -2) {
            too_large(c);
            return -1;
        }
        if (rc) {
            refuse(c, 400);
            return -1;
        }
        off += used;
    }
    if (from_in) {
        c->in_off += off;
        return 0;
    }
    if (off < n) {   /* the next request began: keep its bytes in c->in */
        size_t rest = n - off;
        if (c->in_len + rest > c->in_cap) {
            char *b = realloc(c->in, c->in_len + rest);
            if (!b) {
                conn_close(c);
                return -1;
            }
            c->in = b;
            c->in_cap = c->in_len + rest;
        }
        memcpy(c->in + c->in_len, src + off, rest);
        c->in_off = c->in_len;   /* the body took all of c->in before: what follows is the next request's */
        c->in_len += rest;
    }
    return 0;
}

/* 1: wait for the socket; 0: the state moved on. */
static int body_step(struct net_conn *c)
{
    if (!c->h.chunked) {
        size_t avail = c->in_len - c->in_off, take = avail < (size_t)c->body_left ? avail : (size_t)c->body_left;
        memcpy(c->body + c->body_len, c->in + c->in_off, take);
        c->in_off += take;
        c->body_len += take;
        c->body_left -= (int64_t)take;
        while (c->body_left > 0) {
            ssize_t r = io_recv(c, c->body + c->body_len, (size_t)c->body_left);
            if (r == -1)
                return 1;
            if (r <= 0) {
                conn_close(c);
                return 0;
            }
            c->body_len += (size_t)r;
            c->body_left -= r;
            c->got += r;
        }
        deliver(c);
        return 0;
    }
    if (c->in_off < c->in_len && chunked_feed(c, c->in + c->in_off, c->in_len - c->in_off, 1))
        return 0;
    char buf[READ_CHUNK];
    while (!h1_chunked_done(&c->ch)) {
        ssize_t r = io_recv(c, buf, sizeof buf);
        if (r == -1)
            return 1;
        if (r <= 0) {
            conn_close(c);
            return 0;
        }
        c->got += r;
        if (chunked_feed(c, buf, (size_t)r, 0))
            return 0;
    }
    deliver(c);
    return 0;
}

static void linger_start(struct net_conn *c)
{
    if (c->tls)
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
    shutdown(c->fd, SHUT_WR);
    c->state = S_LINGER;
    c->lingered = 0;
    c->active_ms = now_ms();
}

/* The answer is out: the request is over. */
static void finish_request(struct net_conn *c)
{
    struct net *n = c->w->n;
    if (c->ctx) {
        n->ops.done(n->ops.cls, c->ctx);
        c->ctx = NULL;
    }
    if (c->body_alloc > READ_CHUNK + 1) {   /* a large body's buffer is not kept for the next */
        free(c->body);
        c->body = NULL;
        c->body_alloc = 0;
    }
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
    c->begun_ms = c->active_ms;   /* the next request, pipelined, or the body skipped after the answer */
    c->got = 0;
    if (!c->keep)
        linger_start(c);
    else
        c->state = c->skip_left ? S_SKIP : S_HEAD;
}

static void conn_run(struct net_conn *c)
{
    struct net *n = c->w->n;
    char scratch[4096];
    for (;;) {
        switch (c->state) {
        case S_TLS: {
            int r = gnutls_handshake(c->tls);
            if (r == GNUTLS_E_SUCCESS) {
                c->state = S_HEAD;
                break;
            }
            if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
                return;
            if (gnutls_error_is_fatal(r)) {
                conn_close(c);
                return;
            }
            break;
        }
        case S_HEAD: {
            if (c->in_len) {
                int r = h1_parse(&c->h, c->in, c->in_len, n->o.head_max);
                c->no_body = is_head(c->in, c->in_len);   /* refused as malformed too */
                if (r > 0) {
                    start_request(c, (size_t)r);
                    break;
                }
                if (r < 0) {
                    memset(&c->h, 0, sizeof c->h);
                    refuse(c, -r);
                    break;
                }
            }
            if (c->in_len == c->in_cap) {
                size_t want = c->in_cap * 2 > n->o.head_max ? n->o.head_max : c->in_cap * 2;
                char *b = want > c->in_cap ? realloc(c->in, want) : NULL;
                if (!b) {
                    refuse(c, 431);
                    break;
                }
                c->in = b;
                c->in_cap = want;
            }
            ssize_t r = io_recv(c, c->in + c->in_len, c->in_cap - c->in_len);
            if (r == -1)
                return;
            if (r <= 0) {
                conn_close(c);   /* the client is done: the usual end of a keep-alive connection */
                return;
            }
            int64_t now = now_ms();
            if (!c->in_len)
                c->begun_ms = now;   /* the head's time runs from its first byte (net.h) */
            c->in_len += (size_t)r;
            c->active_ms = now;
            break;
        }
        case S_BODY:
            if (body_step(c))
                return;
            c->active_ms = now_ms();
            break;
        case S_WAIT:
            return;
        case S_SEND: {
            if (!c->out_len)
                format_answer(c);
            int r = io_flush(c);
            if (r == 0)
                return;
            if (r < 0) {
                conn_close(c);
                return;
            }
            c->active_ms = now_ms();
            finish_request(c);
            break;
        }
        case S_SKIP: {
            size_t avail = c->in_len - c->in_off;
            size_t take = avail < (size_t)c->skip_left ? avail : (size_t)c->skip_left;
            c->in_off += take;
            c->skip_left -= (int64_t)take;
            if (!c->drain_first) {   /* the request is over: nothing before in_off is needed */
                memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
                c->in_len -= c->in_off;
                c->in_off = 0;
            }   /* else c->in still holds the head, until finish_request */
            while (c->skip_left > 0) {
                size_t want = (size_t)c->skip_left < sizeof scratch ? (size_t)c->skip_left : sizeof scratch;
                ssize_t r = io_recv(c, scratch, want);
                if (r == -1)
                    return;
                if (r <= 0) {
                    conn_close(c);
                    return;
                }
                c->skip_left -= r;
                c->got += r;
                c->active_ms = now_ms();
            }
            c->state = c->drain_first ? S_SEND : S_HEAD;
            c->drain_first = 0;
            c->begun_ms = c->active_ms;   /* what c->in holds now is the next request's */
            break;
        }
        case S_LINGER:
            for (;;) {
                ssize_t r = io_recv(c, scratch, sizeof scratch);
                if (r == -1)
                    return;
                if (r <= 0 || (c->lingered += (size_t)r) > LINGER_MAX) {
                    conn_close(c);
                    return;
                }
            }
        case S_CLOSED:
            return;
        }
    }
}

/* Whether the client of a connection that reported its end has gone with
 * nothing sent: no byte is left to read, or the socket failed. (A client
 * may shut its side after a request and still wait for the answer.) */
static int gone(struct net_conn *c)
{
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* What epoll reported for connection c. In a flood, or after c was refused
 * for overload (net_hold), a new request goes on the ready stack; the worker
 * reads it from there (drain). */
static void conn_event(struct net_conn *c, uint32_t events)
{
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rd_hup = 1;
    int readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (readable)
        c->rd_more = 1;
    struct worker *w = c->w;
    if (c->rd_hup && (c->stacked || w->flood || c->held) && c->state == S_HEAD && !c->in_len && gone(c)) {
        conn_close(c);   /* parked, or about to be, with no request: it would hold its place for refuse_ms */
        return;
    }
    if (c->stacked)
        return;
    if (readable && (w->flood || c->held) && c->state == S_HEAD && !c->in_len) {
        c->ready_ms = c->active_ms = w->batch_ms;
        c->up = NULL;
        c->down = w->newest;
        if (w->newest)
            w->newest->up = c;
        else
            w->oldest = c;
        w->newest = c;
        c->stacked = 1;
        w->nstacked++;
        return;
    }
    w->fresh += readable && c->state == S_HEAD && !c->in_len;
    conn_run(c);
}

static void wakeup(struct worker *w);

/* Reads one request off the ready stack. */
static void unstack_run(struct net_conn *c, int overdue)
{
    unstack(c);
    c->held = 0;   /* until the server refuses this one too */
    c->overdue = overdue;
    conn_run(c);
    c->overdue = 0;
}

/* Whether this is a flood, asked at most once a millisecond, counting what
 * waits: on every worker's stack, and what each read at once in its last
 * batch of events (a batch holds what piled up while the one before ran).
 * A flood begins once ops.flood has said so for FLOOD_BEGIN_MS on end, so
 * that a client pool opening (a closed loop starting, its throughput not
 * shown yet) is not one; it ends once ops.flood has said otherwise for
 * FLOOD_END_MS, so that the dip as the commands read before it complete
 * does not end it. */
static void flood_check(struct worker *w)
{
    struct net *n = w->n;
    if (!n->o.park_ms || !n->ops.flood || w->flood_at == w->batch_ms)
        return;
    w->flood_at = w->batch_ms;
    atomic_store_explicit(&w->waiting, w->nstacked + w->fresh, memory_order_relaxed);
    int waiting = 0;
    for (int i = 0; i < n->nworkers; i++)
        waiting += atomic_load_explicit(&n->w[i].waiting, memory_order_relaxed);
    int on = atomic_load(&n->flood);
    if (n->ops.flood(n->ops.cls, waiting, on) == on)
        w->differs_at = 0;
    else if (!w->differs_at)
        w->differs_at = w->batch_ms;
    else if (w->batch_ms - w->differs_at >= (on ? FLOOD_END_MS : FLOOD_BEGIN_MS) &&
             atomic_compare_exchange_strong(&n->flood, &on, !on)) {
        w->differs_at = 0;
        if (!on) {
            atomic_store_explicit(&n->flood_from, w->batch_ms, memory_order_relaxed);
            log_warn("http: a flood (%d requests waiting): the newest are read first, the oldest parked", waiting);
        } else {
            int64_t from = atomic_load_explicit(&n->flood_from, memory_order_relaxed);
            log_info("http: the flood is over after %lld ms", (long long)(w->batch_ms - from));
        }
    }
    w->flood = atomic_load(&n->flood);
}

/* After a batch of events, while the stack holds requests. First, whatever
 * waited refuse_ms is read to be refused. Then, in a flood, the newest while
 * the server has room and none that waited park_ms (those stay: parked);
 * once the flood is over, all of them, oldest first, except the requests of
 * held connections (net_hold), which are met as in a flood. Answered
 * commands go out between the reads, as between events. */
static void drain(struct worker *w)
{
    struct net *n = w->n;
    int64_t now = now_ms();
    for (struct net_conn *c; (c = w->oldest) && now - c->ready_ms >= n->o.refuse_ms;) {
        if (atomic_load_explicit(&w->queued, memory_order_relaxed))
            wakeup(w);
        unstack_run(c, 1);
    }
    if (!w->flood)   /* what a flood left: oldest first */
        for (struct net_conn *c = w->oldest, *up; c; c = up) {
            up = c->up;
            if (c->held)
                continue;
            if (atomic_load_explicit(&w->queued, memory_order_relaxed))
                wakeup(w);
            unstack_run(c, 0);
        }
    for (struct net_conn *c; (c = w->newest) && now - c->ready_ms <= n->o.park_ms;) {
        if (atomic_load_explicit(&w->queued, memory_order_relaxed))
            wakeup(w);
        if (n->ops.full && n->ops.full(n->ops.cls))
            break;
        unstack_run(c, 0);
    }
}

/* ---- workers --------------------------------------------------------------- */

static int hand_over(struct worker *w, int fd, const char *peer);
static struct worker *next_worker(struct net *n);

/* Out of descriptors, a waiting connection would stay in the backlog and
 * the listening socket readable: every worker would wake for it at once,
 * again and again. The spare descriptor makes room to take it and close
 * it, so the client is refused. When there is no spare (another thread took
 * the descriptor it freed), the worker stops listening until its next
 * second's sweep (resume_accepting). */
static void refuse_starved(struct worker *w)
{
    struct net *n = w->n;
    int spare = atomic_exchange(&n->spare, -1);
    if (spare >= 0) {
        close(spare);
        int fd = accept4(n->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
        atomic_store(&n->spare, spare);
    }
    if (spare < 0 && !w->deaf && !epoll_ctl(w->ep, EPOLL_CTL_DEL, n->lfd, NULL))
        w->deaf = 1;
    atomic_fetch_add(&n->events[EV_STARVED], 1);
    report(n, now_ms());
}

static void resume_accepting(struct worker *w)
{
    struct net *n = w->n;
    int spare = atomic_load(&n->spare);
    if (spare < 0 && (spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
        int none = -1;
        if (!atomic_compare_exchange_strong(&n->spare, &none, spare))
            close(spare);
    }
    struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &n->lfd};
    if (!epoll_ctl(w->ep, EPOLL_CTL_ADD, n->lfd, &lev))
        w->deaf = 0;
}

static void accept_some(struct worker *w)
{
    struct net *n = w->n;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(n->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                refuse_starved(w);
            return;
        }
        char peer[INET6_ADDRSTRLEN] = "?";
        if (sa.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, peer, sizeof peer);
        else if (sa.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, peer, sizeof peer);
        /* Round robin, whoever accepted: a burst of connections (a client
         * pool opening) would otherwise all land on the worker that woke. */
        struct worker *to = next_worker(n);
        if (to == w || hand_over(to, fd, peer))
            conn_new(w, fd, peer);
    }
}

/* Connections handed over and requests resumed since the last wake-up. */
static void wakeup(struct worker *w)
{
    struct net *n = w->n;
    uint64_t v;
    ssize_t r = read(w->evfd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&w->mu);
    struct net_conn *q = w->rq;
    struct pending_fd *adds = w->adds;
    w->rq = w->rq_tail = NULL;
    w->adds = NULL;
    atomic_store_explicit(&w->queued, 0, memory_order_relaxed);
    pthread_mutex_unlock(&w->mu);
    while (adds) {
        struct pending_fd *p = adds;
        adds = p->next;
        conn_new(w, p->fd, p->peer);
        free(p);
    }
    while (q) {
        struct net_conn *c = q;
        q = c->qnext;
        c->suspended = 0;
        n->ops.resumed(n->ops.cls, c->ctx);
        after_server(c);
        c->active_ms = now_ms();
        conn_run(c);
    }
}

/* A request that did not arrive in time (net.h): 408 and a lingering close,
 * or the answer given before a body being skipped ahead of it; a body skipped
 * after its answer, the lingering close alone. */
static void request_late(struct net_conn *c)
{
    atomic_fetch_add(&c->w->n->events[EV_LATE], 1);
    if (c->state == S_SKIP && !c->drain_first) {
        linger_start(c);
        return;
    }
    if (c->state == S_SKIP) {
        c->drain_first = 0;
        c->skip_left = 0;
        c->close_after = 1;
        c->state = S_SEND;
    } else {
        if (c->state == S_HEAD)
            memset(&c->h, 0, sizeof c->h);   /* the last request's */
        refuse(c, 408);
    }
    conn_run(c);
}

/* Once a second: idle connections go, requests not come in time, and
 * lingering connections. */
static void timeouts(struct worker *w, int64_t now)
{
    struct net *n = w->n;
    int64_t idle = (int64_t)n->o.timeout_s * 1000, allowed = (int64_t)n->o.request_timeout_s * 1000;
    for (struct net_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        switch (c->state) {
        case S_WAIT:
            continue;   /* its command runs: the engine answers it */
        case S_HEAD:
            if (!c->in_len)
                break;
            if (now - c->begun_ms > allowed)
                request_late(c);
            continue;
        case S_BODY:
        case S_SKIP:
            if (now - c->begun_ms > allowed + c->got * 1000 / BODY_MIN_RATE)
                request_late(c);
            continue;
        }
        if (now - c->active_ms > (c->state == S_LINGER ? LINGER_MS : idle))
            conn_close(c);
    }
    report(n, now);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct net *n = w->n;
    pthread_setname_np(pthread_self(), "topupd-http");
    struct epoll_event ev[EVENTS];
    int64_t swept = now_ms();
    for (;;) {
        /* a request on the stack is looked at every millisecond: room may come
         * from another worker's answers, and a parked one must be refused on
         * time; so is a flood about to begin or end */
        int k = epoll_wait(w->ep, ev, EVENTS, w->newest || w->differs_at ? 1 : 1000);
        w->batch_ms = now_ms();
        w->fresh = 0;
        for (int i = 0; i < k; i++) {
            /* An answered command goes out before more requests are read:
             * under a flood, a batch of events is milliseconds of work. */
            if (atomic_load_explicit(&w->queued, memory_order_relaxed))
                wakeup(w);
            void *p = ev[i].data.ptr;
            if (p == &n->lfd)
                accept_some(w);
            else if (p == w)
                wakeup(w);
            else
                conn_event(p, ev[i].events);
        }
        flood_check(w);
        if (w->newest)
            drain(w);
        int64_t now = now_ms();
        if (now - swept >= 1000) {
            timeouts(w, now);
            if (w->deaf)
                resume_accepting(w);
            swept = now;
        }
        while (w->dead) {
            struct net_conn *c = w->dead;
            w->dead = c->qnext;
            conn_free(c);
        }
        pthread_mutex_lock(&w->mu);
        int stop = w->stopping && !w->rq && !w->adds;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
    }
    while (w->conns) {
        struct net_conn *c = w->conns;
        if (c->suspended) {   /* never: net_stop comes after the engine answered everything */
            log_error("http: a connection still waits for its command at shutdown");
            c->suspended = 0;
            c->ctx = NULL;
        }
        conn_close(c);
    }
    while (w->dead) {
        struct net_conn *c = w->dead;
        w->dead = c->qnext;
        conn_free(c);
    }
    return NULL;
}

/* ---- start and stop -------------------------------------------------------- */

int net_parse_listen(const char *listen_addr, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(listen_addr, ':');
    if (!colon || (size_t)(colon - listen_addr) >= sizeof host)
        return -1;
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = 0;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return -1;
    sa->sin_port = htons((uint16_t)port);
    return 0;
}

static int listen_on(const char *listen_addr)
{
    struct sockaddr_in sa;
    if (net_parse_listen(listen_addr, &sa))
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 4096)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A connection is a descriptor: the soft limit on open files (1,024 on a
 * stock system) is raised toward the hard one, to max_connections and the
 * database's and the threads' own; if the hard one is lower, say so. */
static void room_for_connections(int max_connections)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)max_connections + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < want)
        log_warn("http: max_connections (%d) needs about %llu open files, and the limit is %llu: connections past "
                 "it are refused", max_connections, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
}

int net_start(struct net **out, const struct net_opts *o, const struct net_ops *ops)
{
    struct net *n = calloc(1, sizeof *n);
    *out = n;
    if (!n)
        return -1;
    n->ops = *ops;
    n->o = *o;
    n->lfd = -1;
    n->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (!(n->peers = peers_new((size_t)o->max_connections)))
        return -1;
    room_for_connections(o->max_connections);
    if (o->tls_cert) {
        gnutls_datum_t cert = {(unsigned char *)o->tls_cert, (unsigned)strlen(o->tls_cert)};
        gnutls_datum_t key = {(unsigned char *)o->tls_key, (unsigned)strlen(o->tls_key)};
        int rc = gnutls_certificate_allocate_credentials(&n->cred);
        if (rc >= 0)
            rc = gnutls_certificate_set_x509_key_mem(n->cred, &cert, &key, GNUTLS_X509_FMT_PEM);
        if (rc >= 0)
            rc = gnutls_priority_init(&n->prio, NULL, NULL);
        if (rc < 0) {   /* a key of another certificate, an encrypted key, no PEM at all... */
            log_error("http: the TLS certificate or key is not usable: %s", gnutls_strerror(rc));
            return -1;
        }
        n->tls = 1;
    }
    if (o->listen && (n->lfd = listen_on(o->listen)) < 0) {
        log_error("http: cannot listen on %s: %s", o->listen, strerror(errno));
        return -1;
    }
    n->w = calloc((size_t)o->threads, sizeof *n->w);
    if (!n->w)
        return -1;
    for (int i = 0; i < o->threads; i++) {
        struct worker *w = &n->w[i];
        w->n = n;
        pthread_mutex_init(&w->mu, NULL);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
    n->nworkers = o->threads;
    for (int i = 0; i < o->threads; i++) {
        struct worker *w = &n->w[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &n->lfd};
        if (w->ep < 0 || w->evfd < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->evfd, &ev) ||
            (n->lfd >= 0 && epoll_ctl(w->ep, EPOLL_CTL_ADD, n->lfd, &lev)) ||
            pthread_create(&w->th, NULL, worker_main, w)) {
            log_error("http: cannot start worker %d: %s", i, strerror(errno));
            return -1;
        }
        w->started = 1;
    }
    return 0;
}

/* Queues a connection for worker w to take in at its next wake-up. */
static int hand_over(struct worker *w, int fd, const char *peer)
{
    struct pending_fd *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->fd = fd;
    snprintf(p->peer, sizeof p->peer, "%s", peer);
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {   /* it may have taken in its last connection already: the caller keeps this one */
        pthread_mutex_unlock(&w->mu);
        free(p);
        return -1;
    }
    int wake = !w->rq && !w->adds;
    p->next = w->adds;
    w->adds = p;
    atomic_store_explicit(&w->queued, 1, memory_order_relaxed);
    pthread_mutex_unlock(&w->mu);
    if (wake)
        kick(w);
    return 0;
}

/* The worker the next connection goes to: round robin. */
static struct worker *next_worker(struct net *n)
{
    return &n->w[atomic_fetch_add(&n->rr, 1) % (unsigned)n->nworkers];
}

int net_add(struct net *n, int fd, const char *peer)
{
    int fl = fcntl(fd, F_GETFL);
    if (!n->nworkers || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK))
        return -1;
    return hand_over(next_worker(n), fd, peer);
}

void net_stop(struct net *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nworkers; i++) {
        struct worker *w = &n->w[i];
        pthread_mutex_lock(&w->mu);
        w->stopping = 1;
        pthread_mutex_unlock(&w->mu);
        if (w->evfd >= 0)
            kick(w);
    }
    for (int i = 0; i < n->nworkers; i++)   /* all of them first: one may hand a connection to another */
        if (n->w[i].started)
            pthread_join(n->w[i].th, NULL);
    for (int i = 0; i < n->nworkers; i++) {
        struct worker *w = &n->w[i];
        if (w->ep >= 0)
            close(w->ep);
        if (w->evfd >= 0)
            close(w->evfd);
        pthread_mutex_destroy(&w->mu);
    }
    if (n->lfd >= 0)
        close(n->lfd);
    if (n->spare >= 0)
        close(n->spare);
    if (n->tls) {
        gnutls_priority_deinit(n->prio);
        gnutls_certificate_free_credentials(n->cred);
    }
    peers_free(n->peers);
    free(n->w);
    free(n);
}

void net_stats(struct net *n, struct net_stats *out)
{
    *out = (struct net_stats){.open = atomic_load(&n->conns), .refused_full = atomic_load(&n->events[EV_FULL]),
                              .refused_address = atomic_load(&n->events[EV_CROWDED]),
                              .refused_no_fd = atomic_load(&n->events[EV_STARVED]),
                              .timed_out = atomic_load(&n->events[EV_LATE])};
}
