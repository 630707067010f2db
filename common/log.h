/* log: one-line diagnostics to stderr or a log file, tagged with the
 * process role and pid so master and worker lines can be told apart. */
#ifndef HANDOFF_LOG_H
#define HANDOFF_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Set the role tag ("master", "worker 3") printed on every line. */
void log_set_role(const char *role);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Send output to PATH (appending) instead of stderr; NULL means stderr.
 * Returns 0, or -1 with errno set, keeping the previous destination. */
int log_open(const char *path);
/* Reopen the current file (after rotation); no-op for stderr. */
int log_reopen(void);
/* The fd lines are written to, so a forked child can keep it open. */
int log_fd(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
