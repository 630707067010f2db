/* admin_status: the /status page, as aligned text for people and as JSON
 * (?format=json) for tools. Both show the same figures read from the
 * scoreboard: the master's counters, one row per worker slot, and up to
 * ?limit live connections in slot order, each as its socket pair in the
 * whoami notation with the serving worker and the connection's age. */
#include <inttypes.h>
#include <stdint.h>

#include "admin.h"
#include "ctl.h"
#include "scoreboard.h"

typedef void (*status_row_fn)(struct admin_page *p, const struct scoreboard_conn_view *c,
                              double age, bool first);

static double status_age(uint64_t now, uint64_t start)
{
    return start != 0 && start <= now ? (double)(now - start) / 1e9 : 0.0;
}

static uint64_t status_requests(const struct scoreboard_slot_view *v)
{
    uint64_t n = 0;
    for (int i = 0; i < SCOREBOARD_CLASSES; i++)
        n += v->requests[i];
    return n;
}

/* Emit up to LIMIT live connections with ROW; returns how many. */
static int status_conns(struct admin_page *p, int limit, status_row_fn row)
{
    struct scoreboard_conn_view c;
    size_t cursor = 0;
    uint64_t now = ctl_now_ns();
    int n = 0;
    while (n < limit && scoreboard_next_conn(&cursor, &c)) {
        row(p, &c, status_age(now, c.start_ns), n == 0);
        n++;
    }
    return n;
}

/* ---- text ------------------------------------------------------------------ */

static void status_text_row(struct admin_page *p, const struct scoreboard_conn_view *c,
                            double age, bool first)
{
    char pair[ADDR_PAIRLEN];
    (void)first;
    if (addr_format_pair((const struct sockaddr *)&c->local,
                         (const struct sockaddr *)&c->foreign, pair, sizeof(pair)) < 0)
        return;
    admin_page_printf(p, "%s worker=%d pid=%d age=%.3fs\n", pair, c->slot, (int)c->pid, age);
}

void admin_status_text(struct admin_page *p, const struct admin_info *info, int limit)
{
    struct scoreboard_master_view m;
    scoreboard_read_master(&m);
    const uint64_t *k = m.counters;
    admin_page_printf(p, "handoffd pid %d: model %s, protocol %s, up %.3f s\n", (int)info->pid,
                      info->model, info->protocol, status_age(ctl_now_ns(), m.started_ns));
    admin_page_printf(p, "listening %s, %s\n", info->listening,
                      m.listener_paused ? "paused" : "accepting");
    admin_page_printf(p,
                      "connections: accepted %" PRIu64 ", handed off %" PRIu64
                      ", closed %" PRIu64 ", rejected %" PRIu64 ", lost with a worker %" PRIu64
                      "\n",
                      k[SCOREBOARD_ACCEPTED], k[SCOREBOARD_HANDED], k[SCOREBOARD_CLOSED],
                      k[SCOREBOARD_REFUSED], k[SCOREBOARD_LOST]);
    admin_page_printf(p, "listener pauses: workers full %" PRIu64 ", out of fds %" PRIu64 "\n\n",
                      k[SCOREBOARD_FULL_PAUSES], k[SCOREBOARD_EMFILE_PAUSES]);

    admin_page_printf(p, "%-5s %-8s %-9s %8s %10s %10s %8s\n", "slot", "pid", "state", "live",
                      "total", "requests", "restarts");
    uint64_t live = 0;
    for (int i = 0; i < scoreboard_slots(); i++) {
        struct scoreboard_slot_view v;
        scoreboard_read_slot(i, &v);
        if (!v.used)
            continue;
        live += v.live;
        admin_page_printf(p, "%-5d %-8d %-9s %8" PRIu64 " %10" PRIu64 " %10" PRIu64 " %8" PRIu64
                          "\n",
                          i, (int)v.pid, scoreboard_state_name(v.state), v.live, v.total,
                          status_requests(&v), v.restarts);
    }
    admin_page_printf(p, "\nlive connections: %" PRIu64 " (listing up to %d)\n", live, limit);
    int n = status_conns(p, limit, status_text_row);
    admin_page_printf(p, "listed %d\n", n);
}

/* ---- JSON ------------------------------------------------------------------ */

/* S as a JSON string literal: quotes, backslashes and control characters
 * escaped; other bytes (UTF-8) pass through. */
static void status_json_string(struct admin_page *p, const char *s)
{
    admin_page_add(p, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        switch (*c) {
        case '"': admin_page_add(p, "\\\""); break;
        case '\\': admin_page_add(p, "\\\\"); break;
        case '\n': admin_page_add(p, "\\n"); break;
        case '\r': admin_page_add(p, "\\r"); break;
        case '\t': admin_page_add(p, "\\t"); break;
        default:
            if (*c < 0x20)
                admin_page_printf(p, "\\u%04x", *c);
            else
                admin_page_add(p, (const char[]){ (char)*c, '\0' });
        }
    }
    admin_page_add(p, "\"");
}

static void status_json_key(struct admin_page *p, const char *key, const char *value)
{
    status_json_string(p, key);
    admin_page_add(p, ":");
    status_json_string(p, value);
}

static void status_json_row(struct admin_page *p, const struct scoreboard_conn_view *c,
                            double age, bool first)
{
    char local[ADDR_STRLEN], foreign[ADDR_STRLEN], pair[ADDR_PAIRLEN];
    if (addr_format((const struct sockaddr *)&c->local, local, sizeof(local)) < 0 ||
        addr_format((const struct sockaddr *)&c->foreign, foreign, sizeof(foreign)) < 0 ||
        addr_format_pair((const struct sockaddr *)&c->local,
                         (const struct sockaddr *)&c->foreign, pair, sizeof(pair)) < 0) {
        p->failed = true; /* cannot happen for AF_INET/AF_INET6 rows */
        return;
    }
    admin_page_add(p, first ? "\n  {" : ",\n  {");
    status_json_key(p, "pair", pair);
    admin_page_add(p, ",");
    status_json_key(p, "local", local);
    admin_page_add(p, ",");
    status_json_key(p, "foreign", foreign);
    admin_page_printf(p, ",\"worker\":%d,\"pid\":%d,\"age_seconds\":%.3f}", c->slot,
                      (int)c->pid, age);
}

void admin_status_json(struct admin_page *p, const struct admin_info *info, int limit)
{
    struct scoreboard_master_view m;
    scoreboard_read_master(&m);
    const uint64_t *k = m.counters;
    admin_page_printf(p, "{\"pid\":%d,", (int)info->pid);
    status_json_key(p, "model", info->model);
    admin_page_add(p, ",");
    status_json_key(p, "protocol", info->protocol);
    admin_page_add(p, ",");
    status_json_key(p, "listening", info->listening);
    admin_page_printf(p, ",\"uptime_seconds\":%.3f,\"listener_paused\":%s,\n",
                      status_age(ctl_now_ns(), m.started_ns),
                      m.listener_paused ? "true" : "false");
    admin_page_printf(p,
                      "\"counters\":{\"accepted\":%" PRIu64 ",\"handed_off\":%" PRIu64
                      ",\"closed\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"lost\":%" PRIu64
                      ",\"full_pauses\":%" PRIu64 ",\"emfile_pauses\":%" PRIu64 "},\n",
                      k[SCOREBOARD_ACCEPTED], k[SCOREBOARD_HANDED], k[SCOREBOARD_CLOSED],
                      k[SCOREBOARD_REFUSED], k[SCOREBOARD_LOST], k[SCOREBOARD_FULL_PAUSES],
                      k[SCOREBOARD_EMFILE_PAUSES]);
    admin_page_add(p, "\"workers\":[");
    uint64_t live = 0;
    bool first = true;
    for (int i = 0; i < scoreboard_slots(); i++) {
        struct scoreboard_slot_view v;
        scoreboard_read_slot(i, &v);
        if (!v.used)
            continue;
        live += v.live;
        admin_page_printf(p, "%s\n  {\"slot\":%d,\"pid\":%d,", first ? "" : ",", i, (int)v.pid);
        first = false;
        status_json_key(p, "state", scoreboard_state_name(v.state));
        admin_page_printf(p,
                          ",\"live\":%" PRIu64 ",\"total\":%" PRIu64 ",\"requests\":%" PRIu64
                          ",\"restarts\":%" PRIu64 "}",
                          v.live, v.total, status_requests(&v), v.restarts);
    }
    admin_page_printf(p, "],\n\"live\":%" PRIu64 ",\"limit\":%d,\n\"connections\":[", live,
                      limit);
    int n = status_conns(p, limit, status_json_row);
    admin_page_printf(p, "],\n\"listed\":%d}\n", n);
}
