/* proto_echo: RFC 862. Everything read is written back; the connection
 * layer's watermarks stop reading while the peer is not taking the echo. */
#include <event2/buffer.h>

#include "conn.h"

static enum proto_rc echo_read(struct conn *c)
{
    /* Moves the chains without copying the bytes. */
    evbuffer_remove_buffer(conn_input(c), conn_output(c), evbuffer_get_length(conn_input(c)));
    return PROTO_OK;
}

const struct proto proto_echo = {
    .name = "echo",
    .read = echo_read,
    .park = proto_park_always,
};
