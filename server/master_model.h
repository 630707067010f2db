/* master_model: what the master's worker-slot supervision (master.c) shares
 * with the models that run under it. master.c spawns a worker per slot,
 * reaps and respawns it with back-off, and runs the stop sequence; a model
 * decides who accepts: model_pass.c (the master accepts and hands fds over)
 * or model_prefork.c (each worker accepts: models accept and reuseport).
 * Internal to the master process; main.c only sees master.h. */
#ifndef HANDOFF_MASTER_MODEL_H
#define HANDOFF_MASTER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/util.h>

#include "config.h"
#include "dispatch.h"

struct event;
struct event_base;
struct evconnlistener;
struct admin;
struct master;

enum slot_state { SLOT_EMPTY = 0, SLOT_STARTING, SLOT_RUNNING, SLOT_DRAINING };

/* The master's view of one worker. */
struct slot {
    int index;               /* worker=K */
    pid_t pid;               /* 0 when no process runs in this slot */
    int chan;                /* master's channel end, owned here; -1 when none */
    enum slot_state state;   /* lifecycle */
    struct event *chan_ev;   /* channel readable: reports from the worker */
    struct event *send_ev;   /* channel writable again after EAGAIN */
    struct event *respawn_ev;/* back-off before the next start */
    uint64_t live;           /* handed to the worker and not reported closed */
    uint64_t total;          /* connections handed to this slot, all lives */
    uint64_t restarts;       /* processes started after the first */
    uint64_t started_ns;     /* when the current process was forked */
    unsigned backoff_ms;     /* next respawn delay after a quick death */
    bool drain_pending;      /* CTL_DRAIN must follow the queued fds */
    bool active;             /* part of the current generation: respawned */
    bool retired;            /* an earlier generation's worker, draining */
    int *q_fd;               /* accepted fds waiting to be sent (ring) */
    uint64_t *q_stamp;       /* their accept times */
    size_t q_head, q_len;    /* ring position and fill */
    uint64_t sent_ns;        /* when the last CTL_PASS went to this slot */
};

struct master {
    const struct config *cfg;
    const struct master_model *model; /* who accepts: model_pass or model_prefork */
    void *model_state;            /* the model's own, from open() until close() */
    struct event_base *base;
    struct evconnlistener *lev;   /* owns the listening socket */
    struct admin *admin;          /* --admin listener; NULL when off */
    int listen_fd;                /* same socket, for getsockname */
    struct slot *slots;           /* 2 x --workers: one generation, plus one
                                     draining during a reload */
    int nslots;                   /* capacity of slots */
    int nactive;                  /* slots in the current generation */
    struct config *cfg_mut;       /* the same config, writable for reloads */
    bool reloading;               /* a new generation is starting */
    pid_t upgrade_pid;            /* SIGUSR2: the new master, until it is ready */
    int upgrade_fd;               /* read end of its readiness pipe, owned here */
    struct event *upgrade_ev;     /* upgrade_fd readable */
    struct dispatch dispatch;
    uint64_t *load_scratch;       /* dispatch_pick inputs, nslots each */
    bool *elig_scratch;
    struct event *flush_ev;       /* send queued fds after an accept burst */
    struct event *delay_ev;       /* ... or when the first --pass-delay-us ends */
    uint64_t delay_at_ns;         /* when delay_ev fires; 0: not armed */
    struct event *pause_ev;       /* EMFILE back-off */
    struct event *stop_ev;        /* drain deadline */
    struct event *sig_ev[7];
    bool listening;               /* listener currently enabled */
    bool paused_fds;              /* paused after EMFILE/ENFILE */
    bool stopping;
    bool announced;               /* start-up line printed */
    int exit_status;
    /* counters */
    uint64_t accepted, handed, closed, refused, lost, emfile_pauses, full_pauses;
};

/* The model-specific half of a supervised server. Every hook is required. */
struct master_model {
    /* Open the listening socket(s) before any worker starts and set
     * m->listen_fd for the start-up line. Returns 0 or -1 (logged). */
    int (*open)(struct master *m);
    /* The listening socket slot S's worker accepts on (the master's copy,
     * which the child keeps across fork), or -1 when the master accepts. */
    int (*worker_listen_fd)(const struct master *m, const struct slot *s);
    /* Worker readiness, load or the set of live workers changed. */
    void (*update)(struct master *m);
    /* The channel to slot S has room again after EAGAIN. */
    void (*slot_writable)(struct master *m, struct slot *s);
    /* The worker in slot S exited; called before it is respawned. */
    void (*slot_gone)(struct master *m, struct slot *s);
    /* Stop accepting (first step of the stop sequence). */
    void (*stop)(struct master *m);
    /* Release what open() acquired; safe after a failed or partial open. */
    void (*close)(struct master *m);
};

extern const struct master_model model_pass;
extern const struct master_model model_prefork;

/* Whether slot S has a live worker with an open channel. */
bool slot_alive(const struct slot *s);
/* Tell the worker in slot S to drain, after any fds still queued for it. */
void slot_send_drain(struct master *m, struct slot *s);
/* Event callback (ARG: the slot): its channel has room again; runs the
 * model's slot_writable. */
void slot_send_cb(evutil_socket_t fd, short what, void *arg);

#endif
