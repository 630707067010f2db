/* scoreboard: see scoreboard.h.
 *
 * Concurrency: the master and each worker are separate processes sharing
 * these pages. Nothing here takes a lock or blocks. A counter has one
 * writer, so it is updated with a relaxed load and store of its own value
 * (no lock prefix) and read with a relaxed load; a reader may see counters
 * from slightly different instants, never a torn value. A connection row is
 * rewritten under a seqlock (odd sequence while writing) because its fields
 * are only meaningful together.
 *
 * The region's geometry (base, slot count, rows) lives in this process's
 * statics, set by the master before it forks and so inherited by workers;
 * nothing in the shared pages is used to compute an address. */
#include "scoreboard.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "ctl.h"
#include "log.h"

/* Master-wide figures. Writer: the master. */
struct sb_master {
    _Atomic uint64_t counters[SCOREBOARD_NCOUNTERS]; /* enum scoreboard_counter */
    _Atomic uint32_t listener_paused;                /* 1 while the listener is off */
    _Atomic uint64_t started_ns;                     /* set once, before any fork */
};

/* One worker slot. The two parts sit on separate cache lines so the master
 * writing its part does not slow the worker writing its counters. */
struct sb_slot {
    /* Writer: the master. */
    _Atomic int pid;                  /* process in the slot, 0 when empty */
    _Atomic uint32_t state;           /* enum scoreboard_state */
    _Atomic uint64_t starts;          /* processes started in this slot */
    /* Writer: the worker currently attached to this slot (one at a time:
     * the master starts a successor only after reaping its predecessor). */
    _Alignas(64) _Atomic int owner;   /* pid that attached; its part is valid
                                       * while this equals `pid` */
    _Atomic uint32_t rows_hw;         /* rows in use or used since attach */
    _Atomic uint64_t live;            /* open connections */
    _Atomic uint64_t total;           /* connections opened, all lives */
    _Atomic uint64_t requests[SCOREBOARD_CLASSES]; /* answered, by status class */
    _Atomic uint64_t bytes_in;        /* read from clients */
    _Atomic uint64_t bytes_out;       /* written to clients */
    _Atomic uint64_t hist[SCOREBOARD_HIST_BUCKETS]; /* hand-off latency counts */
    _Atomic uint64_t hist_sum_ns;     /* sum of hand-off latencies */
};

/* One live connection. Writer: the worker owning the slot, under `seq`. */
struct sb_row {
    _Atomic uint32_t seq;             /* odd while being rewritten */
    _Atomic int pid;                  /* worker pid; 0 when the row is free */
    _Atomic uint64_t start_ns;        /* master's accept time */
    _Atomic uint64_t local[2];        /* local address, 16 bytes (IPv4: first 4) */
    _Atomic uint64_t foreign[2];      /* foreign address, likewise */
    _Atomic uint16_t local_port;      /* host byte order */
    _Atomic uint16_t foreign_port;
    _Atomic uint8_t family;           /* AF_INET or AF_INET6 */
};

enum sb_role { SB_NONE = 0, SB_MASTER, SB_WORKER };

static void *sb_base;              /* the mapping, inherited across fork */
static size_t sb_size;             /* its length */
static int sb_nslots;              /* slots in the region */
static uint32_t sb_rows;           /* rows per slot */
static struct sb_master *sb_m;     /* master part */
static struct sb_slot *sb_slot_tab;/* sb_nslots slots */
static struct sb_row *sb_row_tab;  /* sb_nslots * sb_rows rows */
static enum sb_role sb_role;       /* what this process may write */
/* Worker-private: which slot it writes and its row allocator. */
static struct sb_slot *sb_me;      /* this worker's slot */
static struct sb_row *sb_my_rows;  /* this worker's rows */
static int sb_my_pid;              /* getpid() at attach */
static uint32_t sb_hw;             /* rows handed out so far (high water) */
static uint32_t *sb_free;          /* freed row numbers, a stack */
static uint32_t sb_nfree;          /* entries in sb_free */

#define SB_LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define SB_STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

/* Single-writer add: only the owner ever stores, so no atomic RMW. */
static inline void sb_add(_Atomic uint64_t *x, uint64_t n)
{
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static size_t sb_align(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

int scoreboard_create(int nslots, int rows)
{
    if (sb_base != NULL || nslots <= 0 || rows < 0)
        return -1;
    size_t off_slots = sb_align(sizeof(struct sb_master), 64);
    size_t off_rows = off_slots + (size_t)nslots * sizeof(struct sb_slot);
    size_t len = off_rows + (size_t)nslots * (size_t)rows * sizeof(struct sb_row);
    long page = sysconf(_SC_PAGESIZE);
    len = sb_align(len, page > 0 ? (size_t)page : 4096);
    /* NORESERVE: rows are touched only as connections use them. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        log_err("mmap(scoreboard, %zu bytes): %s", len, strerror(errno));
        return -1;
    }
    sb_base = p;
    sb_size = len;
    sb_nslots = nslots;
    sb_rows = (uint32_t)rows;
    sb_m = p;
    sb_slot_tab = (struct sb_slot *)((char *)p + off_slots);
    sb_row_tab = (struct sb_row *)((char *)p + off_rows);
    sb_role = SB_MASTER;
    atomic_store(&sb_m->started_ns, ctl_now_ns());
    /* The listener is created disabled and enabled once workers are ready. */
    atomic_store(&sb_m->listener_paused, 1);
    log_debug("scoreboard: %d slots, %d rows each, %zu bytes", nslots, rows, len);
    return 0;
}

void scoreboard_destroy(void)
{
    if (sb_base != NULL)
        munmap(sb_base, sb_size);
    free(sb_free);
    sb_free = NULL;
    sb_base = NULL;
    sb_m = NULL;
    sb_slot_tab = NULL;
    sb_row_tab = NULL;
    sb_me = NULL;
    sb_my_rows = NULL;
    sb_nslots = 0;
    sb_rows = 0;
    sb_role = SB_NONE;
}

/* ---- master side ---------------------------------------------------------- */

void scoreboard_count(enum scoreboard_counter c, uint64_t n)
{
    if (sb_role == SB_MASTER && (unsigned)c < SCOREBOARD_NCOUNTERS)
        sb_add(&sb_m->counters[c], n);
}

void scoreboard_listener_paused(bool paused)
{
    if (sb_role == SB_MASTER)
        SB_STORE(sb_m->listener_paused, paused ? 1u : 0u);
}

void scoreboard_slot_set(int slot, pid_t pid, enum scoreboard_state state)
{
    if (sb_role != SB_MASTER || slot < 0 || slot >= sb_nslots)
        return;
    struct sb_slot *s = &sb_slot_tab[slot];
    if (state == SCOREBOARD_STARTING)
        sb_add(&s->starts, 1);
    SB_STORE(s->pid, (int)pid);
    SB_STORE(s->state, (uint32_t)state);
}

/* ---- worker side ---------------------------------------------------------- */

void scoreboard_worker_attach(int slot)
{
    if (sb_base == NULL || slot < 0 || slot >= sb_nslots)
        return;
    sb_role = SB_WORKER;
    sb_me = &sb_slot_tab[slot];
    sb_my_rows = &sb_row_tab[(size_t)slot * sb_rows];
    sb_my_pid = (int)getpid();
    /* A predecessor killed mid-write may have left rows claimed or odd. */
    uint32_t hw = SB_LOAD(sb_me->rows_hw);
    for (uint32_t r = 0; r < hw && r < sb_rows; r++) {
        struct sb_row *row = &sb_my_rows[r];
        SB_STORE(row->pid, 0);
        uint32_t seq = SB_LOAD(row->seq);
        if (seq & 1u)
            atomic_store_explicit(&row->seq, seq + 1, memory_order_release);
    }
    SB_STORE(sb_me->rows_hw, 0);
    SB_STORE(sb_me->live, 0);
    sb_hw = 0;
    sb_nfree = 0;
    free(sb_free);
    sb_free = NULL;
    if (sb_rows > 0) {
        sb_free = calloc(sb_rows, sizeof(*sb_free));
        if (sb_free == NULL) {
            log_warn("scoreboard: no memory for the row table; connections go unlisted");
            sb_my_rows = NULL;
        }
    }
    /* Last: the master trusts this part once owner equals the slot's pid. */
    atomic_store_explicit(&sb_me->owner, sb_my_pid, memory_order_release);
}

static int sb_bucket(uint64_t ns)
{
    uint64_t us = (ns + 999) / 1000;
    if (us <= 1)
        return 0;
    int b = 64 - __builtin_clzll(us - 1); /* ceil(log2(us)) */
    return b < SCOREBOARD_HIST_FINITE ? b : SCOREBOARD_HIST_FINITE;
}

void scoreboard_handoff(uint64_t accepted_ns)
{
    if (sb_role != SB_WORKER)
        return;
    uint64_t now = ctl_now_ns();
    if (accepted_ns == 0 || accepted_ns > now)
        return;
    uint64_t d = now - accepted_ns;
    sb_add(&sb_me->hist[sb_bucket(d)], 1);
    sb_add(&sb_me->hist_sum_ns, d);
}

/* Bytes the bufferevent read from the socket into the input buffer. */
static void sb_input_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    (void)arg;
    if (info->n_added > 0)
        sb_add(&sb_me->bytes_in, info->n_added);
}

/* Bytes the bufferevent wrote from the output buffer to the socket. */
static void sb_output_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    (void)b;
    (void)arg;
    if (info->n_deleted > 0)
        sb_add(&sb_me->bytes_out, info->n_deleted);
}

/* Address bytes and port of SA into a row's compact form. */
static void sb_pack(const struct sockaddr *sa, uint64_t addr[2], uint16_t *port)
{
    unsigned char raw[16] = { 0 };
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        memcpy(raw, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(raw, &s6->sin6_addr, 16);
        *port = ntohs(s6->sin6_port);
    }
    memcpy(addr, raw, 16);
}

static int sb_row_take(void)
{
    if (sb_my_rows == NULL)
        return -1;
    if (sb_nfree > 0)
        return (int)sb_free[--sb_nfree];
    if (sb_hw < sb_rows)
        return (int)sb_hw++;
    return -1; /* table full: the connection is counted, not listed */
}

static void sb_row_give(int r)
{
    sb_free[sb_nfree++] = (uint32_t)r;
}

/* Fill ROW under its seqlock, so a reader never sees half a pair. */
static void sb_row_write(struct sb_row *row, const struct sockaddr *l, const struct sockaddr *f,
                         uint64_t start_ns)
{
    uint64_t la[2], fa[2];
    uint16_t lp, fp;
    sb_pack(l, la, &lp);
    sb_pack(f, fa, &fp);
    uint32_t seq = SB_LOAD(row->seq);
    SB_STORE(row->seq, seq + 1);
    atomic_thread_fence(memory_order_release);
    SB_STORE(row->start_ns, start_ns);
    SB_STORE(row->local[0], la[0]);
    SB_STORE(row->local[1], la[1]);
    SB_STORE(row->foreign[0], fa[0]);
    SB_STORE(row->foreign[1], fa[1]);
    SB_STORE(row->local_port, lp);
    SB_STORE(row->foreign_port, fp);
    SB_STORE(row->family, (uint8_t)l->sa_family);
    SB_STORE(row->pid, sb_my_pid);
    atomic_store_explicit(&row->seq, seq + 2, memory_order_release);
}

void scoreboard_conn_watch(struct bufferevent *bev)
{
    if (sb_role != SB_WORKER || bev == NULL)
        return;
    if (evbuffer_add_cb(bufferevent_get_input(bev), sb_input_cb, NULL) == NULL ||
        evbuffer_add_cb(bufferevent_get_output(bev), sb_output_cb, NULL) == NULL)
        log_warn("scoreboard: evbuffer_add_cb failed; this connection's bytes go uncounted");
}

int scoreboard_conn_open(int fd, struct bufferevent *bev, uint64_t accepted_ns)
{
    if (sb_role != SB_WORKER)
        return -1;
    sb_add(&sb_me->live, 1);
    sb_add(&sb_me->total, 1);
    scoreboard_conn_watch(bev);
    int r = sb_row_take();
    if (r < 0)
        return -1;
    struct sockaddr_storage l, f;
    socklen_t ll = sizeof(l), fl = sizeof(f);
    if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 ||
        getpeername(fd, (struct sockaddr *)&f, &fl) < 0 ||
        (l.ss_family != AF_INET && l.ss_family != AF_INET6) || l.ss_family != f.ss_family) {
        /* Peer already gone or not TCP/IP: nothing worth listing. */
        sb_row_give(r);
        return -1;
    }
    sb_row_write(&sb_my_rows[r], (struct sockaddr *)&l, (struct sockaddr *)&f, accepted_ns);
    if ((uint32_t)r >= SB_LOAD(sb_me->rows_hw))
        atomic_store_explicit(&sb_me->rows_hw, sb_hw, memory_order_release);
    return r;
}

void scoreboard_conn_readdress(int r, const struct sockaddr *local, const struct sockaddr *foreign)
{
    if (sb_role != SB_WORKER || r < 0 || (uint32_t)r >= sb_rows ||
        (local->sa_family != AF_INET && local->sa_family != AF_INET6) ||
        local->sa_family != foreign->sa_family)
        return;
    struct sb_row *row = &sb_my_rows[r];
    sb_row_write(row, local, foreign, SB_LOAD(row->start_ns));
}

void scoreboard_conn_close(int row)
{
    if (sb_role != SB_WORKER)
        return;
    uint64_t live = SB_LOAD(sb_me->live);
    SB_STORE(sb_me->live, live > 0 ? live - 1 : 0);
    if (row < 0 || sb_my_rows == NULL || (uint32_t)row >= sb_hw)
        return;
    /* One store frees the row: a reader sees it live or free, and a reuse
     * goes through the seqlock. */
    atomic_store_explicit(&sb_my_rows[row].pid, 0, memory_order_release);
    sb_row_give(row);
}

void scoreboard_request(int status)
{
    if (sb_role != SB_WORKER || status < 100 || status > 599)
        return;
    sb_add(&sb_me->requests[status / 100 - 1], 1);
}

/* ---- readers --------------------------------------------------------------- */

bool scoreboard_active(void)
{
    return sb_base != NULL;
}

int scoreboard_slots(void)
{
    return sb_nslots;
}

void scoreboard_read_master(struct scoreboard_master_view *v)
{
    memset(v, 0, sizeof(*v));
    if (sb_m == NULL)
        return;
    for (int i = 0; i < SCOREBOARD_NCOUNTERS; i++)
        v->counters[i] = SB_LOAD(sb_m->counters[i]);
    v->listener_paused = SB_LOAD(sb_m->listener_paused) != 0;
    v->started_ns = SB_LOAD(sb_m->started_ns);
}

int scoreboard_read_slot(int slot, struct scoreboard_slot_view *v)
{
    memset(v, 0, sizeof(*v));
    if (slot < 0 || slot >= sb_nslots)
        return -1;
    struct sb_slot *s = &sb_slot_tab[slot];
    uint32_t st = SB_LOAD(s->state);
    uint64_t starts = SB_LOAD(s->starts);
    v->pid = (pid_t)SB_LOAD(s->pid);
    v->state = st <= SCOREBOARD_DRAINING ? (enum scoreboard_state)st : SCOREBOARD_EMPTY;
    v->used = starts > 0;
    v->restarts = starts > 0 ? starts - 1 : 0;
    /* A live count is the current process's only once it has attached. */
    if (v->pid > 0 && atomic_load_explicit(&s->owner, memory_order_acquire) == (int)v->pid)
        v->live = SB_LOAD(s->live);
    v->total = SB_LOAD(s->total);
    for (int i = 0; i < SCOREBOARD_CLASSES; i++)
        v->requests[i] = SB_LOAD(s->requests[i]);
    v->bytes_in = SB_LOAD(s->bytes_in);
    v->bytes_out = SB_LOAD(s->bytes_out);
    for (int i = 0; i < SCOREBOARD_HIST_BUCKETS; i++)
        v->hist[i] = SB_LOAD(s->hist[i]);
    v->hist_sum_ns = SB_LOAD(s->hist_sum_ns);
    return 0;
}

/* Unpack a row's address into a sockaddr. */
static void sb_unpack(uint8_t family, const uint64_t addr[2], uint16_t port,
                      struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, addr, 4);
        s4->sin_port = htons(port);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, addr, 16);
        s6->sin6_port = htons(port);
    }
}

/* Read one row consistently. Returns true for a live, well-formed row. */
static bool sb_row_read(struct sb_row *row, struct scoreboard_conn_view *v)
{
    for (int tries = 0; tries < 4; tries++) {
        uint32_t s1 = atomic_load_explicit(&row->seq, memory_order_acquire);
        if (s1 & 1u)
            continue;
        int pid = SB_LOAD(row->pid);
        uint64_t start = SB_LOAD(row->start_ns);
        uint64_t la[2] = { SB_LOAD(row->local[0]), SB_LOAD(row->local[1]) };
        uint64_t fa[2] = { SB_LOAD(row->foreign[0]), SB_LOAD(row->foreign[1]) };
        uint16_t lp = SB_LOAD(row->local_port), fp = SB_LOAD(row->foreign_port);
        uint8_t family = SB_LOAD(row->family);
        atomic_thread_fence(memory_order_acquire);
        if (SB_LOAD(row->seq) != s1)
            continue;
        /* Written by another process: check it before use. */
        if (pid <= 0 || (family != AF_INET && family != AF_INET6))
            return false;
        v->pid = (pid_t)pid;
        v->start_ns = start;
        sb_unpack(family, la, lp, &v->local);
        sb_unpack(family, fa, fp, &v->foreign);
        return true;
    }
    return false;
}

bool scoreboard_next_conn(size_t *cursor, struct scoreboard_conn_view *v)
{
    if (sb_base == NULL || sb_rows == 0)
        return false;
    size_t end = (size_t)sb_nslots * sb_rows;
    while (*cursor < end) {
        size_t slot = *cursor / sb_rows, r = *cursor % sb_rows;
        struct sb_slot *s = &sb_slot_tab[slot];
        int pid = SB_LOAD(s->pid);
        uint32_t hw = atomic_load_explicit(&s->rows_hw, memory_order_acquire);
        if (pid <= 0 || atomic_load_explicit(&s->owner, memory_order_acquire) != pid ||
            r >= hw) {
            *cursor = (slot + 1) * sb_rows; /* nothing more in this slot */
            continue;
        }
        (*cursor)++;
        if (sb_row_read(&sb_row_tab[slot * sb_rows + r], v) && v->pid == pid) {
            v->slot = (int)slot;
            return true;
        }
    }
    return false;
}

double scoreboard_hist_bound(int i)
{
    return 1e-6 * (double)(1ull << i);
}

const char *scoreboard_state_name(enum scoreboard_state s)
{
    switch (s) {
    case SCOREBOARD_STARTING:
        return "starting";
    case SCOREBOARD_RUNNING:
        return "running";
    case SCOREBOARD_DRAINING:
        return "draining";
    case SCOREBOARD_EMPTY:
    default:
        return "empty";
    }
}
