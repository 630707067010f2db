/* engine: the load loop of one client process: a libevent event_base with
 * one bufferevent per connection. Request modes (churn, keepalive, unp) keep
 * their share of --concurrency connections busy until a count limit, the
 * deadline or a signal; hold mode opens its share of --connections a window
 * at a time and keeps them idle, watching for the server closing them. The
 * engine reports its counters to the parent over REPORT_FD four times a
 * second and a final message with the histograms when it stops. */
#ifndef HANDOFF_BENCH_ENGINE_H
#define HANDOFF_BENCH_ENGINE_H

#include "opts.h"

/* Run process INDEX (0..o->processes-1) of the run described by O, writing
 * reports on REPORT_FD (owned by the caller). Returns 0 when the run
 * completed and the final report was sent (errors are counted, not
 * fatal), or -1 on a set-up failure, already logged. */
int engine_run(const struct opts *o, int index, int report_fd);

#endif
