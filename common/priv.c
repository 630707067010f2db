/* priv: see priv.h. Capabilities are set with the raw capset(2) call
 * rather than a library, since four bits is all this needs. */
#include "priv.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int priv_drop(uid_t uid, gid_t gid, char *err, size_t errlen)
{
    if (setgroups(1, &gid) < 0) {
        snprintf(err, errlen, "setgroups: %s", strerror(errno));
        return -1;
    }
    if (setgid(gid) < 0) {
        snprintf(err, errlen, "setgid(%d): %s", (int)gid, strerror(errno));
        return -1;
    }
    if (setuid(uid) < 0) {
        snprintf(err, errlen, "setuid(%d): %s", (int)uid, strerror(errno));
        return -1;
    }
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
        snprintf(err, errlen, "ids did not change as asked");
        return -1;
    }
    /* A real drop cannot be taken back. */
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        snprintf(err, errlen, "root could be regained after setuid");
        return -1;
    }
    return 0;
}

int priv_limit_master(char *err, size_t errlen)
{
    const unsigned keep = (1u << CAP_SETUID) | (1u << CAP_SETGID) | (1u << CAP_KILL) |
                          (1u << CAP_NET_BIND_SERVICE);
    int last = CAP_LAST_CAP;
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    if (f != NULL) {
        if (fscanf(f, "%d", &last) != 1)
            last = CAP_LAST_CAP;
        fclose(f);
    }
    /* The bounding set first: dropping from it needs CAP_SETPCAP, which the
     * capset below gives up. */
    for (int c = 0; c <= last; c++) {
        if (c < 32 && (keep & (1u << c)))
            continue;
        /* Already gone (a master exec'd by one that limited itself). */
        if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 0)
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) {
            snprintf(err, errlen, "prctl(PR_CAPBSET_DROP, %d): %s", c, strerror(errno));
            return -1;
        }
    }
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[0].effective = keep;
    data[0].permitted = keep;
    if (syscall(SYS_capset, &hdr, data) < 0) {
        snprintf(err, errlen, "capset: %s", strerror(errno));
        return -1;
    }
    return 0;
}
