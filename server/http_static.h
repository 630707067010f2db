/* http_static: mapping a request path to a file under --root without ever
 * leaving it. The path is percent-decoded first, ".." segments and NUL bytes
 * are refused outright, and the file is opened with openat2(RESOLVE_BENEATH)
 * relative to the root directory, so a symlink that points outside (or a
 * race that swaps one in) fails in the kernel instead of being served. */
#ifndef HANDOFF_HTTP_STATIC_H
#define HANDOFF_HTTP_STATIC_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* A file ready to be sent. */
struct http_file {
    int fd;           /* open for reading; owned by whoever holds this struct */
    off_t size;       /* bytes to send */
    time_t mtime;     /* for Last-Modified and If-Modified-Since */
    const char *mime; /* Content-Type, from the name's extension */
};

/* Open DIR as a serving root. Returns an O_PATH directory fd (the caller
 * owns it) or -1 with errno set. */
int http_static_open_root(const char *dir);

/* Resolve the request target TARGET (LEN bytes as sent: "/path?query")
 * under ROOT_FD. Returns 200 with *OUT filled (the caller then owns
 * out->fd), or the status to answer instead: 400 for a malformed target,
 * 403 for one that would leave the root, 404 when there is no such regular
 * file, 500 for other failures. A directory is served by its index.html. */
int http_static_resolve(int root_fd, const char *target, size_t len, struct http_file *out);

/* Content-Type for the file name NAME of LEN bytes. */
const char *http_static_mime(const char *name, size_t len);

#endif
