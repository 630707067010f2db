/* notify: see notify.h. Only the master calls these. A failure is logged
 * and returned, never fatal: the server keeps serving, and systemd will
 * report the missing state change itself (start-up timeout). */
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"

static int notify_send(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0) {
        log_warn("sd_notify(\"%s\"): %s", state, strerror(-rc));
        return -1;
    }
    return 0;
}

int notify_ready(void)
{
    return notify_send("READY=1\nSTATUS=accepting connections");
}

int notify_reloading(void)
{
    /* MONOTONIC_USEC lets systemd (Type=notify-reload) match the reload
     * to this message; older managers ignore it. */
    struct timespec ts;
    char msg[96];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    return notify_send(msg);
}

int notify_stopping(void)
{
    return notify_send("STOPPING=1\nSTATUS=draining connections");
}
