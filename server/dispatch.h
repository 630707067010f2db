/* dispatch: which worker gets the next connection. Pure functions over the
 * master's view of worker load, so they are unit-tested without processes. */
#ifndef HANDOFF_DISPATCH_H
#define HANDOFF_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct dispatch {
    enum dispatch_mode mode; /* least or rr */
    unsigned cursor;         /* rr: last slot picked; least: tie-break start */
};

/* Pick among N slots: LOAD[i] is live plus queued connections, ELIGIBLE[i]
 * says the slot may take one more. Returns a slot index or -1 when none is
 * eligible. "least" takes the smallest load, breaking ties round-robin so
 * idle workers share the first connections evenly. */
int dispatch_pick(struct dispatch *d, const uint64_t *load, const bool *eligible, int n);

#endif
