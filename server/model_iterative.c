/* model_iterative: UNP's baseline row, one connection at a time in a
 * single process. The process is one worker (worker=0 in whoami, pid= its
 * own) accepting on its own listener with --max-conns forced to 1: while a
 * connection is served the listener is paused and later clients wait in the
 * kernel backlog. Same connection layer and protocols as every other model;
 * SIGTERM/SIGINT drain the current connection (up to --drain-timeout) and
 * exit 0, SIGQUIT exits at once. The start-up line says workers=1.
 *
 * fd ownership: the listening socket is ours until worker_run takes it
 * (its evconnlistener, LEV_OPT_CLOSE_ON_FREE, closes it on every path).
 */
#include "model.h"

#include <signal.h>
#include <stdio.h>

#include "log.h"
#include "net.h"
#include "notify.h"
#include "worker.h"

int model_iterative_run(const struct config *cfg)
{
    /* static: the worker reads it through pointers for the process's life */
    static struct config one;
    char err[512];
    one = *cfg;
    one.max_conns = 1;
    log_set_role("iterative");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    /* Whoever saw the start-up line may signal us before the worker's
     * handlers exist; blocked until then (worker_run unblocks them), such a
     * signal waits instead of killing the process. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGQUIT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    int fd = net_listen(&one.listen, one.backlog, 0, err, sizeof(err));
    if (fd < 0) {
        log_err("%s", err);
        return 1;
    }
    model_announce(&one, fd, 1);
    notify_ready(); /* the service manager sees the process exit on stop */
    return worker_run(&one, 0, -1, fd);
}
