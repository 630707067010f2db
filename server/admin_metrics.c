/* admin_metrics: the /metrics page in the Prometheus text exposition format
 * (version 0.0.4): each family once, introduced by its HELP and TYPE lines,
 * samples as `name{label="v"} value`, the hand-off latency histogram with
 * cumulative _bucket lines ending at le="+Inf", then _sum and _count.
 * Worker figures are summed over slots; cumulative ones survive restarts
 * because a respawned worker continues its slot's counters. */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "admin.h"
#include "scoreboard.h"

static void metrics_family(struct admin_page *p, const char *name, const char *type,
                           const char *help)
{
    admin_page_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_counter(struct admin_page *p, const char *name, const char *help,
                            uint64_t v)
{
    metrics_family(p, name, "counter", help);
    admin_page_printf(p, "%s %" PRIu64 "\n", name, v);
}

/* NAME{worker="K"} for every slot: the uint64_t at OFFSET in its view. */
static void metrics_per_worker(struct admin_page *p, const char *name, size_t offset)
{
    for (int i = 0; i < scoreboard_slots(); i++) {
        struct scoreboard_slot_view v;
        uint64_t x;
        scoreboard_read_slot(i, &v);
        if (!v.used)
            continue;
        memcpy(&x, (const char *)&v + offset, sizeof(x));
        admin_page_printf(p, "%s{worker=\"%d\"} %" PRIu64 "\n", name, i, x);
    }
}

void admin_metrics(struct admin_page *p)
{
    struct scoreboard_master_view m;
    scoreboard_read_master(&m);
    int nslots = scoreboard_slots();
    struct scoreboard_slot_view sum;
    uint64_t running = 0;
    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < nslots; i++) {
        struct scoreboard_slot_view v;
        scoreboard_read_slot(i, &v);
        for (int c = 0; c < SCOREBOARD_CLASSES; c++)
            sum.requests[c] += v.requests[c];
        sum.bytes_in += v.bytes_in;
        sum.bytes_out += v.bytes_out;
        for (int b = 0; b < SCOREBOARD_HIST_BUCKETS; b++)
            sum.hist[b] += v.hist[b];
        sum.hist_sum_ns += v.hist_sum_ns;
        running += v.pid > 0 && v.state == SCOREBOARD_RUNNING;
    }
    const uint64_t *k = m.counters;

    metrics_counter(p, "handoff_connections_accepted_total",
                    "Connections accepted by the master.", k[SCOREBOARD_ACCEPTED]);
    metrics_counter(p, "handoff_connections_handed_off_total",
                    "Connections passed to a worker over its socketpair.", k[SCOREBOARD_HANDED]);
    metrics_counter(p, "handoff_connections_closed_total",
                    "Connections workers reported closed, rejected ones included.",
                    k[SCOREBOARD_CLOSED]);
    metrics_counter(p, "handoff_connections_rejected_total",
                    "Connections closed without service (no worker could take them).",
                    k[SCOREBOARD_REFUSED]);
    metrics_counter(p, "handoff_connections_lost_total",
                    "Connections that were live in a worker when it died.", k[SCOREBOARD_LOST]);

    metrics_family(p, "handoff_listener_pauses_total", "counter",
                   "Times the listener was paused, by reason.");
    admin_page_printf(p, "handoff_listener_pauses_total{reason=\"full\"} %" PRIu64 "\n",
                      k[SCOREBOARD_FULL_PAUSES]);
    admin_page_printf(p, "handoff_listener_pauses_total{reason=\"fds\"} %" PRIu64 "\n",
                      k[SCOREBOARD_EMFILE_PAUSES]);
    metrics_family(p, "handoff_listener_paused", "gauge",
                   "1 while the listener is not accepting, else 0.");
    admin_page_printf(p, "handoff_listener_paused %d\n", m.listener_paused ? 1 : 0);

    metrics_family(p, "handoff_requests_total", "counter", "Requests answered, by status class.");
    for (int c = 0; c < SCOREBOARD_CLASSES; c++)
        admin_page_printf(p, "handoff_requests_total{class=\"%dxx\"} %" PRIu64 "\n", c + 1,
                          sum.requests[c]);
    metrics_counter(p, "handoff_bytes_in_total", "Bytes read from clients.", sum.bytes_in);
    metrics_counter(p, "handoff_bytes_out_total", "Bytes written to clients.", sum.bytes_out);

    metrics_family(p, "handoff_worker_restarts_total", "counter",
                   "Worker processes started in a slot after its first.");
    metrics_per_worker(p, "handoff_worker_restarts_total",
                       offsetof(struct scoreboard_slot_view, restarts));
    metrics_family(p, "handoff_worker_live_connections", "gauge",
                   "Connections open in each worker.");
    metrics_per_worker(p, "handoff_worker_live_connections",
                       offsetof(struct scoreboard_slot_view, live));
    metrics_family(p, "handoff_workers_running", "gauge", "Workers in the running state.");
    admin_page_printf(p, "handoff_workers_running %" PRIu64 "\n", running);

    metrics_family(p, "handoff_handoff_latency_seconds", "histogram",
                   "Time from accept in the master until a worker owns the connection.");
    uint64_t cum = 0;
    for (int b = 0; b < SCOREBOARD_HIST_FINITE; b++) {
        cum += sum.hist[b];
        admin_page_printf(p, "handoff_handoff_latency_seconds_bucket{le=\"%.9g\"} %" PRIu64 "\n",
                          scoreboard_hist_bound(b), cum);
    }
    cum += sum.hist[SCOREBOARD_HIST_FINITE];
    admin_page_printf(p, "handoff_handoff_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    admin_page_printf(p, "handoff_handoff_latency_seconds_sum %.9f\n",
                      (double)sum.hist_sum_ns / 1e9);
    admin_page_printf(p, "handoff_handoff_latency_seconds_count %" PRIu64 "\n", cum);
}
