/* admin: see admin.h. This file owns the listener and the request routing;
 * the pages themselves are in admin_status.c and admin_metrics.c.
 *
 * fd ownership: the admin listening socket belongs to `lev` (created with
 * LEV_OPT_CLOSE_ON_FREE) and, once bound, to evhttp, which frees `lev` and
 * every admin connection in evhttp_free. Workers never see these fds:
 * child_detach closes everything a worker does not own. */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "log.h"
#include "net.h"
#include "proto.h"
#include "scoreboard.h"

/* Listen queue for the admin socket: a handful of scrapers, not clients. */
#define ADMIN_BACKLOG 64
/* A GET's request line and headers fit easily; anything bigger is refused. */
#define ADMIN_MAX_HEADERS 8192
/* GET has no body; room for a small one so a stray POST still gets its 405. */
#define ADMIN_MAX_BODY 4096

struct admin {
    struct evhttp *http;           /* serves requests; owns lev and connections */
    struct evconnlistener *lev;    /* the admin socket (owned by http once bound) */
    struct event *resume_ev;       /* re-enable lev after an EMFILE pause */
    int pause_ms;                  /* --accept-pause-ms */
    struct admin_info info;        /* what the pages say about the server */
    char url[ADDR_STRLEN + 16];    /* "http://127.0.0.1:9090" */
};

/* The master's one admin. evhttp keeps the listener's callback argument for
 * itself, so the accept error callback finds the admin here. */
static struct admin *admin_self;

int admin_listen_fd(const struct admin *a)
{
    return a != NULL && a->lev != NULL ? (int)evconnlistener_get_fd(a->lev) : -1;
}

void admin_update(struct admin *a, const struct config *cfg)
{
    if (a != NULL)
        a->info.protocol = cfg->proto->name;
}

void admin_page_add(struct admin_page *p, const char *s)
{
    if (!p->failed && evbuffer_add(p->buf, s, strlen(s)) < 0)
        p->failed = true;
}

void admin_page_printf(struct admin_page *p, const char *fmt, ...)
{
    va_list ap;
    if (p->failed)
        return;
    va_start(ap, fmt);
    if (evbuffer_add_vprintf(p->buf, fmt, ap) < 0)
        p->failed = true;
    va_end(ap);
}

/* Whole number in 0..ADMIN_LIMIT_MAX, or -1. */
static int admin_parse_limit(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+' || v < 0 ||
        v > ADMIN_LIMIT_MAX)
        return -1;
    return (int)v;
}

static const char *admin_reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static bool admin_healthy(void)
{
    for (int i = 0; i < scoreboard_slots(); i++) {
        struct scoreboard_slot_view v;
        if (scoreboard_read_slot(i, &v) == 0 && v.pid > 0 && v.state == SCOREBOARD_RUNNING)
            return true;
    }
    return false;
}

/* /status: validate the query, then render. Returns the HTTP status. */
static int admin_status(struct admin *a, struct evhttp_request *req, struct admin_page *p,
                        const char **type)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    int code = 400;
    if (query != NULL && evhttp_parse_query_str(query, &params) < 0) {
        admin_page_add(p, "malformed query string\n");
        goto out;
    }
    const char *format = evhttp_find_header(&params, "format");
    const char *limit_text = evhttp_find_header(&params, "limit");
    int limit = ADMIN_LIMIT_DEFAULT;
    if (limit_text != NULL && (limit = admin_parse_limit(limit_text)) < 0) {
        admin_page_printf(p, "limit must be a whole number in 0..%d\n", ADMIN_LIMIT_MAX);
        goto out;
    }
    if (format == NULL || strcmp(format, "text") == 0) {
        admin_status_text(p, &a->info, limit);
    } else if (strcmp(format, "json") == 0) {
        *type = "application/json";
        admin_status_json(p, &a->info, limit);
    } else {
        admin_page_add(p, "format must be text or json\n");
        goto out;
    }
    code = 200;
out:
    evhttp_clear_headers(&params);
    return code;
}

static void admin_request_cb(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    struct admin_page page = { evbuffer_new(), false };
    if (page.buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
    const char *type = "text/plain; charset=utf-8";
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    int code;
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_add_header(hdrs, "Allow", "GET");
        admin_page_add(&page, "only GET is allowed\n");
        code = 405;
    } else if (path == NULL) {
        admin_page_add(&page, "bad request\n");
        code = 400;
    } else if (strcmp(path, "/healthz") == 0) {
        bool ok = admin_healthy();
        admin_page_add(&page, ok ? "ok\n" : "no worker running\n");
        code = ok ? 200 : 503;
    } else if (strcmp(path, "/status") == 0) {
        code = admin_status(a, req, &page, &type);
    } else if (strcmp(path, "/metrics") == 0) {
        type = "text/plain; version=0.0.4; charset=utf-8";
        admin_metrics(&page);
        code = 200;
    } else {
        admin_page_add(&page, "not found: try /healthz, /status, /metrics\n");
        code = 404;
    }
    if (page.failed) {
        log_err("admin: out of memory building the response");
        evhttp_send_error(req, 500, NULL);
        evbuffer_free(page.buf);
        return;
    }
    evhttp_add_header(hdrs, "Content-Type", type);
    evhttp_add_header(hdrs, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, admin_reason(code), page.buf);
    evbuffer_free(page.buf);
}

static void admin_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin *a = arg;
    (void)fd;
    (void)what;
    evconnlistener_enable(a->lev);
}

/* Out of fds: the socket stays readable, so retrying at once would spin.
 * Pause the admin listener like the public one. */
static void admin_accept_error_cb(struct evconnlistener *lev, void *arg)
{
    struct admin *a = admin_self;
    (void)arg; /* evhttp's */
    if (a == NULL)
        return;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("admin accept4: %s; pausing the admin listener for %d ms", strerror(err),
             a->pause_ms);
    evconnlistener_disable(lev);
    struct timeval tv = { a->pause_ms / 1000, (a->pause_ms % 1000) * 1000 };
    event_add(a->resume_ev, &tv);
}

int admin_start(struct admin **out, struct event_base *base, const struct config *cfg,
                int listen_fd, int nslots)
{
    char err[256];
    int fd = -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    *out = NULL;
    if (!cfg->admin_enabled)
        return 0;
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        log_err("calloc: %s", strerror(errno));
        return -1;
    }
    a->pause_ms = cfg->accept_pause_ms;
    a->info.model = config_model_name(cfg->model);
    a->info.protocol = cfg->proto->name;
    a->info.pid = getpid();
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) < 0 ||
        addr_format_listen((struct sockaddr *)&ss, a->info.listening,
                           sizeof(a->info.listening)) < 0)
        snprintf(a->info.listening, sizeof(a->info.listening), "{?, *:*}");

    fd = cfg->inherit_admin_fd >= 0 ? net_adopt_listener(cfg->inherit_admin_fd, err, sizeof(err))
                                    : net_listen(&cfg->admin, ADMIN_BACKLOG, 0, err, sizeof(err));
    if (fd < 0) {
        if (!cfg->admin_explicit && errno == EADDRINUSE) {
            /* Another server has the default: run without admin rather
             * than refuse to serve. Naming --admin makes this fatal. */
            log_warn("admin listener: %s; running without it (see --admin)", err);
            free(a);
            return 0;
        }
        log_err("--admin: %s", err);
        goto fail;
    }
    char where[ADDR_STRLEN];
    sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
        addr_format((struct sockaddr *)&ss, where, sizeof(where)) < 0) {
        log_err("admin getsockname: %s", strerror(errno));
        goto fail;
    }
    snprintf(a->url, sizeof(a->url), "http://%s", where);

    if (scoreboard_create(nslots, cfg->status_conns) < 0)
        goto fail;
    a->http = evhttp_new(base);
    a->resume_ev = evtimer_new(base, admin_resume_cb, a);
    if (a->http == NULL || a->resume_ev == NULL) {
        log_err("evhttp_new failed");
        goto fail;
    }
    evhttp_set_timeout(a->http, cfg->admin_timeout);
    evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
    evhttp_set_max_body_size(a->http, ADMIN_MAX_BODY);
    /* Let every method reach admin_request_cb, which answers 405 with Allow. */
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(a->http, admin_request_cb, a);
    a->lev = evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                0, fd);
    if (a->lev == NULL) {
        log_err("evconnlistener_new (admin) failed");
        goto fail;
    }
    fd = -1; /* owned by lev */
    if (evhttp_bind_listener(a->http, a->lev) == NULL) {
        log_err("evhttp_bind_listener failed");
        evconnlistener_free(a->lev); /* closes the socket */
        a->lev = NULL;
        goto fail;
    }
    /* evhttp set its accept callback; the error callback is ours. */
    evconnlistener_set_error_cb(a->lev, admin_accept_error_cb);
    admin_self = a;
    *out = a;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    admin_free(a);
    return -1;
}

void admin_announce(const struct admin *a)
{
    if (a == NULL)
        return;
    fprintf(stderr, "handoffd: admin %s\n", a->url);
    fflush(stderr);
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    if (a->http != NULL)
        evhttp_free(a->http); /* frees lev (closing the socket) and connections */
    if (a->resume_ev != NULL)
        event_free(a->resume_ev);
    scoreboard_destroy();
    if (admin_self == a)
        admin_self = NULL;
    free(a);
}
