/* test_dispatch: worker choice for least-connections and round-robin. */
#include <criterion/criterion.h>

#include "dispatch.h"

Test(dispatch, least_picks_smallest_load_and_skips_ineligible)
{
    struct dispatch d = { .mode = DISPATCH_LEAST, .cursor = 3 };
    uint64_t load[4] = { 5, 2, 2, 0 };
    bool ok[4] = { true, true, true, false };
    int k = dispatch_pick(&d, load, ok, 4);
    cr_assert(k == 1 || k == 2);
    load[k]++;
    int j = dispatch_pick(&d, load, ok, 4);
    cr_assert(j == 1 || j == 2);
    cr_assert_neq(j, k, "tie should go to the other least-loaded worker");
    bool none[4] = { false, false, false, false };
    cr_assert_eq(dispatch_pick(&d, load, none, 4), -1);
}

Test(dispatch, least_spreads_evenly_from_idle)
{
    struct dispatch d = { .mode = DISPATCH_LEAST, .cursor = 0 };
    uint64_t load[4] = { 0 };
    bool ok[4] = { true, true, true, true };
    for (int i = 0; i < 1000; i++)
        load[dispatch_pick(&d, load, ok, 4)]++;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(load[i], 250);
}

Test(dispatch, rr_cycles_over_eligible)
{
    struct dispatch d = { .mode = DISPATCH_RR, .cursor = 2 };
    uint64_t load[3] = { 100, 0, 0 };
    bool ok[3] = { true, false, true };
    cr_assert_eq(dispatch_pick(&d, load, ok, 3), 0);
    cr_assert_eq(dispatch_pick(&d, load, ok, 3), 2);
    cr_assert_eq(dispatch_pick(&d, load, ok, 3), 0);
}
