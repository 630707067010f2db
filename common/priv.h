/* priv: dropping privileges. Workers of a master started as root with
 * --user become that user for good; the master itself keeps only the
 * capabilities it still needs once its sockets are bound. */
#ifndef HANDOFF_PRIV_H
#define HANDOFF_PRIV_H

#include <stddef.h>
#include <sys/types.h>

/* Become UID/GID with GID as the only group, and check that it took and
 * cannot be undone. Returns 0, or -1 with the failed step in err. */
int priv_drop(uid_t uid, gid_t gid, char *err, size_t errlen);

/* Root master that starts workers as another user: keep only CAP_SETUID,
 * CAP_SETGID (to start them), CAP_KILL (to signal them) and
 * CAP_NET_BIND_SERVICE, in the effective, permitted and bounding sets.
 * Returns 0, or -1 with the reason in err. */
int priv_limit_master(char *err, size_t errlen);

#endif
