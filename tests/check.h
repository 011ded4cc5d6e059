/* tests/check.h — the one check of lethe's C test programs: CHECK(cond, fmt, ...) counts
 * the check and, when cond is false, counts a failure and prints one "FAIL file:line:"
 * line with the message. The program (one of its files, when it is split over several)
 * defines the two counters with CHECK_COUNTERS; its main reports `failures` and exits
 * non-zero when it is not 0. */
#ifndef LETHE_TESTS_CHECK_H
#define LETHE_TESTS_CHECK_H

#include <stdio.h>

extern int failures, checks;
#define CHECK_COUNTERS int failures, checks

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#endif
