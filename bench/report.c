/* report: see report.h. Latencies are recorded in ns and printed in µs
 * (JSON) or ms (summary line). */
#include "report.h"

#include <inttypes.h>

static const double pcts[] = { 50, 90, 99, 99.9 };
static const char *const pct_names[] = { "p50", "p90", "p99", "p99.9" };
#define NPCTS (sizeof(pcts) / sizeof(pcts[0]))

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static double per_s(uint64_t n, uint64_t ns) { return ns > 0 ? (double)n / secs(ns) : 0.0; }

uint64_t report_done(const struct opts *o, const struct stats *st)
{
    return o->mode == OPTS_HOLD ? st->connected : st->ok;
}

void report_progress(FILE *out, const struct opts *o, const struct stats *st, double elapsed_s,
                     double rate_now)
{
    uint64_t errs = stats_errors(st);
    if (o->mode == OPTS_HOLD) {
        fprintf(out, "handoff-bench: [%6.1fs] established %" PRIu64 "/%" PRIu64
                     " open %" PRIu64 " closed-by-server %" PRIu64 " errors %" PRIu64 "\n",
                elapsed_s, st->connected, o->connections, st->open, st->held_closed, errs);
    } else {
        double avg = elapsed_s > 0 ? (double)st->ok / elapsed_s : 0.0;
        fprintf(out, "handoff-bench: [%6.1fs] requests %" PRIu64 " ok %" PRIu64
                     " (%.0f/s, now %.0f/s) connections %" PRIu64 " errors %" PRIu64
                     " open %" PRIu64 "\n",
                elapsed_s, st->requests, st->ok, avg, rate_now, st->conn_attempts, errs,
                st->open);
    }
    fflush(out);
}

static double rate(const struct opts *o, const struct stats *st)
{
    if (o->mode == OPTS_HOLD)
        return per_s(st->connected, st->establish_ns);
    return per_s(st->ok, st->elapsed_ns);
}

void report_summary(FILE *out, const struct opts *o, const struct stats *st,
                    const struct hist *latency, const struct hist *connect)
{
    fprintf(out, "mode=%s proto=%s target=%s processes=%d concurrency=%d stopped=%s "
                 "elapsed=%.3fs connections=%" PRIu64 " connected=%" PRIu64,
            opts_mode_name(o->mode), opts_proto_name(o->proto), o->target_text, o->processes,
            o->concurrency, stats_stop_name((enum stats_stop)st->stopped), secs(st->elapsed_ns),
            st->conn_attempts, st->connected);
    if (o->mode == OPTS_HOLD) {
        fprintf(out, " open_at_end=%" PRIu64 " closed_by_server=%" PRIu64
                     " establish=%.3fs rate=%.1f/s",
                st->open, st->held_closed, secs(st->establish_ns), rate(o, st));
    } else {
        fprintf(out, " requests=%" PRIu64 " ok=%" PRIu64 " cancelled=%" PRIu64
                     " rate=%.1f/s",
                st->requests, st->ok, st->cancelled, rate(o, st));
    }
    uint64_t errs = stats_errors(st);
    fprintf(out, " errors=%" PRIu64, errs);
    if (errs > 0) {
        const char *sep = " (";
        for (int k = 0; k < STATS_ERR_COUNT; k++) {
            if (st->err[k] == 0)
                continue;
            fprintf(out, "%s%s=%" PRIu64, sep, stats_err_name((enum stats_err)k), st->err[k]);
            sep = " ";
        }
        fputc(')', out);
    }
    const struct hist *h = o->mode == OPTS_HOLD ? connect : latency;
    fprintf(out, " %s", o->mode == OPTS_HOLD ? "connect" : "latency");
    for (size_t k = 0; k < NPCTS; k++)
        fprintf(out, " %s=%.3fms", pct_names[k], (double)hist_percentile(h, pcts[k]) / 1e6);
    fprintf(out, " max=%.3fms\n", (double)h->max / 1e6);
    fflush(out);
}

static void json_hist(FILE *out, const char *name, const struct hist *h)
{
    fprintf(out, "\"%s\":{\"count\":%" PRIu64 ",\"min\":%.1f,\"mean\":%.1f", name, h->count,
            (double)h->min / 1e3, hist_mean(h) / 1e3);
    for (size_t k = 0; k < NPCTS; k++)
        fprintf(out, ",\"%s\":%.1f", pct_names[k], (double)hist_percentile(h, pcts[k]) / 1e3);
    fprintf(out, ",\"max\":%.1f}", (double)h->max / 1e3);
}

/* PATH holds no control characters (opts checks); quote and backslash are
 * the only characters JSON needs escaped. */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

void report_json(FILE *out, const struct opts *o, const struct stats *st,
                 const struct hist *latency, const struct hist *connect)
{
    fprintf(out, "{\"mode\":\"%s\",\"proto\":\"%s\",\"target\":\"%s\",\"processes\":%d,"
                 "\"concurrency\":%d,\"conn_requests\":%" PRIu64 ",",
            opts_mode_name(o->mode), opts_proto_name(o->proto), o->target_text, o->processes,
            o->concurrency, o->conn_requests);
    if (o->proto == OPTS_ECHO)
        fprintf(out, "\"size\":%zu,", o->size);
    else if (o->proto == OPTS_UNPREQ)
        fprintf(out, "\"bytes\":%" PRIu64 ",", o->bytes);
    else {
        fputs("\"path\":", out);
        json_string(out, o->path);
        fputc(',', out);
    }
    fprintf(out, "\"stopped\":\"%s\",\"elapsed_s\":%.6f,\"connections\":%" PRIu64
                 ",\"connected\":%" PRIu64 ",\"requests\":%" PRIu64 ",\"ok\":%" PRIu64
                 ",\"cancelled\":%" PRIu64 ",\"server_closes\":%" PRIu64
                 ",\"bytes_sent\":%" PRIu64 ",\"bytes_received\":%" PRIu64
                 ",\"rate\":%.1f,\"requests_per_s\":%.1f,\"connections_per_s\":%.1f,",
            stats_stop_name((enum stats_stop)st->stopped), secs(st->elapsed_ns),
            st->conn_attempts, st->connected, st->requests, st->ok, st->cancelled,
            st->server_closes, st->bytes_out, st->bytes_in, rate(o, st),
            per_s(st->ok, st->elapsed_ns),
            per_s(st->connected, o->mode == OPTS_HOLD ? st->establish_ns : st->elapsed_ns));
    if (o->mode == OPTS_HOLD)
        fprintf(out, "\"hold\":{\"target\":%" PRIu64 ",\"established\":%" PRIu64
                     ",\"open_at_end\":%" PRIu64 ",\"closed_by_server\":%" PRIu64
                     ",\"establish_s\":%.6f},",
                o->connections, st->connected, st->open, st->held_closed,
                secs(st->establish_ns));
    if (o->proto == OPTS_HTTP)
        fprintf(out, "\"http_status\":{\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64
                     ",\"3xx\":%" PRIu64 ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64
                     ",\"other\":%" PRIu64 "},",
                st->status[1], st->status[2], st->status[3], st->status[4], st->status[5],
                st->status[0]);
    fprintf(out, "\"errors\":{\"total\":%" PRIu64, stats_errors(st));
    for (int k = 0; k < STATS_ERR_COUNT; k++)
        fprintf(out, ",\"%s\":%" PRIu64, stats_err_name((enum stats_err)k), st->err[k]);
    fputs("},", out);
    json_hist(out, "latency_us", latency);
    fputc(',', out);
    json_hist(out, "connect_us", connect);
    fputs("}\n", out);
    fflush(out);
}
