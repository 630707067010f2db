/* req: the request a client sends and how its answer is checked, for each
 * protocol: echo (payload back byte for byte), unp ("B\n" answered by exactly
 * B bytes) and http (GET; status line, headers and body parsed by
 * http_parser, so Content-Length, chunked and read-until-close bodies all
 * work). Answers are consumed incrementally from an evbuffer as they
 * arrive; nothing is ever buffered whole. */
#ifndef HANDOFF_BENCH_REQ_H
#define HANDOFF_BENCH_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "opts.h"

struct evbuffer;

/* One process's request, built once and shared by all its connections. */
struct req_ctx {
    enum opts_proto proto;          /* how answers are checked */
    char *msg;                      /* the request bytes (owned) */
    size_t msg_len;                 /* length of msg */
    uint64_t expect;                /* echo, unp: answer length */
    http_parser_settings settings;  /* http: parser callbacks */
};

/* Per-connection progress through the current answer. */
struct req_state {
    uint64_t got;        /* answer bytes consumed so far */
    http_parser hp;      /* http: parser state */
    bool complete;       /* http: the parser saw the end of the message */
    bool keep_alive;     /* http: the server keeps the connection open */
    unsigned status;     /* http: status code of the complete answer */
};

enum req_rc {
    REQ_MORE = 0,   /* answer incomplete: wait for more input */
    REQ_DONE,       /* answer complete and valid */
    REQ_STATUS,     /* http: complete, but the status is not 2xx */
    REQ_BAD,        /* wrong bytes, unparsable, or bytes past the end */
    REQ_CLOSED,     /* (req_eof) closed before any byte of the answer */
    REQ_SHORT,      /* (req_eof) closed in the middle of the answer */
};

/* Build the request for O. CONN_CLOSE: http asks for "Connection: close".
 * Returns 0, or -1 (out of memory). */
int req_ctx_init(struct req_ctx *c, const struct opts *o, bool conn_close);
void req_ctx_free(struct req_ctx *c);

/* Reset S before sending a request on its connection. */
void req_begin(const struct req_ctx *c, struct req_state *s);
/* Consume answer bytes from IN (all of them, unless the answer turns out
 * bad), adding their count to *CONSUMED. */
enum req_rc req_feed(const struct req_ctx *c, struct req_state *s, struct evbuffer *in,
                     uint64_t *consumed);
/* The peer closed: decide what the answer so far amounts to. */
enum req_rc req_eof(const struct req_ctx *c, struct req_state *s);

#endif
