/* http_static: see http_static.h. */
#include "http_static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INDEX_NAME "index.html"

static const struct {
    const char *ext;  /* without the dot, lower case */
    const char *mime; /* Content-Type sent for it */
} mime_table[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm", "text/html; charset=utf-8" },
    { "txt", "text/plain; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "json", "application/json" },
    { "xml", "application/xml" },
    { "csv", "text/csv; charset=utf-8" },
    { "md", "text/markdown; charset=utf-8" },
    { "png", "image/png" },
    { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },
    { "webp", "image/webp" },
    { "svg", "image/svg+xml" },
    { "ico", "image/x-icon" },
    { "avif", "image/avif" },
    { "woff", "font/woff" },
    { "woff2", "font/woff2" },
    { "ttf", "font/ttf" },
    { "otf", "font/otf" },
    { "pdf", "application/pdf" },
    { "wasm", "application/wasm" },
    { "zip", "application/zip" },
    { "gz", "application/gzip" },
    { "tar", "application/x-tar" },
    { "mp3", "audio/mpeg" },
    { "ogg", "audio/ogg" },
    { "wav", "audio/wav" },
    { "mp4", "video/mp4" },
    { "webm", "video/webm" },
};

const char *http_static_mime(const char *name, size_t len)
{
    size_t i = len;
    while (i > 0 && name[i - 1] != '.' && name[i - 1] != '/')
        i--;
    if (i == 0 || name[i - 1] != '.')
        return "application/octet-stream";
    const char *ext = name + i;
    size_t elen = len - i;
    for (size_t k = 0; k < sizeof(mime_table) / sizeof(mime_table[0]); k++)
        if (strlen(mime_table[k].ext) == elen && strncasecmp(ext, mime_table[k].ext, elen) == 0)
            return mime_table[k].mime;
    return "application/octet-stream";
}

int http_static_open_root(const char *dir)
{
    return open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode the path of TARGET into a root-relative name in OUT
 * ("a/b/c", "." for the root), dropping empty and "." segments. Returns
 * the name's length, or minus the status to answer. */
static long path_decode(const char *target, size_t len, char *out, size_t outlen)
{
    if (len == 0 || target[0] != '/')
        return -400;
    size_t n = 0;   /* bytes in out */
    size_t seg = 0; /* where the current segment starts in out */
    for (size_t i = 1; i <= len; i++) {
        char ch;
        bool end = i == len || target[i] == '?' || target[i] == '#';
        if (end || target[i] == '/') {
            /* A segment is complete: judge it after decoding, so that
             * "%2e%2e" is caught exactly like "..". */
            size_t slen = n - seg;
            if (slen == 2 && out[seg] == '.' && out[seg + 1] == '.')
                return -403;
            if (slen == 0 || (slen == 1 && out[seg] == '.')) {
                n = seg; /* drop it */
            } else if (!end) {
                if (n + 1 >= outlen)
                    return -404;
                out[n++] = '/';
                seg = n;
            }
            if (end)
                break;
            continue;
        }
        if (target[i] == '%') {
            int hi = i + 2 < len ? hexval(target[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(target[i + 2]) : -1;
            if (lo < 0)
                return -400;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else {
            ch = target[i];
        }
        /* NUL would cut the name short in the kernel; '/' decoded from %2f
         * would sneak a separator past the segment check. */
        if (ch == '\0' || ch == '/')
            return -403;
        if (n + 1 >= outlen)
            return -404;
        out[n++] = ch;
    }
    /* A trailing '/' leaves n just after one; drop it. */
    while (n > 0 && out[n - 1] == '/')
        n--;
    if (n == 0)
        out[n++] = '.';
    out[n] = '\0';
    return (long)n;
}

/* openat2 with RESOLVE_BENEATH: the kernel refuses ".." past DIRFD and
 * symlinks leading out of it (EXDEV), as well as /proc magic links. */
static int open_beneath(int dirfd, const char *name)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    /* O_NONBLOCK: opening a FIFO someone left in the root must not block. */
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
}

static int status_for_errno(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return 404;
    case EXDEV:   /* would leave the root */
    case ELOOP:   /* symlink loop, or a magic link */
    case EACCES:
    case EPERM:
        return 403;
    default:
        return 500;
    }
}

int http_static_resolve(int root_fd, const char *target, size_t len, struct http_file *out)
{
    char name[PATH_MAX];
    long n = path_decode(target, len, name, sizeof(name) - sizeof("/" INDEX_NAME));
    if (n < 0)
        return (int)-n;
    int fd = open_beneath(root_fd, name);
    if (fd < 0)
        return status_for_errno(errno);
    struct stat st;
    if (fstat(fd, &st) < 0)
        goto fail_500;
    if (S_ISDIR(st.st_mode)) {
        /* Opened from the root again, not from the directory, so an index
         * that links elsewhere inside the root still works. */
        close(fd);
        memcpy(name + n, "/" INDEX_NAME, sizeof("/" INDEX_NAME));
        n += (long)sizeof("/" INDEX_NAME) - 1;
        fd = open_beneath(root_fd, name);
        if (fd < 0)
            return status_for_errno(errno);
        if (fstat(fd, &st) < 0)
            goto fail_500;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return 404;
    }
    out->fd = fd;
    out->size = st.st_size;
    out->mtime = st.st_mtime;
    out->mime = http_static_mime(name, (size_t)n);
    return 200;
fail_500:
    close(fd);
    return 500;
}
