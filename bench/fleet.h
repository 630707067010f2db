/* fleet: the parent side of a run. It forks one engine process per
 * --processes, each with a pipe back to the parent; reads and validates
 * their progress and final reports; prints the progress line once a second;
 * forwards SIGINT/SIGTERM; kills children that outlive every limit; and
 * merges the finals into one summary or JSON object. */
#ifndef HANDOFF_BENCH_FLEET_H
#define HANDOFF_BENCH_FLEET_H

#include <stdint.h>

#include "opts.h"

/* Descriptors each process keeps for itself (stdio, report pipe, epoll,
 * libevent's signal pipe, log), not available for sockets. */
#define FLEET_FD_RESERVE 32

/* Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it) and
 * set *CAP to the descriptors one process may use for sockets. Returns 0 or
 * -1 (logged). */
int fleet_raise_nofile(uint64_t *cap);

/* Run O to the end. Returns 0 when every process completed and reported
 * (the summary or JSON is on stdout), -1 on a set-up failure or a process
 * that died or sent garbage (logged). */
int fleet_run(const struct opts *o);

#endif
