/* scoreboard: the shared-memory region behind the admin pages. The master
 * maps it (MAP_SHARED|MAP_ANONYMOUS) before forking workers, so every worker
 * inherits the same pages; each process then publishes its own figures there
 * and the master reads them without asking anyone and without locks.
 *
 * Layout: master counters, then one fixed-size record per worker slot (a
 * master-written part and a worker-written part on separate cache lines),
 * then per slot a table of --status-conns-per-worker rows describing live
 * connections. Every field has exactly one writer, named on the field:
 * single-writer counters are plain relaxed atomic stores (no read-modify-
 * write needed), and each connection row is a seqlock so a reader never
 * takes a half-written address pair for a real one.
 *
 * Memory: 128 bytes of counters, 384 bytes per slot, plus 56 bytes per row
 * (1024 rows by default: 56 KiB per worker). Pages are touched only as rows
 * are used, and the reader scans only up to the highest row ever used.
 *
 * Every publishing call returns at once in a process without a scoreboard
 * (--admin off) or in the wrong role (a fork-model child, the master calling
 * a worker hook), so the hooks in master.c, worker.c and conn.c are free
 * when the admin listener is off. */
#ifndef HANDOFF_SCOREBOARD_H
#define HANDOFF_SCOREBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct bufferevent;

/* Hand-off latency buckets: upper bounds 2^0 .. 2^22 microseconds (1 us to
 * about 4.2 s), then one overflow bucket (+Inf). */
#define SCOREBOARD_HIST_FINITE 23
#define SCOREBOARD_HIST_BUCKETS (SCOREBOARD_HIST_FINITE + 1)
/* Request status classes 1xx..5xx. */
#define SCOREBOARD_CLASSES 5

/* A slot's lifecycle as the master sees it. */
enum scoreboard_state {
    SCOREBOARD_EMPTY = 0,    /* no process in the slot */
    SCOREBOARD_STARTING = 1, /* forked, CTL_READY not yet received */
    SCOREBOARD_RUNNING = 2,  /* taking connections */
    SCOREBOARD_DRAINING = 3, /* told to finish and exit */
};

/* The master's connection counters. */
enum scoreboard_counter {
    SCOREBOARD_ACCEPTED = 0,      /* accept4 returned a connection */
    SCOREBOARD_HANDED,            /* sent to a worker with SCM_RIGHTS */
    SCOREBOARD_CLOSED,            /* reported closed by workers (refused included) */
    SCOREBOARD_REFUSED,           /* closed without service: no worker, draining */
    SCOREBOARD_LOST,              /* live in a worker that died */
    SCOREBOARD_EMFILE_PAUSES,     /* listener paused for EMFILE/ENFILE */
    SCOREBOARD_FULL_PAUSES,       /* listener paused because every worker was full */
    SCOREBOARD_NCOUNTERS,
};

/* ---- master side --------------------------------------------------------- */

/* Map the region for NSLOTS workers with ROWS connection rows each. Call
 * once, before forking. Returns 0 or -1 (logged). */
int scoreboard_create(int nslots, int rows);
/* Unmap it (master exit). */
void scoreboard_destroy(void);
void scoreboard_count(enum scoreboard_counter c, uint64_t n);
void scoreboard_listener_paused(bool paused);
/* Slot SLOT now runs PID (0 for none) in STATE. Entering STARTING counts
 * a start; every start after the first is a restart. */
void scoreboard_slot_set(int slot, pid_t pid, enum scoreboard_state state);

/* ---- worker side --------------------------------------------------------- */

/* Become the single writer of SLOT's worker part: called once in a worker
 * after fork. Clears what a dead predecessor left (rows, live count) and
 * keeps the slot's cumulative counters going. */
void scoreboard_worker_attach(int slot);
/* A connection accepted by the master at ACCEPTED_NS (its ctl stamp) is now
 * owned by this worker: record the hand-off latency. Stamps of 0 or in the
 * future (a confused peer) are ignored. */
void scoreboard_handoff(uint64_t accepted_ns);
/* Connection FD opened on BEV: count it, list it in a row when one is free,
 * and count its bytes from now on. Returns the row, or -1 when unlisted. */
int scoreboard_conn_open(int fd, struct bufferevent *bev, uint64_t accepted_ns);
/* Count the bytes through BEV's buffers from now on: for a connection's
 * bufferevent created after scoreboard_conn_open (one that was parked). */
void scoreboard_conn_watch(struct bufferevent *bev);
/* The connection in ROW (or -1) turned out to be {LOCAL, FOREIGN} (a PROXY
 * protocol header named the real client). */
void scoreboard_conn_readdress(int row, const struct sockaddr *local,
                               const struct sockaddr *foreign);
/* The connection listed in ROW (or -1) is closed. */
void scoreboard_conn_close(int row);
/* A request was answered with HTTP status STATUS (100..599); counted by its
 * class. For protocols with requests; others never call it. */
void scoreboard_request(int status);

/* ---- readers (the master's admin pages) ---------------------------------- */

struct scoreboard_master_view {
    uint64_t counters[SCOREBOARD_NCOUNTERS]; /* enum scoreboard_counter */
    bool listener_paused;                    /* listener disabled by the master */
    uint64_t started_ns;                     /* scoreboard_create time (monotonic) */
};

struct scoreboard_slot_view {
    pid_t pid;                               /* 0 when the slot is empty */
    bool used;                               /* a worker has ever run here (the
                                                second half of the slots only
                                                fills during a reload) */
    enum scoreboard_state state;
    uint64_t restarts;                       /* starts after the first */
    uint64_t live;                           /* 0 unless the worker is attached */
    uint64_t total;                          /* connections opened, all lives */
    uint64_t requests[SCOREBOARD_CLASSES];   /* [0] = 1xx ... [4] = 5xx */
    uint64_t bytes_in, bytes_out;            /* read from / written to clients */
    uint64_t hist[SCOREBOARD_HIST_BUCKETS];  /* hand-off latency, per bucket */
    uint64_t hist_sum_ns;                    /* sum of the observed latencies */
};

struct scoreboard_conn_view {
    int slot;                                /* worker slot */
    pid_t pid;                               /* worker pid */
    uint64_t start_ns;                       /* master's accept time (monotonic) */
    struct sockaddr_storage local, foreign;  /* as the server sees them */
};

/* Whether a scoreboard exists in this process. */
bool scoreboard_active(void);
/* Number of slots (0 without a scoreboard). */
int scoreboard_slots(void);
void scoreboard_read_master(struct scoreboard_master_view *v);
/* Returns 0, or -1 when SLOT is out of range. */
int scoreboard_read_slot(int slot, struct scoreboard_slot_view *v);
/* Walk the live connections in slot order: *CURSOR starts at 0. Returns
 * true with *V filled, false when there are no more. Rows that change
 * while being read are retried a few times and then skipped. */
bool scoreboard_next_conn(size_t *cursor, struct scoreboard_conn_view *v);
/* Upper bound of latency bucket I in seconds (I < SCOREBOARD_HIST_FINITE). */
double scoreboard_hist_bound(int i);
const char *scoreboard_state_name(enum scoreboard_state s);

#endif
