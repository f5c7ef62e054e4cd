/* net: connections are dealt to the workers round robin, whichever of them
 * accepted, so a client pool that opens all its connections at once is
 * served by every worker. A real listening socket on loopback, two workers,
 * and plain blocking clients. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

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
static struct net *start(int threads, int *port)
{
    char listen[32];
    *port = free_port();
    snprintf(listen, sizeof listen, "127.0.0.1:%d", *port);
    static const struct net_ops ops = {.head = on_head, .body = on_body, .resumed = on_resumed, .done = on_done,
                                       .refusal = on_refusal};
    struct net_opts o = {.listen = listen, .threads = threads, .max_connections = 4000, .timeout_s = 10,
                         .head_max = 8192};
    struct net *n;
    assert_int_equal(net_start(&n, &o, &ops), 0);
    return n;
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_connections_dealt_round_robin),
                                       cmocka_unit_test(test_stop_while_connecting)};
    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
