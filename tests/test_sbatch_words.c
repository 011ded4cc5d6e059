/* tests/test_sbatch_words.c — the words a script is built from: lethe_shell_quote gives the
 * expected words and /bin/sh reads every awkward string (spaces, quotes, $, backticks,
 * backslashes, newlines, globs, empty) back unchanged; lethe_slurm_time_seconds accepts the
 * six Slurm formats with their values and rejects malformed ones. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "test_sbatch.h"

/* ---- shell quoting ---- */

/* /bin/sh reads the quoted word back as the original string. */
static int sh_roundtrip(const char *s)
{
    char *q = lethe_shell_quote(s);
    if (!q) return 0;
    size_t cap = strlen(q) + 64;
    char *cmd = malloc(cap);
    if (!cmd) {
        free(q);
        return 0;
    }
    snprintf(cmd, cap, "printf '%%s|' %s", q);
    free(q);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) return 0;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = '\0';
    int rc = pclose(p);
    return rc == 0 && n == strlen(s) + 1 && memcmp(buf, s, n - 1) == 0 && buf[n - 1] == '|';
}

void test_quote(void)
{
    static const struct {
        const char *in, *out;
    } words[] = {
        {"plain", "plain"},
        {"train.lr=1e-5", "train.lr=1e-5"},
        {"/a/b-c_d.e:f@g%h+i,j", "/a/b-c_d.e:f@g%h+i,j"},
        {"", "''"},
        {"a b", "'a b'"},
        {"it's", "'it'\\''s'"},
        {"$HOME", "'$HOME'"},
        {"`date`", "'`date`'"},
        {"\"dq\"", "'\"dq\"'"},
        {"'", "''\\'''"},
        {"*", "'*'"},
        {"~", "'~'"},
        {"#x", "'#x'"},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        char *q = lethe_shell_quote(words[i].in);
        CHECK(q && strcmp(q, words[i].out) == 0, "quote(\"%s\") = %s, expected %s", words[i].in,
              q ? q : "(null)", words[i].out);
        free(q);
    }
    static const char *const awkward[] = {
        "a b",
        "it's",
        "$HOME",
        "`date`",
        "$(echo x)",
        "\"dq\"",
        "back\\slash",
        "new\nline",
        "tab\there",
        "",
        "'",
        "''",
        "*",
        "~root",
        "{a,b}",
        "#c",
        "!x",
        "a;b&c|d>e<f",
        "it's $HOME `date` \"q\" \\ \n end",
    };
    for (size_t i = 0; i < sizeof awkward / sizeof awkward[0]; i++)
        CHECK(sh_roundtrip(awkward[i]), "/bin/sh does not read quote(\"%s\") back", awkward[i]);
}

/* ---- Slurm times ---- */

void test_times(void)
{
    static const struct {
        const char *s;
        long long secs;
    } ok[] = {
        {"45", 45 * 60},
        {"0", 0},
        {"600", 600 * 60},
        {"5:30", 5 * 60 + 30},
        {"90:00", 90 * 60},
        {"2:03:04", 2 * 3600 + 3 * 60 + 4},
        {"48:00:00", 48 * 3600},
        {"1-0", 86400},
        {"2-12", 2 * 86400 + 12 * 3600},
        {"1-02:30", 86400 + 2 * 3600 + 30 * 60},
        {"1-02:30:00", 86400 + 2 * 3600 + 30 * 60},
        {"0-00:00:59", 59},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long long got = lethe_slurm_time_seconds(ok[i].s);
        CHECK(got == ok[i].secs, "time '%s' = %lld s, expected %lld", ok[i].s, got, ok[i].secs);
    }
    static const char *const bad[] = {
        "",        "x",    "-5",     "1-",       "-1",         "1:2:3:4",   "5:60",     "1:60:00",
        "1:00:60", "1-24", "1-2:60", "1-2:3:60", "1-2-3",      "1:",        ":5",       "1::2",
        " 5",      "5 ",   "+5",     "1.5",      "1234567890", "UNLIMITED", "1-1:1:1:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(lethe_slurm_time_seconds(bad[i]) == -1, "time '%s' accepted as %lld s", bad[i],
              lethe_slurm_time_seconds(bad[i]));
    CHECK(lethe_slurm_time_seconds(NULL) == -1, "time NULL accepted");
}
