/* handoff-bench: a load generator for what wrk cannot do (connection churn,
 * UNP-style multi-process clients, holding many idle connections). main
 * parses options and decides the exit status: 0 run completed (errors are
 * counted in the report, not fatal), 1 set-up failure, 2 bad arguments. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include "fleet.h"
#include "log.h"
#include "opts.h"

int main(int argc, char **argv)
{
    static struct opts o; /* static: read by forked children for their life */
    char err[512];
    switch (opts_parse(&o, argc, argv, err, sizeof(err))) {
    case OPTS_OK:
        break;
    case OPTS_EXIT_OK:
        return 0;
    case OPTS_ERROR:
        fprintf(stderr, "handoff-bench: %s\n", err);
        return 2;
    }
    log_set_role("handoff-bench");
    /* A peer closing while we write is counted, not fatal. */
    signal(SIGPIPE, SIG_IGN);
    uint64_t cap;
    if (fleet_raise_nofile(&cap) < 0)
        return 1;
    int added;
    if (opts_fit_fds(&o, cap, &added, err, sizeof(err)) < 0) {
        fprintf(stderr, "handoff-bench: %s\n", err);
        return 2;
    }
    if (added > 0)
        log_info("%" PRIu64 " connections at %" PRIu64 " fds per process: using %d processes",
                 o.connections, cap, o.processes);
    return fleet_run(&o) == 0 ? 0 : 1;
}
