/* stats: see stats.h. */
#include "stats.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static const char *const err_names[STATS_ERR_COUNT] = {
    [STATS_ERR_CONNECT] = "connect",
    [STATS_ERR_CONNECT_TIMEOUT] = "connect_timeout",
    [STATS_ERR_ADDR] = "addr",
    [STATS_ERR_SOCKET] = "socket",
    [STATS_ERR_TIMEOUT] = "timeout",
    [STATS_ERR_RESET] = "reset",
    [STATS_ERR_CLOSED] = "closed",
    [STATS_ERR_SHORT_READ] = "short_read",
    [STATS_ERR_BAD_RESPONSE] = "bad_response",
    [STATS_ERR_HTTP_STATUS] = "http_status",
};

static const char *const stop_names[] = { "count", "time", "signal" };

const char *stats_err_name(enum stats_err e) { return err_names[e]; }
const char *stats_stop_name(enum stats_stop s) { return stop_names[s]; }

uint64_t stats_errors(const struct stats *s)
{
    uint64_t n = 0;
    for (int i = 0; i < STATS_ERR_COUNT; i++)
        n += s->err[i];
    return n;
}

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

void stats_merge(struct stats *dst, const struct stats *src)
{
    dst->elapsed_ns = max_u64(dst->elapsed_ns, src->elapsed_ns);
    dst->establish_ns = max_u64(dst->establish_ns, src->establish_ns);
    dst->conn_attempts += src->conn_attempts;
    dst->connected += src->connected;
    dst->requests += src->requests;
    dst->ok += src->ok;
    dst->cancelled += src->cancelled;
    dst->server_closes += src->server_closes;
    dst->bytes_out += src->bytes_out;
    dst->bytes_in += src->bytes_in;
    dst->open += src->open;
    dst->held_closed += src->held_closed;
    for (int i = 0; i < 6; i++)
        dst->status[i] += src->status[i];
    for (int i = 0; i < STATS_ERR_COUNT; i++)
        dst->err[i] += src->err[i];
    if (src->stopped > dst->stopped)
        dst->stopped = src->stopped;
}

static size_t payload_size(uint16_t type)
{
    switch (type) {
    case STATS_MSG_PROGRESS:
        return sizeof(struct stats);
    case STATS_MSG_FINAL:
        return sizeof(struct stats_msg) - sizeof(struct stats_hdr);
    default:
        return 0;
    }
}

int stats_send(int fd, enum stats_msg_type type, const struct stats *st,
               const struct hist *latency, const struct hist *connect)
{
    /* static: a FINAL message is ~30 KB, too much for a callback's stack. */
    static struct stats_msg m;
    memset(&m.hdr, 0, sizeof(m.hdr));
    m.hdr.magic = STATS_MAGIC;
    m.hdr.type = (uint16_t)type;
    m.hdr.len = (uint32_t)payload_size((uint16_t)type);
    m.st = *st;
    if (type == STATS_MSG_FINAL) {
        m.latency = *latency;
        m.connect = *connect;
    }
    size_t len = sizeof(m.hdr) + m.hdr.len, off = 0;
    const char *p = (const char *)&m;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

size_t stats_msg_size(const struct stats_hdr *hdr)
{
    size_t want = payload_size(hdr->type);
    if (hdr->magic != STATS_MAGIC || want == 0 || hdr->len != want || hdr->pad != 0 ||
        hdr->pad2 != 0)
        return 0;
    return sizeof(*hdr) + want;
}

const char *stats_msg_check(const struct stats_msg *m, size_t len)
{
    if (len < sizeof(m->hdr) || stats_msg_size(&m->hdr) != len)
        return "bad header or length";
    const struct stats *s = &m->st;
    if (s->stopped > STATS_STOP_SIGNAL || s->pad != 0)
        return "bad stop reason";
    if (s->connected > s->conn_attempts || s->ok > s->requests ||
        s->held_closed > s->connected || s->open > s->connected)
        return "inconsistent counters";
    if (m->hdr.type == STATS_MSG_FINAL) {
        const char *why = hist_check(&m->latency);
        if (why == NULL)
            why = hist_check(&m->connect);
        if (why != NULL)
            return why;
        if (m->connect.count > s->connected)
            return "more connect times than connections";
        if (m->latency.count > s->requests)
            return "more latencies than requests";
    }
    return NULL;
}
