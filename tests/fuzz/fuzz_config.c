/* tests/fuzz/fuzz_config.c — libFuzzer harness of the config parser (io/config.c).
 *
 * Input: the config text up to the first NUL byte, then up to 8 NUL-separated
 * `--set key=value` overrides. A parse that fails must give one line; a parse that
 * succeeds must write a resolved config that parses again to the same resolved text. */
#include "fuzz_util.h"

#include "io/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    char *buf = malloc(n + 1);
    if (!buf) return 0;
    memcpy(buf, d, n);
    buf[n] = 0;
    char *ovr[8];
    int no = 0;
    size_t len;
    for (int i = 1; i <= 8; i++) {
        const uint8_t *p = fuzz_part(d, n, i, &len);
        if (p == d + n && len == 0 && (n == 0 || d[n - 1] != 0)) break;
        ovr[no++] = buf + (p - d);
    }
    lethe_config c;
    char err[1024];
    if (config_parse(&c, buf, "fuzz.json", ovr, no, err, sizeof err)) {
        fuzz_one_line("config_parse", err);
    } else {
        char *js = config_to_json(&c);
        if (!js) abort();
        lethe_config c2;
        if (config_parse(&c2, js, "resolved.json", NULL, 0, err, sizeof err)) {
            fprintf(stderr, "fuzz: the resolved config does not parse: %s\n%s\n", err, js);
            abort();
        }
        char *js2 = config_to_json(&c2);
        if (!js2 || strcmp(js, js2)) {
            fprintf(stderr, "fuzz: the resolved config changes when parsed again:\n%s\n%s\n", js,
                    js2 ? js2 : "(null)");
            abort();
        }
        free(js2);
        free(js);
    }
    free(buf);
    return 0;
}
