/* worker: a pre-forked worker process. It owns its end of the control
 * channel, its own event_base (created after fork) and every connection the
 * master hands it. The same code serves model fork's one-connection children
 * (no channel) and the accept/reuseport models (a listener of their own). */
#ifndef HANDOFF_WORKER_H
#define HANDOFF_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct conn;

struct worker {
    const struct config *cfg;    /* read-only after fork */
    struct event_base *base;     /* this process's loop */
    int slot;                    /* worker=K in whoami (child number for fork) */
    int chan;                    /* channel to the master, owned here; -1 if none */
    struct event *chan_ev;       /* readable channel */
    struct event *report_ev;     /* deferred, batched CTL_CLOSED report */
    struct event *drain_ev;      /* drain deadline */
    struct event *sig_ev[4];     /* SIGTERM, SIGINT, SIGQUIT, SIGUSR1 */
    struct evconnlistener *lev;  /* own listener (models accept/reuseport) */
    struct conn *conns;          /* live connections (doubly linked): the
                                    active ones first, then the parked */
    struct conn *conns_tail;     /* last of them */
    uint64_t nconns;             /* live connections */
    uint64_t nactive;            /* of those, active (not parked) */
    struct event *sweep_ev;      /* every CONN_PARK_MS: park idle connections,
                                    return freed memory to the system */
    uint32_t sweep_gen;          /* sweeps so far; stamped on each I/O */
    uint64_t trim_peak;          /* most connections since the last trim */
    uint64_t loop_peak;          /* most connections since the loop was built */
    bool trim_next;              /* malloc_trim at the next sweep */
    bool rebase;                 /* leave the loop and rebuild it (empty
                                    after a crowd: see worker_rebase) */
    uint64_t total;              /* connections served */
    uint32_t closed_unreported;  /* closes not yet told to the master */
    uint32_t refused_unreported; /* of those, fds refused on arrival */
    uint64_t rejected_msgs;      /* bad control messages since last logged */
    uint64_t rejected_conns;     /* connections they dropped */
    uint64_t rejected_logged_ns; /* when that was last logged */
    bool draining;               /* no new connections; exit when empty */
    bool exit_when_idle;         /* model fork: exit after the last close */
};

/* Run a worker in a freshly forked process. CHAN is the worker's channel end
 * (or -1), LISTEN_FD a listener to accept on (or -1). Returns the process
 * exit status; never returns before the worker is done. */
int worker_run(const struct config *cfg, int slot, int chan, int listen_fd);
/* Serve exactly one connection FD, then return (model fork's child). */
int worker_serve_one(const struct config *cfg, int slot, int fd);

/* Called by conn.c. */
void worker_conn_added(struct worker *w, struct conn *c);
void worker_conn_removed(struct worker *w, struct conn *c);
/* C became active (ACTIVE) or parked: keeps the list's order. */
void worker_conn_activity(struct worker *w, struct conn *c, bool active);

#endif
