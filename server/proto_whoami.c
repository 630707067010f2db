/* proto_whoami: on arrival, one line naming the connection's socket pair and
 * the process serving it, "{LOCAL, FOREIGN} worker=K pid=PID"; then discard
 * until the peer closes. The local address is the one the client dialled,
 * read with getsockname on the accepted socket, not the wildcard. */
#include <event2/buffer.h>

#include "addr.h"
#include "conn.h"

static enum proto_rc whoami_open(struct conn *c)
{
    char line[ADDR_PAIRLEN + 64];
    if (conn_unpark(c) < 0)
        return PROTO_ABORT;
    int n = conn_whoami(c, line, sizeof(line) - 1);
    if (n < 0)
        return PROTO_ABORT;
    line[n++] = '\n';
    if (evbuffer_add(conn_output(c), line, (size_t)n) < 0)
        return PROTO_ABORT;
    return PROTO_OK;
}

static enum proto_rc whoami_read(struct conn *c)
{
    struct evbuffer *in = conn_input(c);
    evbuffer_drain(in, evbuffer_get_length(in));
    return PROTO_OK;
}

const struct proto proto_whoami = {
    .name = "whoami",
    .open = whoami_open,
    .read = whoami_read,
    .park = proto_park_always,
};
