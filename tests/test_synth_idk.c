/* tests/test_synth_idk.c — `test_synth idk DIR`: synth.idk (io/synth/synth_idk.c). Off,
 * the file has no IdK split. On: forget01_idk, forget05_idk and forget10_idk hold their
 * forget split's rows in order (the same sample ids, prompt tokens and answer starts)
 * with another answer; the JSON lines give each row the forget row's question and an
 * answer from the IdK list below (written here from the brief, not from lethe); a
 * question's phrase is the same at every forget level, and more than one phrase is used. */
#define _POSIX_C_SOURCE 200809L
#include "test_synth.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const char *const WANT[] = {"I don't know.",
                                   "I have no idea.",
                                   "I'm not sure about that.",
                                   "I can't answer that.",
                                   "That is not something I know.",
                                   "I don't have that information.",
                                   "I am unable to say.",
                                   "I cannot recall that."};
#define NWANT ((int)(sizeof WANT / sizeof WANT[0]))

/* The "answer" (or "question") of every line of split's JSON-lines file, into out (cap). */
static int jsonl_field(const char *h5, const char *split, const char *key, char **out, int cap)
{
    char path[1200], line[4096];
    synth_jsonl_path(h5, split, path, sizeof path);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && n < cap && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
        out[n++] = strdup(cJSON_IsString(v) ? v->valuestring : "");
        cJSON_Delete(o);
    }
    if (f) fclose(f);
    CHECK(f != NULL, "cannot read '%s'", path);
    return n;
}

static void check_level(const char *h5, const char *forget, const char *idk, int *used)
{
    split_data a, b;
    if (read_split(&a, h5, forget) || read_split(&b, h5, idk)) {
        CHECK(0, "cannot read /%s and /%s", forget, idk);
        return;
    }
    CHECK(a.n == b.n && a.t == b.t && !b.has_para && !b.has_pert,
          "/%s: %lld rows of %d, candidates %d/%d; /%s %lld of %d", idk, (long long)b.n, b.t,
          b.has_para, b.has_pert, forget, (long long)a.n, a.t);
    char *qa[512], *qb[512], *ans[512];
    int na = jsonl_field(h5, forget, "question", qa, 512), nb = jsonl_field(h5, idk, "question", qb, 512);
    int nans = jsonl_field(h5, idk, "answer", ans, 512);
    CHECK(na == a.n && nb == b.n && nans == b.n, "/%s: JSON lines %d, %d, %d for %lld rows", idk,
          na, nb, nans, (long long)b.n);
    for (int64_t i = 0; i < a.n && i < b.n && i < na && i < nb && i < nans; i++) {
        size_t r = (size_t)i * a.t;
        int same_prompt = a.as[i] == b.as[i] && !memcmp(a.ids + r, b.ids + r, 4 * (size_t)a.as[i]);
        int k = 0;
        while (k < NWANT && strcmp(ans[i], WANT[k])) k++;
        if (k < NWANT) used[k] = 1;
        CHECK(a.sid[i] == b.sid[i] && same_prompt && !strcmp(qa[i], qb[i]) &&
                  memcmp(a.ids + r, b.ids + r, 4 * (size_t)a.t) != 0 && k < NWANT,
              "/%s row %lld: sample id %lld vs %lld, prompt same %d, question '%s' vs '%s', "
              "answer '%s'",
              idk, (long long)i, (long long)b.sid[i], (long long)a.sid[i], same_prompt, qb[i], qa[i],
              ans[i]);
    }
    for (int i = 0; i < na; i++) free(qa[i]);
    for (int i = 0; i < nb; i++) free(qb[i]);
    for (int i = 0; i < nans; i++) free(ans[i]);
    split_free(&a);
    split_free(&b);
}

void test_idk(void)
{
    lethe_config cfg;
    config_defaults(&cfg);
    lethe_synth_config c = cfg.synth;
    snprintf(c.kind, sizeof c.kind, "authors");
    c.seed = 9;
    c.n_authors = 30;
    c.questions = 6;
    c.perturbed = 2;
    c.holdout_authors = 2;
    c.utility_facts = 4;
    c.seq_len = 48;
    c.write_jsonl = 1;
    synth_summary m;
    snprintf(c.output, sizeof c.output, "%s/idk_off.h5", workdir);
    synth_data *d = make(&c, &m);
    synth_free(d);
    CHECK(find_split(&m, "forget05_idk") < 0, "synth.idk off: the file has forget05_idk");
    c.idk = 1;
    snprintf(c.output, sizeof c.output, "%s/idk_on.h5", workdir);
    d = make(&c, &m);
    if (!d) return;
    synth_free(d);
    int used[NWANT] = {0}, nused = 0;
    static const char *const lv[3] = {"forget01", "forget05", "forget10"};
    for (int i = 0; i < 3; i++) {
        char idk[32];
        snprintf(idk, sizeof idk, "%s_idk", lv[i]);
        CHECK(find_split(&m, idk) >= 0, "synth.idk on: no split %s", idk);
        check_level(c.output, lv[i], idk, used);
    }
    /* nested levels: forget05's rows begin with forget01's, and keep their phrase */
    split_data s01, s10;
    if (!read_split(&s01, c.output, "forget01_idk") && !read_split(&s10, c.output, "forget10_idk")) {
        CHECK(s01.n <= s10.n && !memcmp(s01.ids, s10.ids, 4 * (size_t)s01.n * (size_t)s01.t),
              "forget01_idk's rows are not the first rows of forget10_idk");
        split_free(&s01);
        split_free(&s10);
    }
    for (int k = 0; k < NWANT; k++) nused += used[k];
    CHECK(nused >= 2, "synth.idk: %d IdK phrase(s) used over forget10", nused);
    printf("synth.idk: 3 IdK splits checked row for row, %d of %d phrases used\n", nused, NWANT);
}
