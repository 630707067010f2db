/* report: what a person or a harness reads: the once-a-second progress line
 * (stderr), the one-line summary and the JSON object (stdout). Pure
 * formatting of merged stats; no I/O besides the FILE given. */
#ifndef HANDOFF_BENCH_REPORT_H
#define HANDOFF_BENCH_REPORT_H

#include <stdio.h>

#include "hist.h"
#include "opts.h"
#include "stats.h"

/* "[ 3.0s] requests 12345 ok 12345 (4115/s, now 4200/s) errors 0 open 10" */
void report_progress(FILE *out, const struct opts *o, const struct stats *st, double elapsed_s,
                     double rate_now);
/* One line: mode, target, counts, rate, errors by kind, latency. */
void report_summary(FILE *out, const struct opts *o, const struct stats *st,
                    const struct hist *latency, const struct hist *connect);
/* One JSON object on one line. */
void report_json(FILE *out, const struct opts *o, const struct stats *st,
                 const struct hist *latency, const struct hist *connect);

/* The figure the progress line's rates count: answers for request modes,
 * established connections for hold. */
uint64_t report_done(const struct opts *o, const struct stats *st);

#endif
