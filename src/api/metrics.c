/* GET /metrics — what an operator's monitoring scrapes, in Prometheus's text
 * format (version 0.0.4): the answers by route (http/metrics.h), the
 * connections, the engine, the sweeper and the process. Admin or monitor. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "http/metrics.h"

static void head(struct arena_text *t, const char *name, const char *type, const char *help)
{
    arena_text_cat(t, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", NULL);
}

static void line(struct arena_text *t, const char *name, const char *labels, long long v)
{
    arena_text_cat(t, name, labels ? labels : "", " ", NULL);
    arena_text_int(t, v);
    arena_text_cat(t, "\n", NULL);
}

static void one(struct arena_text *t, const char *name, const char *type, const char *help, long long v)
{
    head(t, name, type, help);
    line(t, name, NULL, v);
}

/* The resident set, from /proc/self/statm (pages); -1 when it cannot be read. */
static long long resident_bytes(void)
{
    long long size = 0, resident = -1;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &resident) != 2)
            resident = -1;
        fclose(f);
    }
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long long n = -1;   /* the directory's own descriptor */
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void routes(struct req *r, struct arena_text *t)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    int n = (int)api_route_count < METRICS_ROUTES ? (int)api_route_count : METRICS_ROUTES;
    struct metrics_route *m = arena_alloc(&r->a, sizeof *m * (size_t)(n + 1));
    const char **label = arena_alloc(&r->a, sizeof *label * (size_t)(n + 1));
    for (int i = -1; i < n; i++) {
        metrics_route_sum(i, &m[i + 1]);
        label[i + 1] = i < 0 ? "{route=\"none\"" : arena_printf(&r->a, "{route=\"%s %s\"",
                                                                    http_method_name(api_routes[i].method),
                                                                    api_routes[i].pattern);
    }
    head(t, "topup_http_requests_total", "counter",
         "Requests answered, by route (method and pattern; none: refused before one was found) and status class.");
    for (int i = 0; i <= n; i++)
        for (int k = 0; k < 5; k++)
            if (k == 1 || k == 3 || k == 4 || m[i].by_class[k])
                line(t, "topup_http_requests_total", arena_printf(&r->a, "%s,code=\"%s\"}", label[i], classes[k]),
                     (long long)m[i].by_class[k]);
    head(t, "topup_http_request_duration_seconds", "histogram",
         "From a request's head to its answer, by route: for a command, its wait for the writer and the sync.");
    for (int i = 0; i <= n; i++) {
        for (int b = 0; b < METRICS_BUCKETS; b++) {
            const char *le = b == METRICS_BUCKETS - 1 ? "+Inf"
                                                      : arena_printf(&r->a, "%g", metrics_bounds_us[b] / 1e6);
            line(t, "topup_http_request_duration_seconds_bucket", arena_printf(&r->a, "%s,le=\"%s\"}", label[i], le),
                 (long long)m[i].buckets[b]);
        }
        arena_text_cat(t, "topup_http_request_duration_seconds_sum", label[i], "} ",
                       arena_printf(&r->a, "%.6f", (double)m[i].sum_us / 1e6), "\n", NULL);
        line(t, "topup_http_request_duration_seconds_count", arena_printf(&r->a, "%s}", label[i]),
             (long long)m[i].count);
    }
}

int api_metrics(struct req *r)
{
    struct server_stats s;
    req_server_stats(r, &s);
    struct arena_text t;
    arena_text_init(&t, &r->a, 64 * 1024);
    head(&t, "topup_build_info", "gauge", "The running topupd: its version, and the schema its database is at.");
    line(&t, "topup_build_info", arena_printf(&r->a, "{version=\"%s\",schema=\"%d\"}", TOPUP_VERSION, s.schema), 1);
    one(&t, "process_start_time_seconds", "gauge", "When topupd started, in Unix seconds.", s.started_at);
    one(&t, "process_resident_memory_bytes", "gauge", "topupd's resident memory.", resident_bytes());
    one(&t, "process_open_fds", "gauge", "topupd's open file descriptors: connections, the database's files.",
        open_fds());
    routes(r, &t);
    one(&t, "topup_http_connections_open", "gauge", "Connections open now.", s.net.open);
    head(&t, "topup_http_connections_refused_total", "counter",
         "Connections closed at once: at max_connections, at max_connections_per_address, for want of a file "
         "descriptor.");
    line(&t, "topup_http_connections_refused_total", "{reason=\"max_connections\"}", (long long)s.net.refused_full);
    line(&t, "topup_http_connections_refused_total", "{reason=\"max_connections_per_address\"}",
         (long long)s.net.refused_address);
    line(&t, "topup_http_connections_refused_total", "{reason=\"no_file_descriptor\"}",
         (long long)s.net.refused_no_fd);
    one(&t, "topup_http_requests_timed_out_total", "counter",
        "Requests that did not arrive within request_timeout (answered 408).", (long long)s.net.timed_out);
    one(&t, "topup_engine_commands_total", "counter", "Commands the writer ran, each durable before its answer.",
        (long long)s.engine.commands);
    one(&t, "topup_engine_batches_total", "counter", "Group commits: each one sync of the log for its commands.",
        (long long)s.engine.batches);
    one(&t, "topup_engine_commits_failed_total", "counter", "Group commits that failed (writes halt at the first).",
        (long long)s.engine.commits_failed);
    one(&t, "topup_engine_batches_rerun_total", "counter",
        "Batches run again because a command in them repeated a stored key.", (long long)s.engine.repeats_rerun);
    one(&t, "topup_engine_log_full_total", "counter",
        "Commits that left the log past log_max_mb: the writer then waited for the checkpointer.",
        (long long)s.engine.log_full);
    one(&t, "topup_engine_queued", "gauge", "Commands waiting for the writer now.", (long long)s.engine.queued);
    one(&t, "topup_writes_halted", "gauge",
        "1 once a commit or a sync of the log failed: writes are refused until a restart.", s.halted);
    one(&t, "topup_sweep_last_success_timestamp_seconds", "gauge",
        "When a lifecycle sweep last ran to its end without a failure, in Unix seconds; 0: not yet.", s.swept_at);
    one(&t, "topup_sweeps_failed_total", "counter", "Lifecycle sweeps that failed (each is logged).",
        (long long)s.sweeps_failed);
    one(&t, "topup_sweep_moved_total", "counter", "SIMs and reservations the lifecycle sweeps moved on.",
        (long long)s.sweep_moved);
    size_t len;
    const char *body = arena_text_end(&t, &len);
    return req_typed(r, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}
