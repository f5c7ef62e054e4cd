/* net — topupd's HTTP/1.1 connections, on epoll.
 *
 * A few worker threads share one listening socket; each has its own epoll
 * set. Connections are dealt to the workers round robin, whichever accepted
 * them (a pool's burst of connections would otherwise land on one), and a
 * connection belongs to its worker from its first byte to its close. So
 * nothing about a connection is locked, but for its hand-over and the
 * hand-back of a suspended request (net_resume). The cost of a connection is
 * what it does, not how many others are open: a flood of 4,000 clients is
 * read and answered (or refused) as cheaply as 100.
 *
 * One request at a time per connection: a pipelined request is read only once
 * the one before it is answered. Every buffer has a cap: the head at head_max
 * (431 past it), the body at the cap the server sets per request (413 past
 * it), the answer is the server's. An answer decided before the body was
 * read keeps the connection when the body can be skipped: up to 1 MiB after
 * the answer, up to the request's cap before it (a client that sends its
 * whole body before reading would otherwise meet a closed connection), and
 * after Expect: 100-continue only once the body has begun to arrive (such a
 * client may never send it). Otherwise the connection closes after a
 * lingering read, so the client sees the answer rather than a reset.
 *
 * Timeouts. A connection idle between requests for timeout_s seconds is
 * closed without an answer (RFC 9112 9.5: the client may be sending a request
 * that would take the 408 for its own). A request must arrive in time, however
 * it trickles, or a client sending a byte now and then would hold its
 * connection, and max_connections of them every connection, for ever: its head
 * within request_timeout_s of its first byte, and its body (read, or skipped
 * after an early answer) within request_timeout_s of the head's end plus a
 * second per BODY_MIN_RATE (500) bytes come, so a client sending at 500 B/s or
 * more on average never meets it (Apache's mod_reqtimeout has the same rate;
 * 64 KiB of JSON may take 2 minutes). Past it the request is answered 408
 * request_timeout and the connection closes: the client learns that the request
 * was not acted on and may repeat it (a close alone reads as a network fault
 * after which a POST's fate is unknown); a body skipped after its answer ends in
 * the lingering close alone; one skipped before it gets that answer. The
 * deadlines are checked once a second, so they hold within a second. A request
 * waiting for its command has none.
 *
 * Connections. At most max_connections are open, and at most max_per_address
 * from one IPv4 address (peers.h), so that a client opening connections until
 * none are left locks out only itself; a connection past either is closed at
 * once, unanswered. Those refused and requests timed out are counted and logged
 * at most every 10 s.
 *
 * Under a flood, the newest request first (adaptive LIFO). Normally a
 * request is read as soon as epoll reports it. But in a flood (ops.flood:
 * more requests wait than the server answers in a while, counting those in
 * its hands and those epoll reported in the worker's last batch, which is
 * large enough to hold what waits), reading in that order would make every
 * request wait for all the others, longer as the flood goes on. Then a
 * connection whose next request begins to arrive goes on its worker's ready
 * stack unread, and after each batch of events the worker reads the newest
 * first, only while the server has room (ops.full), and none that has waited
 * park_ms: those are parked, unread and costing nothing. Whatever has waited
 * refuse_ms is read and refused (net_overdue: the server answers 503 and the
 * connection stays). So in a flood the requests served have waited at most
 * park_ms, and refusals come at most at connections / refuse_ms a second,
 * however hard the flood. A flood begins once ops.flood has said so for
 * 100 ms on end and ends once it has said otherwise for a second (net.c:
 * why); what is left on the stack then is read oldest first. park_ms 0:
 * never.
 *
 * A connection just refused for overload (net_hold) is met the same way,
 * flood or not: its next request goes on the stack, is read if the server
 * has room within park_ms and otherwise parked, and at refuse_ms read to be
 * refused. A client that comes back at once instead of after Retry-After is
 * then refused at most once per refuse_ms while there is no room: refusals
 * cannot become the load that keeps the machine overloaded (a closed loop of
 * clients that never wait, refused in microseconds, would otherwise resend
 * as fast as it is refused).
 *
 * TLS, when cert and key are given: GnuTLS, non-blocking, per connection.
 */
#pragma once
#include <stddef.h>

#include "http/h1.h"

struct net;
struct net_conn;

struct net_ops {
    void *cls;
    /* A request head arrived; h lives until done. Returns the request's
     * context (NULL: refused with 503) and sets *cap, the most body bytes it
     * takes. It may answer at once (net_answer): the body is then skipped. */
    void *(*head)(void *cls, struct net_conn *c, const struct h1_req *h, size_t *cap);
    /* The body (NUL-terminated, net's until done), or too_large when it would
     * pass the cap (body NULL). Answer now, or net_suspend and answer later. */
    void (*body)(void *cls, void *ctx, const char *body, size_t len, int too_large);
    /* net_resume was called for this request: answer it now. */
    void (*resumed)(void *cls, void *ctx);
    /* The request is over, answered or its connection gone: free ctx. Never
     * called for a suspended request. */
    void (*done)(void *cls, void *ctx);
    /* The JSON body of an answer net gives itself (a malformed head: status
     * 400, 417, 431, 501, 505; 408 for a request that did not arrive in time;
     * 503 when head returned NULL). */
    const char *(*refusal)(void *cls, int status);
    /* 1 when `waiting` requests on the ready stacks, beside those the server
     * holds, are a flood: more than it answers in a while. was: the answer
     * last time. NULL: never. Any thread. */
    int (*flood)(void *cls, int waiting, int was);
    /* In a flood, 1 while the server takes no more requests now: reading
     * them would only queue them. NULL: never. Any thread. */
    int (*full)(void *cls);
};

struct net_opts {
    const char *listen;          /* "IPv4:port"; NULL: no socket, connections come by net_add */
    int threads;
    int max_connections;
    int max_per_address;         /* open connections from one IPv4 address; 0: no limit */
    int timeout_s;               /* idle between requests */
    int request_timeout_s;       /* a request's head from its first byte, its body beside BODY_MIN_RATE (above) */
    size_t head_max;
    int park_ms, refuse_ms;      /* the ready stack; park_ms 0: none */
    const char *tls_cert, *tls_key;   /* PEM text, both or neither */
};

/* "IPv4:port" into *sa; -1 when it is not that. */
struct sockaddr_in;
int net_parse_listen(const char *listen, struct sockaddr_in *sa);

/* Starts the workers. *out is set even on failure (pass it to net_stop). */
int net_start(struct net **out, const struct net_opts *o, const struct net_ops *ops);
/* Closes every connection (done for each request still held: none may be
 * suspended; resume them first) and joins the workers. */
void net_stop(struct net *n);
/* Connections open now, and since the start those refused (at
 * max_connections, at max_per_address, for want of a file descriptor) and
 * the requests that did not arrive in time (408). Any thread. */
struct net_stats {
    int64_t open;
    uint64_t refused_full, refused_address, refused_no_fd, timed_out;
};
void net_stats(struct net *n, struct net_stats *out);
/* Takes a connected socket (the fuzzers' socketpairs); peer is its address. */
int net_add(struct net *n, int fd, const char *peer);

/* From the head, body or resumed callback of c's request, on its worker: */
/* extra: more header lines ("Name: value\r\n"...), or NULL; a Content-Type
 * line among them stands for the default, JSON in UTF-8. body is the
 * caller's until done. To a HEAD (and to a malformed request that begins
 * "HEAD ") net sends the head alone, Content-Length saying len. */
void net_answer(struct net_conn *c, int status, const char *extra, const char *body, size_t len);
void net_suspend(struct net_conn *c);
/* The client's address as text ("127.0.0.1"). */
const char *net_peer(const struct net_conn *c);
/* 1 when c's request was read only to be refused: it was parked on the ready
 * stack for refuse_ms. The server answers it 503 unless serving costs less. */
int net_overdue(const struct net_conn *c);
/* c's request is being refused for overload: c's next request goes on the
 * ready stack, read as soon as the server has room (ops.full) or at
 * refuse_ms to be refused (see the top). park_ms 0: nothing. */
void net_hold(struct net_conn *c);

/* From any thread, once per net_suspend: the answer is ready to be given. */
void net_resume(struct net_conn *c);
