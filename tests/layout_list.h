/* tests/layout_list.h — every layout dp x pp x tp of a world size, in the order the
 * layout tests walk them (tp ascending, then pp ascending; dp = size / (pp * tp)).
 * Whether the model admits a layout is the caller's question (model_check_layout). */
#ifndef LETHE_TEST_LAYOUT_LIST_H
#define LETHE_TEST_LAYOUT_LIST_H

typedef struct {
    int dp, pp, tp;
} test_layout;

/* Fills out[0..n) (at most max) and returns n. */
static inline int test_layouts_of(int size, test_layout *out, int max)
{
    int n = 0;
    for (int tp = 1; tp <= size; tp++)
        for (int pp = 1; pp * tp <= size; pp++) {
            if (size % (tp * pp) || n == max) continue;
            out[n++] = (test_layout){size / (tp * pp), pp, tp};
        }
    return n;
}

#endif
