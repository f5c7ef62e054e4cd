/* net: connections are dealt to the workers round robin, whichever of them
 * accepted, so a client pool that opens all its connections at once is
 * served by every worker; and the ready stack reads in order normally, the
 * newest first in a flood, parks what waited park_ms and refuses it at
 * refuse_ms. A real listening socket on loopback, plain blocking clients. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "http/net.h"

#define CONNS 20

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t served_by[CONNS * 2];
static int served;

static void *on_head(void *cls, struct net_conn *c, const struct h1_req *h, size_t *cap)
{
    (void)cls, (void)h;
    pthread_mutex_lock(&mu);
    if (served < CONNS * 2)
        served_by[served++] = pthread_self();
    pthread_mutex_unlock(&mu);
    *cap = 0;
    net_answer(c, 200, NULL, "{}", 2);
    return &mu;   /* any non-NULL context */
}

static void on_body(void *cls, void *ctx, const char *body, size_t len, int too_large)
{
    (void)cls, (void)ctx, (void)body, (void)len, (void)too_large;
}

static void on_resumed(void *cls, void *ctx) { (void)cls, (void)ctx; }
static void on_done(void *cls, void *ctx) { (void)cls, (void)ctx; }
static const char *on_refusal(void *cls, int status) { return (void)cls, (void)status, "{}"; }

/* A port nothing listens on now. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A net of `threads` workers answering 200 to every request, on a free port. */
static struct net *start_with(int threads, int *port, const struct net_ops *ops, int park_ms, int refuse_ms)
{
    char listen[32];
    *port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
    struct net_opts o = {.listen = listen, .threads = threads, .max_connections = 4000, .timeout_s = 10,
                         .request_timeout_s = 10,
                         .head_max = 8192, .park_ms = park_ms, .refuse_ms = refuse_ms};
    struct net *n;
    assert_int_equal(net_start(&n, &o, ops), 0);
    return n;
}

static struct net *start(int threads, int *port)
{
    static const struct net_ops ops = {.head = on_head, .body = on_body, .resumed = on_resumed, .done = on_done,
                                       .refusal = on_refusal};
    return start_with(threads, port, &ops, 0, 0);
}

static void test_connections_dealt_round_robin(void **state)
{
    (void)state;
    int port;
    struct net *n = start(2, &port);

    int fds[CONNS];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CONNS; i++) {   /* all open before any request: one burst to accept */
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < CONNS; i++) {
            const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
            assert_int_equal(send(fds[i], req, sizeof req - 1, 0), (ssize_t)(sizeof req - 1));
            char buf[512];
            ssize_t got = recv(fds[i], buf, sizeof buf - 1, 0);
            assert_true(got > 0);
            buf[got] = 0;
            assert_non_null(strstr(buf, "HTTP/1.1 200"));
        }
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    net_stop(n);

    /* Two workers, each with half the connections, and each connection with
     * one worker for all its requests. */
    assert_int_equal(served, CONNS * 2);
    pthread_t a = served_by[0], b = a;
    int on_a = 0;
    for (int i = 0; i < CONNS; i++) {
        if (!pthread_equal(served_by[i], a))
            b = served_by[i];
        on_a += pthread_equal(served_by[i], a);
        assert_true(pthread_equal(served_by[i], served_by[CONNS + i]));
    }
    assert_false(pthread_equal(a, b));
    assert_int_equal(on_a, CONNS / 2);
}

struct dialer {
    int port, n, fds[2000];
    _Atomic int stop;
};

static void *dial(void *arg)
{
    struct dialer *d = arg;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    while (!d->stop && d->n < (int)(sizeof d->fds / sizeof d->fds[0])) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
            close(fd);
            break;   /* the listener is gone */
        }
        d->fds[d->n++] = fd;
    }
    return NULL;
}

/* Stopping while connections pour in: a connection one worker hands to
 * another that has already taken in its last one stays with the first, and
 * nothing leaks (ASan and valgrind run this test) or crashes. */
static void test_stop_while_connecting(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        static struct dialer d;
        memset(&d, 0, sizeof d);
        struct net *n = start(4, &d.port);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, dial, &d), 0);
        usleep(20000 + 10000 * round);
        net_stop(n);
        d.stop = 1;
        pthread_join(th, NULL);
        assert_true(d.n > 0);
        for (int i = 0; i < d.n; i++)
            close(d.fds[i]);
    }
}

/* ---- the ready stack --------------------------------------------------------- */

static _Atomic int flooding, no_room, seen_n;
static _Atomic int net_says;   /* whether net was in a flood, as it last told stack_flood */
static _Atomic char seen[16];   /* the first letter of each path read, in order */

/* seen as a string: the workers write it while the test reads it, and the
 * socket that orders them is no order ThreadSanitizer knows. */
static const char *seen_text(void)
{
    static char out[sizeof seen];
    for (size_t i = 0; i < sizeof seen; i++)
        out[i] = atomic_load(&seen[i]);
    return out;
}

/* Answers 200, or 503 to a request net read only to refuse (net_overdue),
 * or 503 holding the connection to GET /h (the server refusing a command
 * for overload: net_hold). */
static void *stack_head(void *cls, struct net_conn *c, const struct h1_req *h, size_t *cap)
{
    (void)cls;
    int i = atomic_fetch_add(&seen_n, 1);
    if (i < (int)sizeof seen - 1)
        atomic_store(&seen[i], h->path[1]);
    *cap = 0;
    int refused = h->path[1] == 'h' || net_overdue(c);
    if (h->path[1] == 'h')
        net_hold(c);
    net_answer(c, refused ? 503 : 200, NULL, "{}", 2);
    return &mu;
}

static int stack_flood(void *cls, int waiting, int was)
{
    (void)cls, (void)waiting;
    net_says = was;
    return flooding;
}
static int stack_full(void *cls) { return (void)cls, no_room; }

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dial_one(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 10};   /* an answer that never comes fails the test */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_get(int fd, char letter)
{
    char req[64];
    int n = snprintf(req, sizeof req, "GET /%c HTTP/1.1\r\nHost: x\r\n\r\n", letter);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
}

/* The status of the answer on fd (blocking); the connection stays open. */
static int status_of(int fd)
{
    char buf[512];
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(got > 12);
    buf[got] = 0;
    return atoi(buf + 9);
}

/* Until net says it is in a flood (on) or not: it begins one once ops.flood
 * has said so for 100 ms and ends it after a second (net.c). A request on fd
 * wakes its worker; then it asks every millisecond. Valgrind makes those
 * 100 ms far longer at times: the test waits for net, not for a time. */
static void flood_set(int fd, int on)
{
    flooding = on;
    send_get(fd, on ? 'x' : 'y');
    assert_int_equal(status_of(fd), 200);
    for (int i = 0; net_says != on; i++) {
        assert_true(i < 10000);
        usleep(1000);
    }
}

/* A flood, with the server out of room and the probe forgotten. */
static void flood_now(int fd)
{
    flood_set(fd, 1);
    no_room = 1;
    seen_n = 0;
    for (size_t i = 0; i < sizeof seen; i++)
        atomic_store(&seen[i], 0);
}

#define PARK_MS 100
#define REFUSE_MS 600

static struct net *stack_start(int *port)
{
    static const struct net_ops ops = {.head = stack_head, .body = on_body, .resumed = on_resumed, .done = on_done,
                                       .refusal = on_refusal, .flood = stack_flood, .full = stack_full};
    flooding = no_room = seen_n = net_says = 0;
    for (size_t i = 0; i < sizeof seen; i++)
        atomic_store(&seen[i], 0);
    return start_with(1, port, &ops, PARK_MS, REFUSE_MS);
}

/* No flood: every request is read at once, room or not; a moment's excess
 * is not a flood. */
static void test_stack_unused_without_flood(void **state)
{
    (void)state;
    int port;
    struct net *n = stack_start(&port);
    no_room = 1;   /* asked only in a flood */
    int fd[4];
    for (int i = 0; i < 4; i++)
        fd[i] = dial_one(port);
    /* ops.flood saying so for less than 100 ms begins none */
    flooding = 1;
    send_get(fd[0], 'p');
    assert_int_equal(status_of(fd[0]), 200);
    usleep(50000);
    flooding = 0;
    usleep(100000);
    seen_n = 0;
    for (int i = 0; i < 4; i++)
        send_get(fd[i], (char)('a' + i));
    for (int i = 0; i < 4; i++)
        assert_int_equal(status_of(fd[i]), 200);
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    net_stop(n);
    assert_int_equal(seen_n, 4);
}

/* In a flood: nothing is read while the server has no room; when room comes,
 * the newest first. */
static void test_stack_newest_first_in_flood(void **state)
{
    (void)state;
    int port;
    struct net *n = stack_start(&port);
    int fd[4];
    for (int i = 0; i < 4; i++)
        fd[i] = dial_one(port);
    flood_now(fd[0]);
    for (int i = 0; i < 4; i++) {
        send_get(fd[i], (char)('a' + i));
        usleep(5000);   /* each its own batch of events: an order to keep */
    }
    usleep(20000);
    assert_int_equal(seen_n, 0);
    no_room = 0;
    for (int i = 0; i < 4; i++)
        assert_int_equal(status_of(fd[i]), 200);
    assert_string_equal(seen_text(), "dcba");
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    net_stop(n);
}

/* In a flood, a request that waited park_ms stays unread while fresher ones
 * are served, and is read at refuse_ms to be refused (503, net_overdue), its
 * connection kept for the next request. */
static void test_stack_parks_then_refuses(void **state)
{
    (void)state;
    int port;
    struct net *n = stack_start(&port);
    int a = dial_one(port), b = dial_one(port);
    flood_now(a);
    int64_t t0 = mono_ms();
    send_get(a, 'a');
    usleep((PARK_MS + 50) * 1000);   /* a is parked now */
    send_get(b, 'b');
    usleep(10000);
    no_room = 0;
    assert_int_equal(status_of(b), 200);
    assert_true(mono_ms() - t0 < REFUSE_MS);
    assert_int_equal(status_of(a), 503);
    assert_true(mono_ms() - t0 >= REFUSE_MS);
    assert_string_equal(seen_text(), "ba");
    flood_set(b, 0);
    send_get(a, 'c');   /* the same connection, served */
    assert_int_equal(status_of(a), 200);
    close(a);
    close(b);
    net_stop(n);
}

/* No flood, but a connection just refused for overload (net_hold): its next
 * request waits unread while the server has no room, other connections'
 * requests are read at once, and at refuse_ms it is read to be refused, the
 * connection kept. Once refused that way it is no longer held. With room, a
 * held connection's next request is read at once. */
static void test_held_connection_waits_for_room(void **state)
{
    (void)state;
    int port;
    struct net *n = stack_start(&port);
    int a = dial_one(port), b = dial_one(port);
    no_room = 1;   /* asked for held connections' requests, flood or not */
    send_get(a, 'h');
    assert_int_equal(status_of(a), 503);
    int64_t t0 = mono_ms();
    send_get(a, 'a');
    usleep(50000);
    send_get(b, 'b');   /* not held: read at once, room or not */
    assert_int_equal(status_of(b), 200);
    assert_string_equal(seen_text(), "hb");
    assert_int_equal(status_of(a), 503);   /* read at refuse_ms, to be refused */
    assert_true(mono_ms() - t0 >= REFUSE_MS);
    assert_string_equal(seen_text(), "hba");
    send_get(a, 'c');   /* no longer held */
    assert_int_equal(status_of(a), 200);
    no_room = 0;
    send_get(a, 'h');
    assert_int_equal(status_of(a), 503);
    t0 = mono_ms();
    send_get(a, 'd');   /* held, but there is room */
    assert_int_equal(status_of(a), 200);
    assert_true(mono_ms() - t0 < REFUSE_MS);
    assert_string_equal(seen_text(), "hbachd");
    assert_int_equal(net_says, 0);   /* never a flood */
    close(a);
    close(b);
    net_stop(n);
}

/* A connection closed while parked leaves the stack (ASan, valgrind). */
static void test_stack_close_while_parked(void **state)
{
    (void)state;
    int port;
    struct net *n = stack_start(&port);
    int fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = dial_one(port);
    flood_now(fd[0]);
    for (int i = 0; i < 3; i++)
        send_get(fd[i], (char)('a' + i));
    usleep(20000);
    close(fd[1]);
    usleep(20000);
    net_stop(n);   /* the others are still stacked */
    close(fd[0]);
    close(fd[2]);
    assert_int_equal(seen_n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_connections_dealt_round_robin),
                                       cmocka_unit_test(test_stop_while_connecting),
                                       cmocka_unit_test(test_stack_unused_without_flood),
                                       cmocka_unit_test(test_stack_newest_first_in_flood),
                                       cmocka_unit_test(test_stack_parks_then_refuses),
                                       cmocka_unit_test(test_stack_close_while_parked),
                                       cmocka_unit_test(test_held_connection_waits_for_room)};
    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
