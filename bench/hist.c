/* hist: see hist.h. Bucket i < HIST_SUB holds exactly the value i. Above
 * that, a value v with highest set bit e (e >= HIST_SUB_BITS) has
 * shift = e - HIST_SUB_BITS and lands in bucket
 * (shift + 1) * HIST_SUB + ((v >> shift) - HIST_SUB), i.e. its top
 * HIST_SUB_BITS + 1 bits pick the bucket and the rest are forgotten. */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

size_t hist_bucket_of(uint64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = e - HIST_SUB_BITS;
    return (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

uint64_t hist_bucket_low(size_t i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = (unsigned)(i / HIST_SUB) - 1;
    return ((uint64_t)HIST_SUB + i % HIST_SUB) << shift;
}

uint64_t hist_bucket_high(size_t i)
{
    if (i < HIST_SUB)
        return i;
    unsigned shift = (unsigned)(i / HIST_SUB) - 1;
    return hist_bucket_low(i) + ((1ull << shift) - 1);
}

void hist_record(struct hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += (double)v;
    h->bucket[hist_bucket_of(v)]++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0))
        return h->min;
    if (p >= 100)
        return h->max;
    /* Nearest rank: the smallest value with at least p% at or below it. */
    double r = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count == 0 ? 0.0 : h->sum / (double)h->count;
}

const char *hist_check(const struct hist *h)
{
    if (!isfinite(h->sum) || h->sum < 0)
        return "sum is not a finite non-negative number";
    if (h->count == 0) {
        if (h->min != 0 || h->max != 0 || h->sum != 0)
            return "empty histogram with a minimum, maximum or sum";
    } else if (h->min > h->max) {
        return "minimum above maximum";
    }
    size_t lo = hist_bucket_of(h->min), hi = hist_bucket_of(h->max);
    uint64_t total = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        if (h->bucket[i] == 0)
            continue;
        if (h->count == 0 || i < lo || i > hi)
            return "occupied bucket outside [min, max]";
        if (total + h->bucket[i] < total)
            return "bucket counts overflow";
        total += h->bucket[i];
    }
    if (total != h->count)
        return "bucket counts do not add up to the count";
    if (h->count > 0 && (h->bucket[lo] == 0 || h->bucket[hi] == 0))
        return "minimum or maximum lies in an empty bucket";
    return NULL;
}
