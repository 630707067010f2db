/* master: the process that owns the listening socket. For model pass it
 * accepts and hands each fd to a pre-forked worker; it supervises workers,
 * respawning any that die, and runs the stop sequence on signals. */
#ifndef HANDOFF_MASTER_H
#define HANDOFF_MASTER_H

#include "config.h"

/* Run the server described by CFG until it stops. Returns the process exit
 * status (0 after a graceful or immediate stop). CFG is rewritten by a
 * successful reload (SIGHUP). */
int master_run(struct config *cfg);

#endif
