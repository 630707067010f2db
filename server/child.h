/* child: turning a freshly forked child of the master into a process of its
 * own: the master's event_base is released (its epoll instance is shared
 * with the parent until then), signal dispositions are reset, and every fd
 * the child does not own is closed. Used for workers and fork-model children. */
#ifndef HANDOFF_CHILD_H
#define HANDOFF_CHILD_H

#include <stddef.h>

struct event_base;

/* PARENT_BASE is freed (after event_reinit, so the parent's registrations
 * are untouched). KEEP lists the fds to keep besides stdio and the log.
 * Returns 0 or -1 (the caller should _exit). */
int child_detach(struct event_base *parent_base, const int *keep, size_t nkeep,
                 const char *role);

struct config;

/* --user: become that user for good (after child_detach, before serving).
 * Returns 0, or -1 (logged; the caller should _exit). */
int child_drop_privileges(const struct config *cfg);

#endif
