/* test_compare: the comparison harness behind `make bench` (bench/compare.py)
 * in its --smoke plan: model pass only, half-second runs against the real
 * handoffd named by $HANDOFFD and the handoff-bench beside it. Checks that
 * it writes results.csv with the expected columns and figures that are
 * plausible for what was run, and a report.md. Not a benchmark: no figure is
 * compared with a target. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define CSV_MAX_COLS 40
#define CSV_MAX_ROWS 16
#define CSV_LINE 2048

/* Columns the harness promises (see COLUMNS in bench/compare.py). */
static const char *const want_cols[] = {
    "workload", "tool", "protocol", "server", "concurrency", "round", "elapsed_s",
    "connections", "requests", "errors", "conn_per_s", "req_per_s", "p50_ms", "p99_ms",
    "server_cpu_s", "cpu_s_per_1k_conn", "cpu_s_per_1k_req", "client_cpu_s", "other_cpu_s",
    "peak_rss_mb", "peak_procs", "held", "pss_mb", "worker_conns", "spread_max_min", "note",
};
#define NWANT (sizeof(want_cols) / sizeof(want_cols[0]))

struct csv {
    char text[CSV_MAX_ROWS + 1][CSV_LINE];          /* header, then rows */
    char *cell[CSV_MAX_ROWS + 1][CSV_MAX_COLS];     /* fields inside text */
    size_t ncols[CSV_MAX_ROWS + 1];                 /* fields per line */
    size_t nrows;                                   /* rows after the header */
};

/* Split LINE in place into fields (RFC 4180 quoting, no embedded newlines). */
static size_t csv_split(char *line, char **cell, size_t max)
{
    size_t n = 0;
    char *r = line, *w = line;
    line[strcspn(line, "\r\n")] = '\0';
    while (n < max) {
        cell[n++] = w;
        bool quoted = *r == '"';
        if (quoted)
            r++;
        for (; *r != '\0'; r++) {
            if (quoted && *r == '"' && r[1] == '"') {
                *w++ = '"';
                r++;
            } else if (quoted && *r == '"') {
                quoted = false;
            } else if (!quoted && *r == ',') {
                break;
            } else {
                *w++ = *r;
            }
        }
        bool more = *r == ',';
        *w++ = '\0';
        if (!more)
            break;
        r++;
    }
    return n;
}

static void csv_load(struct csv *c, const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t i = 0;
    while (i <= CSV_MAX_ROWS && fgets(c->text[i], CSV_LINE, f) != NULL) {
        c->ncols[i] = csv_split(c->text[i], c->cell[i], CSV_MAX_COLS);
        i++;
    }
    fclose(f);
    cr_assert(i >= 1, "%s is empty", path);
    c->nrows = i - 1;
}

/* The field named COL of row ROW (1-based, 0 is the header). */
static const char *csv_get(const struct csv *c, size_t row, const char *col)
{
    for (size_t k = 0; k < c->ncols[0]; k++)
        if (strcmp(c->cell[0][k], col) == 0)
            return k < c->ncols[row] ? c->cell[row][k] : "";
    cr_assert_fail("no column %s", col);
    return "";
}

static double csv_num(const struct csv *c, size_t row, const char *col)
{
    const char *s = csv_get(c, row, col);
    char *end;
    double v = strtod(s, &end);
    cr_assert(*s != '\0' && *end == '\0', "row %zu (%s) %s = '%s' is not a number", row,
              csv_get(c, row, "workload"), col, s);
    return v;
}

static size_t csv_find(const struct csv *c, const char *workload)
{
    for (size_t r = 1; r <= c->nrows; r++)
        if (strcmp(csv_get(c, r, "workload"), workload) == 0)
            return r;
    cr_assert_fail("no %s row in results.csv", workload);
    return 0;
}

static char tmp_dir[64]; /* scratch directory, removed by the fini hook */

static void tmp_cleanup(void)
{
    if (tmp_dir[0] == '\0')
        return;
    char path[128];
    const char *names[] = { "results.csv", "report.md", "compare.log" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, names[i]);
        unlink(path);
    }
    rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

/* Run compare.py --smoke into tmp_dir in its own process group (so a
 * timeout stops its servers too); returns its wait status, -1 on timeout. */
static int compare_smoke(int timeout_ms)
{
    const char *handoffd = getenv("HANDOFFD") != NULL ? getenv("HANDOFFD") : "build/handoffd";
    const char *script = getenv("HANDOFF_COMPARE") != NULL ? getenv("HANDOFF_COMPARE")
                                                            : "bench/compare.py";
    char logp[128];
    snprintf(logp, sizeof(logp), "%s/compare.log", tmp_dir);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execlp("python3", "python3", script, "--smoke", "--out", tmp_dir, "--handoffd", handoffd,
               (char *)NULL);
        _exit(127);
    }
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int st;
    for (;;) {
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid)
            return st;
        if (now_ms() > deadline)
            break;
        usleep(50 * 1000);
    }
    kill(-pid, SIGTERM); /* compare.py stops its servers and clients on SIGTERM */
    usleep(3000 * 1000);
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

Test(compare, smoke_run_writes_plausible_results, .timeout = 60, .fini = tmp_cleanup)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/handoff-compare-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
    uint64_t t0 = now_ms();
    int st = compare_smoke(40000);
    char path[128];
    snprintf(path, sizeof(path), "%s/compare.log", tmp_dir);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "compare.py --smoke failed (status %d); its output is in %s", st, path);
    cr_log_info("compare.py --smoke took %llu ms", (unsigned long long)(now_ms() - t0));

    static struct csv c;
    snprintf(path, sizeof(path), "%s/results.csv", tmp_dir);
    csv_load(&c, path);
    cr_assert_eq(c.ncols[0], NWANT, "header has %zu columns, want %zu", c.ncols[0], NWANT);
    for (size_t k = 0; k < NWANT; k++)
        cr_expect_str_eq(c.cell[0][k], want_cols[k], "column %zu", k);
    for (size_t r = 1; r <= c.nrows; r++) {
        cr_expect_eq(c.ncols[r], NWANT, "row %zu has %zu fields", r, c.ncols[r]);
        cr_expect_str_eq(csv_get(&c, r, "server"), "pass", "smoke runs only model pass");
        cr_expect_str_empty(csv_get(&c, r, "note"), "row %zu: %s", r, csv_get(&c, r, "note"));
    }

    /* Churn: connections went through, the server used CPU and memory, and
     * the tree is the master plus its 2 workers. */
    size_t r = csv_find(&c, "churn");
    double conns = csv_num(&c, r, "connections");
    cr_expect_gt(conns, 0);
    cr_expect_gt(csv_num(&c, r, "conn_per_s"), 0);
    cr_expect_gt(csv_num(&c, r, "p99_ms"), 0);
    cr_expect_geq(csv_num(&c, r, "p99_ms"), csv_num(&c, r, "p50_ms"));
    cr_expect_gt(csv_num(&c, r, "server_cpu_s"), 0);
    cr_expect_gt(csv_num(&c, r, "cpu_s_per_1k_conn"), 0);
    cr_expect_gt(csv_num(&c, r, "client_cpu_s"), 0, "the load tool used no CPU");
    cr_expect_geq(csv_num(&c, r, "other_cpu_s"), 0);
    cr_expect_gt(csv_num(&c, r, "peak_rss_mb"), 0);
    cr_expect_eq(csv_num(&c, r, "peak_procs"), 3);
    cr_expect_leq(csv_num(&c, r, "errors"), conns / 100, "errors %s of %g",
                  csv_get(&c, r, "errors"), conns);

    r = csv_find(&c, "echo-keepalive");
    cr_expect_gt(csv_num(&c, r, "req_per_s"), 0);
    cr_expect_gt(csv_num(&c, r, "server_cpu_s"), 0);

    r = csv_find(&c, "unp");
    cr_expect_gt(csv_num(&c, r, "conn_per_s"), 0);
    cr_expect_eq(csv_num(&c, r, "connections"), 200, "2 processes x 100 connections");

    /* Hold: all 50 connections counted in the workers, the counts add up,
     * and the ratio matches them. */
    r = csv_find(&c, "hold");
    cr_expect_eq(csv_num(&c, r, "held"), 50);
    cr_expect_gt(csv_num(&c, r, "pss_mb"), 0);
    cr_expect_leq(csv_num(&c, r, "pss_mb"), csv_num(&c, r, "peak_rss_mb") + 0.1, "PSS above RSS");
    int a = 0, b = 0;
    cr_assert_eq(sscanf(csv_get(&c, r, "worker_conns"), "%d %d", &a, &b), 2, "worker_conns '%s'",
                 csv_get(&c, r, "worker_conns"));
    cr_expect_eq(a + b, 50);
    cr_assert_gt(b, 0);
    double spread = csv_num(&c, r, "spread_max_min");
    cr_expect(spread > (double)a / b - 0.001 && spread < (double)a / b + 0.001, "spread %g, %d/%d",
              spread, a, b);

    snprintf(path, sizeof(path), "%s/report.md", tmp_dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no report.md");
    char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    cr_expect_not_null(strstr(text, "## Goals"), "report.md has no goals section");
    cr_expect_not_null(strstr(text, "pre-forked, descriptor passing"), "no row for pass");
}
