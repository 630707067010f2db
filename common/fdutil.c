/* fdutil: see fdutil.h. */
#include "fdutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int fdutil_close_except(const int *keep, size_t nkeep)
{
    int sorted[16];
    size_t n = 0;
    if (nkeep > sizeof(sorted) / sizeof(sorted[0])) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < nkeep; i++)
        if (keep[i] >= 0)
            sorted[n++] = keep[i];
    qsort(sorted, n, sizeof(int), cmp_int);
    unsigned lo = 0;
    for (size_t i = 0; i <= n; i++) {
        unsigned hi = (i < n) ? (unsigned)sorted[i] : ~0U;
        if (hi > lo) {
            unsigned last = (i < n) ? hi - 1 : ~0U;
            if (close_range(lo, last, 0) < 0)
                return -1;
        }
        lo = (i < n) ? (unsigned)sorted[i] + 1 : lo;
    }
    return 0;
}

int fdutil_count_open_pid(int pid)
{
    char path[64];
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/fd");
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    /* opendir's own fd is listed while counting our own process. */
    return pid > 0 ? n : n - 1;
}

int fdutil_count_open(void)
{
    return fdutil_count_open_pid(0);
}
