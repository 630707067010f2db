/* child: see child.h. */
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "fdutil.h"
#include "log.h"
#include "priv.h"

int child_detach(struct event_base *parent_base, const int *keep, size_t nkeep,
                 const char *role)
{
    log_set_role(role);
    /* After fork the epoll fd still names the parent's instance: deleting
     * events through it would unregister them in the parent. event_reinit
     * gives this copy a private backend first, so freeing it is harmless. */
    if (parent_base != NULL) {
        if (event_reinit(parent_base) < 0)
            log_warn("event_reinit failed in child");
        event_base_free(parent_base);
    }
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    int all[16];
    size_t n = 0;
    all[n++] = STDIN_FILENO;
    all[n++] = STDOUT_FILENO;
    all[n++] = STDERR_FILENO;
    all[n++] = log_fd();
    for (size_t i = 0; i < nkeep && n < sizeof(all) / sizeof(all[0]); i++)
        all[n++] = keep[i];
    if (fdutil_close_except(all, n) < 0) {
        log_err("close_range: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int child_drop_privileges(const struct config *cfg)
{
    char err[256];
    if (cfg->user[0] == '\0')
        return 0;
    if (priv_drop(cfg->uid, cfg->gid, err, sizeof(err)) < 0) {
        log_err("--user %s: %s", cfg->user, err);
        return -1;
    }
    return 0;
}
