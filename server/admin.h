/* admin: the --admin HTTP listener. The master serves it with evhttp on its
 * own event_base, separate from the public port because its pages show
 * client addresses:
 *   /healthz   200 while at least one worker is running, else 503
 *   /status    master, workers and live connections; ?format=json, ?limit=N
 *   /metrics   Prometheus text exposition format
 * Every page is built from the scoreboard (scoreboard.h) without asking a
 * worker anything, so a slow or stuck worker cannot stall the admin, and the
 * admin cannot stall the master: pages are small and bounded (?limit), and
 * evhttp enforces --admin-timeout and header/body size caps. */
#ifndef HANDOFF_ADMIN_H
#define HANDOFF_ADMIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>

#include "addr.h"
#include "config.h"

struct admin;
struct event_base;
struct evbuffer;

/* Largest ?limit on /status: bounds the page to about a megabyte. */
#define ADMIN_LIMIT_MAX 10000
#define ADMIN_LIMIT_DEFAULT 100

/* The admin listening socket (for a binary upgrade to inherit), or -1. */
int admin_listen_fd(const struct admin *a);
/* The configuration changed (reload): refresh what the pages say. */
void admin_update(struct admin *a, const struct config *cfg);

/* Start the admin listener on BASE when --admin is on: binds it, creates the
 * scoreboard (so call before forking workers) and sets *OUT. With --admin
 * off, *OUT is NULL and nothing is created. A busy default address is a
 * warning (the server runs without admin); a given one that cannot be bound
 * is an error. LISTEN_FD is the public listener, named on /status; NSLOTS
 * the number of worker slots the scoreboard keeps.
 * Returns 0 or -1 (logged). */
int admin_start(struct admin **out, struct event_base *base, const struct config *cfg,
                int listen_fd, int nslots);
/* Print "handoffd: admin http://ADDR:PORT" to stderr (no-op when NULL);
 * called just before the "handoffd: listening" readiness line. */
void admin_announce(const struct admin *a);
/* Close the listener and its connections, unmap the scoreboard. NULL is fine. */
void admin_free(struct admin *a);

/* ---- page building, shared by admin.c, admin_status.c, admin_metrics.c ---- */

/* What the pages say about the server itself. */
struct admin_info {
    const char *model;             /* --model name */
    const char *protocol;          /* --protocol name */
    char listening[ADDR_PAIRLEN];  /* public socket, "{*:8080, *:*}" */
    pid_t pid;                     /* master pid */
};

/* A response body being built; a failed append marks the page failed, and a
 * failed page is answered with 500 rather than sent truncated. */
struct admin_page {
    struct evbuffer *buf; /* owned by the request handler */
    bool failed;          /* an append ran out of memory */
};

void admin_page_add(struct admin_page *p, const char *s);
void admin_page_printf(struct admin_page *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* /status as text or JSON, listing at most LIMIT connections. */
void admin_status_text(struct admin_page *p, const struct admin_info *info, int limit);
void admin_status_json(struct admin_page *p, const struct admin_info *info, int limit);
/* /metrics in the Prometheus text format, version 0.0.4. */
void admin_metrics(struct admin_page *p);

#endif
