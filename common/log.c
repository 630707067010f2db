/* log: formatting and destination of diagnostic lines. Each line is built in
 * one buffer and written with a single write(2) so lines from several
 * processes sharing a file never interleave mid-line. */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char log_role[32] = "handoffd";
static enum log_level log_level_cur = LOG_INFO;
static int log_out = STDERR_FILENO;   /* owned by this module when != 2 */
static char log_path[4096];

void log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

void log_set_level(enum log_level level) { log_level_cur = level; }
enum log_level log_get_level(void) { return log_level_cur; }
int log_fd(void) { return log_out; }

int log_open(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        if (log_out != STDERR_FILENO)
            close(log_out);
        log_out = STDERR_FILENO;
        log_path[0] = '\0';
        return 0;
    }
    if (strlen(path) >= sizeof(log_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (log_out != STDERR_FILENO)
        close(log_out);
    log_out = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    return 0;
}

int log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    char path[sizeof(log_path)];
    memcpy(path, log_path, sizeof(path));
    return log_open(path);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = { "error", "warn", "info", "debug" };
    if (level > log_level_cur)
        return;
    int saved = errno;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L, log_role, (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* A failed diagnostic write has nowhere better to be reported. */
    ssize_t w = write(log_out, line, len);
    (void)w;
    errno = saved;
}
