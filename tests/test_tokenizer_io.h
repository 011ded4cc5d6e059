/* tests/test_tokenizer_io.h — what the tokenizer test programs share: a whole file read
 * into a NUL-terminated buffer (the strings and reference ids of the fixtures). */
#ifndef LETHE_TESTS_TOKENIZER_IO_H
#define LETHE_TESTS_TOKENIZER_IO_H

#include <stdio.h>
#include <stdlib.h>

/* malloc'd contents of path, or NULL */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

#endif
