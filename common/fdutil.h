/* fdutil: process-wide fd bookkeeping: closing everything a freshly forked
 * child does not own, and counting open fds for leak checks. */
#ifndef HANDOFF_FDUTIL_H
#define HANDOFF_FDUTIL_H

#include <stddef.h>

/* Close every fd except those listed (negative entries are ignored).
 * Used right after fork so a child keeps only the fds it owns. */
int fdutil_close_except(const int *keep, size_t nkeep);

/* Number of open fds in this process (from /proc/self/fd), or -1. */
int fdutil_count_open(void);
/* Number of open fds of process PID, or -1. */
int fdutil_count_open_pid(int pid);

#endif
