/* proto_discard: RFC 863. Reads and drops everything until the peer closes. */
#include <event2/buffer.h>

#include "conn.h"

static enum proto_rc discard_read(struct conn *c)
{
    struct evbuffer *in = conn_input(c);
    evbuffer_drain(in, evbuffer_get_length(in));
    return PROTO_OK;
}

const struct proto proto_discard = {
    .name = "discard",
    .read = discard_read,
    .park = proto_park_always,
};
