/* hist: a log-bucketed latency histogram in the HdrHistogram style. Each
 * power of two is split into HIST_SUB linear sub-buckets, so a recorded value
 * is known to within 1/HIST_SUB (about 3%) of itself over the whole uint64
 * range, in a fixed-size struct that can be merged by addition and sent
 * between processes as plain bytes (validate with hist_check on receipt). */
#ifndef HANDOFF_BENCH_HIST_H
#define HANDOFF_BENCH_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 5                /* 32 sub-buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
/* Values below HIST_SUB get a bucket each; every further power of two up to
 * 2^63 gets HIST_SUB buckets. */
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count;                  /* values recorded */
    uint64_t min;                    /* smallest value (0 when empty) */
    uint64_t max;                    /* largest value (0 when empty) */
    double sum;                      /* sum of values, for the mean */
    uint64_t bucket[HIST_BUCKETS];   /* values per bucket */
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
/* Add every value of SRC to DST. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile P (0 < P <= 100, nearest rank): the upper end of
 * the bucket holding that rank, clamped to [min, max] so p100 is exactly the
 * maximum and no percentile exceeds it. 0 for an empty histogram. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);

/* Bucket index of V and the range of values a bucket covers; exposed for
 * tests. */
size_t hist_bucket_of(uint64_t v);
uint64_t hist_bucket_low(size_t i);
uint64_t hist_bucket_high(size_t i);

/* Whether H is self-consistent (bucket counts add up to count, min and max
 * lie in occupied buckets, no bucket outside [min, max] is occupied, the
 * sum is finite). Use on anything received from another process. Returns
 * NULL when valid, else what is wrong. */
const char *hist_check(const struct hist *h);

#endif
