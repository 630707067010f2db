/* test_reliability: what the reliability scenarios share. Each scenario
 * runs in a short form under `make test` and in a full form under
 * `make soak` (HANDOFF_SOAK=1), and reports one row to the soak report
 * ($HANDOFF_SOAK_REPORT) when asked. Also: handoff-bench run in the
 * background, and per-process figures from /proc. */
#ifndef HANDOFF_TEST_RELIABILITY_H
#define HANDOFF_TEST_RELIABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

/* Whether this is the full (soak) form. */
bool soak_full(void);
/* SHORT_V under make test, FULL_V under make soak. */
long soak_pick(long short_v, long full_v);

/* Remember PID (a child of this test) for reliability_fini. */
void track_pid(pid_t pid);
/* Suite .fini: SIGKILL every tracked process still running (and a server's
 * workers), so a failed assertion leaves nothing behind. */
void reliability_fini(void);
/* server_start_limited (NOFILE 0: unchanged), tracked. */
int server_start_tracked(struct server *s, const char *const *args, int nofile);

/* One line of the soak report. */
struct soak_row {
    const char *scenario; /* short name */
    char load[320];       /* the load held while faults were injected */
    char faults[200];     /* what was injected, how often */
    uint64_t attempted;   /* requests (or connections) the clients tried */
    uint64_t failed;      /* of those, not answered */
    uint64_t lost;        /* failed beyond what the fault itself made impossible */
    long fds_leaked;      /* fds left open in server processes afterwards;
                             negative: not applicable (the server exited) */
    double p99_ms;        /* worst p99 latency seen; negative: not measured */
    char note[600];       /* what failed and why it could not be served */
};
/* Append ROW to $HANDOFF_SOAK_REPORT (tab-separated); no-op without it. */
void soak_report(const struct soak_row *row);

/* A load generator (handoff-bench, wrk) running in the background; its
 * stdout and stderr go to temporary files. */
struct bench_job {
    pid_t pid;           /* the tool, until finished */
    int status;          /* its wait status, once reaped */
    bool reaped;         /* it has exited and been waited for */
    char out_path[64];   /* its stdout */
    char err_path[64];   /* its stderr */
    char err_tail[2048]; /* the end of its stderr, once finished */
};
/* Start TOOL (looked up in $PATH) with ARGS (NULL-terminated, without
 * argv[0]). Returns 0 or -1. */
int job_start(struct bench_job *j, const char *tool, const char *const *args);
/* Start $HANDOFF_BENCH (default: handoff-bench beside $HANDOFFD). */
int bench_job_start(struct bench_job *j, const char *const *args);
/* handoff-bench keep-alive load: CONNS connections of PROTO (echo, http)
 * to 127.0.0.1:PORT for SECS seconds, JSON on stdout. */
void load_start(struct bench_job *j, const char *proto, int port, int conns, int secs);
/* Whether the tool has exited (reaps it). */
bool job_done(struct bench_job *j);
/* Wait up to TIMEOUT_MS (then SIGKILL) and read its stdout into OUT.
 * Returns its exit status, or -1 if it did not exit by itself. */
int bench_job_finish(struct bench_job *j, int timeout_ms, char *out, size_t len);
/* wrk --latency's 99th percentile in ms from its output, or -1. */
double wrk_p99_ms(const char *out);
/* A number in the bench's JSON: KEY inside object SECTION (NULL: top
 * level). Returns -1 when absent. */
double json_num(const char *json, const char *section, const char *key);

/* Socket fds PID holds, or -1. */
int proc_sockets(pid_t pid);
/* Resident set size of PID in KiB (VmRSS), or -1. */
long proc_rss_kib(pid_t pid);
/* CPU time PID has used, in seconds (schedstat), or -1. */
double proc_cpu_s(pid_t pid);
/* Sum of N in every "PREFIX<N>" of the server log at PATH (e.g. the
 * master's "... with N connections"); COUNT gets the number of matches. */
long log_sum_after(const char *path, const char *prefix, int *count);


/* The master's N workers (waiting up to 5 s for exactly N), into KIDS. */
int workers_of(const struct server *s, pid_t *kids, int n);
/* SIGTERM; the server must exit 0 within 20 s with no sanitizer report. */
void stop_clean(struct server *s);
/* The most CPU seconds any one server process uses over MS milliseconds. */
double server_cpu_over(const struct server *s, int ms);
/* Connect to 127.0.0.1:PORT with small socket buffers (4 KiB receive,
 * 8 KiB send), so the kernel holds little of what a stalled stream sends
 * and what the server buffers shows in its RSS. */
int connect_small_buffers(int port);
/* Bytes OFF.. of connection CONN's stream, into BUF. */
typedef void (*stream_fill_fn)(int conn, uint64_t off, unsigned char *buf, size_t len);
/* Each of N (at most 64) connections sends its stream until the server
 * stops taking bytes (no progress on any for 500 ms; at most 20 s); SENT
 * gets each one's byte count. */
void send_until_stalled(const int *fds, int n, uint64_t *sent, stream_fill_fn fill);

/* What N clients that send and never read cost a one-worker server. */
struct stall {
    int n;              /* clients (at most 64) */
    int fds[64];        /* their sockets; the caller closes them */
    uint64_t sent[64];  /* bytes each sent before the server stopped taking more */
    double rss_kib;     /* the worker's RSS growth per client */
    double cpu_s;       /* most CPU any server process used in the second after */
};
/* On S (one worker, already warmed up by the caller), N clients with small
 * buffers send their FILL stream until the server stops taking bytes. */
void stall_measure(const struct server *s, struct stall *st, int n, stream_fill_fn fill);
/* The documented RSS bound for a connection holding DATA_BYTES in evbuffers:
 * chains are power-of-two allocations, so up to twice their data, plus
 * 64 KiB for the connection itself and page granularity; under ASan (1/8
 * shadow, red zones) a quarter more. */
double rss_bound_kib(double data_bytes);
/* Under ASan, freed memory waits in a quarantine of up to 256 MiB and would
 * show as RSS: servers started after this call run without it. */
void asan_quarantine_off(void);

/* Bytes B (LEN of them) arrived on connection CONN. */
typedef void (*chunk_fn)(int conn, const unsigned char *b, size_t len, void *arg);
/* Read each of N (at most 128) connections until the server closes it or
 * TIMEOUT_MS passes, handing every chunk to ON_DATA; CLEAN[i] tells whether
 * connection i ended with a FIN (not a reset, not the deadline). Closes
 * every fd and sets it to -1; returns how many were open at the deadline. */
int read_until_closed(int *fds, int n, int timeout_ms, chunk_fn on_data, void *arg,
                      bool *clean);

#endif
