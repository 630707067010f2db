/* model: the server designs selected with --model and what they share.
 * pass, accept and reuseport run under the master's worker supervision
 * (master_run in master.h, model parts in model_pass.c / model_prefork.c);
 * fork and iterative have no worker slots and run here. Every design
 * serves connections through the same connection layer and protocols. */
#ifndef HANDOFF_MODEL_H
#define HANDOFF_MODEL_H

#include "config.h"

/* Print the start-up line tests and scripts wait for:
 * "handoffd: listening {*:PORT, *:*} model=M workers=N protocol=P pid=PID". */
void model_announce(const struct config *cfg, int listen_fd, int workers);

/* UNP §2.10: the parent accepts and forks one child per connection.
 * Returns the process exit status. */
int model_fork_run(const struct config *cfg);
/* One connection at a time in a single process. Returns the exit status. */
int model_iterative_run(const struct config *cfg);

#endif
