/* dispatch: see dispatch.h. */
#include "dispatch.h"

int dispatch_pick(struct dispatch *d, const uint64_t *load, const bool *eligible, int n)
{
    int best = -1;
    if (n <= 0)
        return -1;
    for (int k = 1; k <= n; k++) {
        int i = (int)((d->cursor + (unsigned)k) % (unsigned)n);
        if (!eligible[i])
            continue;
        if (d->mode == DISPATCH_RR) {
            best = i;
            break;
        }
        if (best < 0 || load[i] < load[best])
            best = i;
    }
    if (best >= 0)
        d->cursor = (unsigned)best;
    return best;
}
