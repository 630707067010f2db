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

/* Whether this is the full (soak) form. */
bool soak_full(void);
/* SHORT_V under make test, FULL_V under make soak. */
long soak_pick(long short_v, long full_v);

/* One line of the soak report. */
struct soak_row {
    const char *scenario; /* short name */
    char load[200];       /* the load held while faults were injected */
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

/* handoff-bench running in the background; its stdout (the --json line)
 * and stderr go to temporary files. */
struct bench_job {
    pid_t pid;           /* the tool, until finished */
    char out_path[64];   /* its stdout */
    char err_path[64];   /* its stderr */
};
/* Start $HANDOFF_BENCH (default: handoff-bench beside $HANDOFFD) with ARGS
 * (NULL-terminated, without argv[0]). Returns 0 or -1. */
int bench_job_start(struct bench_job *j, const char *const *args);
/* Wait up to TIMEOUT_MS (then SIGKILL) and read its stdout into OUT.
 * Returns its exit status, or -1 if it did not exit by itself. */
int bench_job_finish(struct bench_job *j, int timeout_ms, char *out, size_t len);
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

#endif
