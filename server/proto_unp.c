/* proto_unp: the UNP ch.30 test protocol. The client sends a decimal byte
 * count and a newline; the server writes that many bytes, then reads the
 * next count, until the client closes. Large answers are produced in chunks
 * as the send buffer drains, so a client asking for a gigabyte costs no more
 * memory than one asking for a kilobyte. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "conn.h"
#include "worker.h"

#define UNP_LINE_MAX 24  /* a count line longer than this is malformed */
#define UNP_CHUNK 16384  /* bytes added to the output per step */

struct unp_state {
    uint64_t remaining; /* bytes still owed for the current request */
};

static const char unp_fill[UNP_CHUNK] = { [0 ... UNP_CHUNK - 1] = 'x' };

/* Queue owed bytes until the output is full or the debt is paid. */
static enum proto_rc unp_produce(struct conn *c)
{
    struct unp_state *s = conn_state(c);
    while (s->remaining > 0 && !conn_output_full(c)) {
        size_t n = s->remaining < UNP_CHUNK ? (size_t)s->remaining : UNP_CHUNK;
        if (evbuffer_add_reference(conn_output(c), unp_fill, n, NULL, NULL) < 0)
            return PROTO_ABORT;
        s->remaining -= n;
    }
    return PROTO_OK;
}

static enum proto_rc unp_read(struct conn *c)
{
    struct unp_state *s = conn_state(c);
    struct evbuffer *in = conn_input(c);
    while (s->remaining == 0) {
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > UNP_LINE_MAX)
                return PROTO_ABORT;
            break; /* no whole count line (yet) */
        }
        if (eol.pos > UNP_LINE_MAX || eol.pos == 0)
            return PROTO_ABORT;
        char line[UNP_LINE_MAX + 2];
        evbuffer_remove(in, line, (size_t)eol.pos + 1);
        size_t len = (size_t)eol.pos;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (len == 0)
            return PROTO_ABORT;
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)line[i]))
                return PROTO_ABORT;
            v = v * 10 + (uint64_t)(line[i] - '0');
            if (v > c->w->cfg->unp_max_bytes)
                return PROTO_ABORT;
        }
        s->remaining = v;
        if (unp_produce(c) != PROTO_OK)
            return PROTO_ABORT;
        if (s->remaining > 0)
            return PROTO_OK; /* the write callback continues the answer */
    }
    /* A draining worker closes at the first boundary. */
    if (c->w->draining && evbuffer_get_length(in) == 0)
        return PROTO_CLOSE;
    return PROTO_OK;
}


static enum proto_rc unp_write(struct conn *c)
{
    struct unp_state *s = conn_state(c);
    if (s->remaining == 0)
        return PROTO_OK;
    enum proto_rc rc = unp_produce(c);
    if (rc != PROTO_OK || s->remaining > 0)
        return rc;
    /* Answer complete: serve any count that arrived meanwhile. */
    return unp_read(c);
}

static enum proto_rc unp_drain(struct conn *c)
{
    struct unp_state *s = conn_state(c);
    /* Between requests nothing is owed: closing loses nothing. */
    return (s->remaining == 0 && evbuffer_get_length(conn_input(c)) == 0) ? PROTO_CLOSE
                                                                          : PROTO_OK;
}

/* Nothing owed: nothing of the protocol to keep but the (zero) count. */
static bool unp_park(struct conn *c)
{
    struct unp_state *s = conn_state(c);
    return s->remaining == 0;
}

const struct proto proto_unp = {
    .name = "unp",
    .state_size = sizeof(struct unp_state),
    .read = unp_read,
    .write = unp_write,
    .drain = unp_drain,
    .park = unp_park,
};
