/* tests/test_config.c — the config schema, serially (no MPI).
 *
 * Asserts: the documented defaults; a full non-default file survives
 * parse -> to_json -> parse bit for bit; to_json holds every schema key at its
 * nested path; overrides (numbers, strings, booleans, nested objects, uint64
 * seeds beyond 2^53, later ones winning) and their errors; file-level errors
 * (missing, directory, over 16 MiB); config_write's rename discipline; the
 * --help listing; the names of the model's enum keys mapped onto model/model_config.h's
 * values; and that every tests/configs_bad/X.json is rejected with one
 * line containing X.expect.
 *
 * usage: test_config <tests/configs_bad folder> <scratch folder> */
#define _POSIX_C_SOURCE 200809L

#include "io/config.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"

CHECK_COUNTERS;


/* Field-by-field byte comparison (floats bitwise: a round trip must be exact),
 * then the whole struct (config_defaults zeroes padding and string tails, so
 * equal configs are equal bytes; this also catches a field missing below). */
#define SAME(f) (memcmp(&a->f, &b->f, sizeof a->f) == 0)
static int same_config(const lethe_config *a, const lethe_config *b, const char **which)
{
#define F(f)                                                                                       \
    do {                                                                                           \
        if (!SAME(f)) {                                                                            \
            *which = #f;                                                                           \
            return 0;                                                                              \
        }                                                                                          \
    } while (0)
    F(model.vocab_size);
    F(model.dim);
    F(model.n_layers);
    F(model.n_heads);
    F(model.n_kv_heads);
    F(model.mlp_dim);
    F(model.max_seq_len);
    F(model.rope_theta);
    F(model.norm_eps);
    F(model.tie_embeddings);
    F(model.init_std);
    F(model.init_seed);
    F(layout.dp);
    F(layout.pp);
    F(layout.tp);
    F(layout.micro_batches);
    F(optim.schedule);
    F(optim.lr);
    F(optim.min_lr);
    F(optim.warmup_steps);
    F(optim.beta1);
    F(optim.beta2);
    F(optim.eps);
    F(optim.weight_decay);
    F(optim.grad_clip);
    F(optim.on_nonfinite);
    F(optim.shard_update);
    F(data.source);
    F(data.seed);
    F(data.prompt_len);
    F(data.min_len);
    F(data.branching);
    F(train.steps);
    F(train.batch_size);
    F(train.seq_len);
    F(train.seed);
    F(train.log_every);
    F(bench.warmup);
    F(bench.steps);
    F(output.dir);
    F(threads);
#undef F
    *which = "(padding or a field this test does not list)";
    return memcmp(a, b, sizeof *a) == 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf;
}

/* Expects failure with `want` in the message, on one line. */
static void expect_error(int rc, const char *err, const char *want, const char *what)
{
    CHECK(rc == -1, "%s: accepted (expected an error containing '%s')", what, want);
    CHECK(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
    CHECK(strchr(err, '\n') == NULL, "%s: message spans lines: '%s'", what, err);
    CHECK(strncmp(err, "config '", 8) == 0, "%s: message '%s' does not name the config", what, err);
}

static void parse_expect(const char *text, char **ovr, int n, const char *want)
{
    lethe_config c;
    char err[2048] = "";
    int rc = config_parse(&c, text, "t.json", ovr, n, err, sizeof err);
    expect_error(rc, err, want, n ? ovr[n - 1] : text);
}

/* The leaves of a JSON tree (objects nest: unlearn.pdu.eps is one leaf). */
static int count_leaves(const cJSON *node)
{
    if (!node) return 0;
    if (!cJSON_IsObject(node)) return 1;
    int n = 0;
    for (const cJSON *c = node->child; c; c = c->next) n += count_leaves(c);
    return n;
}

static void test_defaults(void)
{
    lethe_config c;
    config_defaults(&c);
    CHECK(c.model.vocab_size == 512 && c.model.dim == 64 && c.model.n_layers == 2, "model sizes");
    CHECK(c.model.n_heads == 4 && c.model.n_kv_heads == 2 && c.model.mlp_dim == 172, "heads");
    CHECK(c.model.max_seq_len == 64 && c.model.rope_theta == 10000.0f, "rope");
    CHECK(c.model.norm_eps == 1e-5f && c.model.tie_embeddings == 0, "norm/tie");
    CHECK(c.model.init_std == 0.02f && c.model.init_seed == 1234, "init");
    CHECK(c.layout.dp == 1 && c.layout.pp == 1 && c.layout.tp == 1 && c.layout.micro_batches == 1,
          "layout");
    CHECK(c.optim.schedule == SCHEDULE_COSINE && c.optim.lr == 3e-3f && c.optim.min_lr == 3e-4f,
          "schedule/lr");
    CHECK(c.optim.warmup_steps == 10 && c.optim.beta1 == 0.9f && c.optim.beta2 == 0.95f,
          "warmup/betas");
    CHECK(c.optim.eps == 1e-8f && c.optim.weight_decay == 0.1f && c.optim.grad_clip == 1.0f,
          "eps/wd/clip");
    CHECK(!strcmp(c.data.source, "synthetic-markov") && c.data.seed == 7, "data source/seed");
    CHECK(c.data.prompt_len == 4 && c.data.min_len == 24 && c.data.branching == 4, "data lens");
    CHECK(c.train.steps == 100 && c.train.batch_size == 8 && c.train.seq_len == 64, "train");
    CHECK(c.train.seed == 42 && c.train.log_every == 10, "train seed/log");
    CHECK(c.bench.warmup == 2 && c.bench.steps == 5, "bench");
    CHECK(!strcmp(c.output.dir, "runs/train") && c.threads == 1, "output/threads");

    /* "{}" resolves to exactly the defaults, and so do the defaults written out. */
    lethe_config p, q;
    char err[1024] = "";
    const char *which;
    CHECK(config_parse(&p, "{}", "empty.json", NULL, 0, err, sizeof err) == 0, "{}: %s", err);
    CHECK(same_config(&c, &p, &which), "{} differs from defaults in %s", which);
    char *json = config_to_json(&c);
    CHECK(json != NULL, "config_to_json(defaults) returned NULL");
    if (!json) return;
    CHECK(config_parse(&q, json, "defaults.json", NULL, 0, err, sizeof err) == 0,
          "defaults do not parse back: %s", err);
    CHECK(same_config(&c, &q, &which), "defaults round trip differs in %s", which);

    /* Every schema key is present at its nested path, and nothing else. */
    cJSON *root = cJSON_Parse(json);
    CHECK(root != NULL, "to_json output is not JSON");
    int leaves = 0;
    for (int i = 0; root && i < config_key_count(); i++) {
        char path[128];
        snprintf(path, sizeof path, "%s", config_key_name(i));
        cJSON *node = root;
        for (char *tok = strtok(path, "."); tok && node; tok = strtok(NULL, "."))
            node = cJSON_GetObjectItemCaseSensitive(node, tok);
        CHECK(node != NULL && !cJSON_IsObject(node), "key %s missing from to_json",
              config_key_name(i));
        leaves++;
    }
    CHECK(config_key_count() >= 39, "schema has %d keys, expected at least 39", config_key_count());
    CHECK(config_key_name(-1) == NULL && config_key_name(config_key_count()) == NULL,
          "config_key_name out of range");
    int counted = count_leaves(root);
    CHECK(counted == leaves, "to_json has %d leaves, schema %d", counted, leaves);
    cJSON_Delete(root);
    free(json);
}

/* Every key at a non-default value, seeds beyond 2^53 as strings. */
static const char *FULL =
    "{\n"
    "  \"model\": {\"vocab_size\": 1000, \"dim\": 96, \"n_layers\": 3, \"n_heads\": 6,\n"
    "            \"n_kv_heads\": 3, \"mlp_dim\": 256, \"max_seq_len\": 128,\n"
    "            \"rope_theta\": 500000, \"norm_eps\": 1e-6, \"tie_embeddings\": true,\n"
    "            \"init_std\": 0.01, \"init_seed\": \"18446744073709551615\",\n"
    "            \"rope_type\": \"llama3\", \"rope_factor\": 32, \"rope_low_freq_factor\": 2,\n"
    "            \"rope_high_freq_factor\": 8, \"rope_original_max_seq_len\": 64},\n"
    "  \"layout\": {\"dp\": 2, \"pp\": 2, \"tp\": 3, \"micro_batches\": 4},\n"
    "  \"optim\": {\"schedule\": \"linear\", \"lr\": 0.1, \"min_lr\": 1e-7, \"warmup_steps\": 0,\n"
    "            \"beta1\": 0.8, \"beta2\": 0.999, \"eps\": 1e-6, \"weight_decay\": 0,\n"
    "            \"grad_clip\": 0.5, \"on_nonfinite\": \"skip\", \"shard_update\": false},\n"
    "  \"data\": {\"source\": \"hdf5\", \"seed\": 9007199254740991,\n"
    "           \"prompt_len\": 0, \"min_len\": 1, \"branching\": 1000,\n"
    "           \"path\": \"d/a.h5\", \"split\": \"train_full\", \"forget_split\": \"f\",\n"
    "           \"retain_split\": \"r\", \"prefetch\": false, \"alternate_split\": \"a\"},\n"
    "  \"train\": {\"steps\": 3, \"batch_size\": 16, \"seq_len\": 100, \"seed\": 0,\n"
    "            \"log_every\": 1},\n"
    "  \"bench\": {\"warmup\": 0, \"steps\": 1},\n"
    "  \"output\": {\"dir\": \"out/\\\"quoted\\\" dir \\u00e9\"},\n"
    "  \"unlearn\": {\"preset\": \"tofu-npo\", \"method\": \"ga\", \"retain_loss\": \"kl\",\n"
    "              \"beta\": 0.5, \"beta2\": 2,\n"
    "              \"gamma\": 1.5, \"c_f\": 2, \"c_r\": 0.5, \"epochs\": 3,\n"
    "              \"warmup_epochs\": 0.5, \"batch_size\": 4, \"retain_batch_size\": 0,\n"
    "              \"rmu_layer\": 3, \"rmu_span\": 2, \"rmu_steering\": 5,\n"
    "              \"pdu\": {\"eps\": 0.3, \"dual_lr\": 5, \"lambda0\": 100,\n"
    "                      \"dual_warmup_epochs\": 2},\n"
    "              \"wagle\": {\"p\": 0.9, \"mu\": 1e-5, \"batches\": 3}},\n"
    "  \"init\": {\"checkpoint\": \"runs/x/model.h5\"},\n"
    "  \"checkpoint\": {\"every\": 7, \"resume\": false},\n"
    "  \"synth\": {\"kind\": \"markov\", \"seed\": 5, \"output\": \"x.h5\",\n"
    "            \"write_jsonl\": true, \"n_authors\": 20, \"questions\": 4, \"perturbed\": 3,\n"
    "            \"holdout_authors\": 2, \"utility_facts\": 5, \"seq_len\": 32,\n"
    "            \"markov_retain\": 10, \"markov_len_long\": 20, \"markov_len_short\": 5,\n"
    "            \"markov_leak\": 0.1, \"difficulty\": true, \"tail_short\": 3,\n"
    "            \"tail_long\": 20, \"idk\": true},\n"
    "  \"eval\": {\"forget_split\": \"forget10\", \"retain_split\": \"retain90\",\n"
    "           \"utility_splits\": \"u\", \"holdout_split\": \"\", \"reference\": \"r/e\",\n"
    "           \"max_rows\": 5, \"batch_size\": 4, \"generate\": false,\n"
    "           \"max_new_tokens\": 9, \"min_k\": 20, \"gen_batch\": 3},\n"
    "  \"relearn\": {\"samples\": 2, \"steps\": 3, \"eval_every\": 1, \"k\": \"1,3\",\n"
    "              \"sweep_samples\": \"1,2\",\n"
    "              \"sweep_lr\": \"1e-4\", \"sweep_seeds\": \"1,2,3\"},\n"
    "  \"threads\": 2,\n"
    "  \"hf\": {\"torch_dtype\": \"bfloat16\", \"bos_token_id\": 1, \"eos_token_id\": \"[2,3]\",\n"
    "         \"pad_token_id\": 0, \"source\": \"/models/x\",\n"
    "         \"tensor_dtypes\": \"model.norm.weight=F32\"}\n"
    "}\n";

static void test_round_trip(const char *scratch)
{
    lethe_config a, b, d;
    char err[1024] = "";
    const char *which;
    CHECK(config_parse(&a, FULL, "full.json", NULL, 0, err, sizeof err) == 0, "full: %s", err);
    CHECK(a.model.dim == 96 && a.model.tie_embeddings == 1 && a.layout.tp == 3, "full values");
    CHECK(a.model.init_seed == UINT64_MAX, "string seed %llu",
          (unsigned long long)a.model.init_seed);
    CHECK(a.data.seed == 9007199254740991ull, "largest exact number seed");
    CHECK(a.optim.schedule == SCHEDULE_LINEAR && a.optim.lr == 0.1f && a.optim.min_lr == 1e-7f,
          "optim");
    CHECK(!strcmp(a.output.dir, "out/\"quoted\" dir \xc3\xa9"), "dir '%s'", a.output.dir);
    config_defaults(&d);
    CHECK(!same_config(&a, &d, &which), "full config equals the defaults");
    /* No key may be left at its default (or the round trip would not test it). */
    char *dj = config_to_json(&d), *aj = config_to_json(&a);
    cJSON *dr = cJSON_Parse(dj), *ar = cJSON_Parse(aj);
    for (int i = 0; dr && ar && i < config_key_count(); i++) {
        char p1[128];
        snprintf(p1, sizeof p1, "%s", config_key_name(i));
        cJSON *x = dr, *y = ar;
        char *save = NULL;
        for (char *t = strtok_r(p1, ".", &save); t; t = strtok_r(NULL, ".", &save)) {
            x = cJSON_GetObjectItemCaseSensitive(x, t);
            y = cJSON_GetObjectItemCaseSensitive(y, t);
        }
        if (!strcmp(config_key_name(i), "data.source")) continue; /* one allowed value */
        CHECK(!cJSON_Compare(x, y, 1), "full config leaves %s at its default", config_key_name(i));
    }
    cJSON_Delete(dr);
    cJSON_Delete(ar);
    free(dj);

    CHECK(aj != NULL, "to_json NULL");
    if (!aj) return;
    CHECK(config_parse(&b, aj, "resolved.json", NULL, 0, err, sizeof err) == 0, "resolved: %s",
          err);
    CHECK(same_config(&a, &b, &which), "round trip differs in %s", which);
    char *bj = config_to_json(&b);
    CHECK(bj && !strcmp(aj, bj), "to_json is not a fixed point");
    free(bj);

    /* config_write + config_load give the same struct; no temporary is left. */
    char path[1024], bad[1024];
    snprintf(path, sizeof path, "%s/resolved.json", scratch);
    CHECK(config_write(&a, path, err, sizeof err) == 0, "config_write: %s", err);
    lethe_config c;
    CHECK(config_load(&c, path, NULL, 0, err, sizeof err) == 0, "load written: %s", err);
    CHECK(same_config(&a, &c, &which), "written config differs in %s", which);
    char *text = read_text(path);
    CHECK(text && !strncmp(text, aj, strlen(aj)) && !strcmp(text + strlen(aj), "\n"),
          "written text differs from config_to_json");
    free(text);
    /* Overwrite in place: the file is replaced, not appended to. */
    CHECK(config_write(&d, path, err, sizeof err) == 0, "config_write again: %s", err);
    CHECK(config_load(&c, path, NULL, 0, err, sizeof err) == 0, "reload: %s", err);
    CHECK(same_config(&d, &c, &which), "rewritten config differs in %s", which);
    DIR *dir = opendir(scratch);
    for (struct dirent *e; dir && (e = readdir(dir));)
        CHECK(!strstr(e->d_name, ".tmp."), "temporary %s left behind", e->d_name);
    if (dir) closedir(dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir/c.json", scratch);
    CHECK(config_write(&a, bad, err, sizeof err) == -1 && strstr(err, "cannot create") &&
              strstr(err, "No such file or directory"),
          "write into a missing folder: '%s'", err);
    free(aj);
}

static void test_overrides(void)
{
    lethe_config c;
    char err[1024] = "";
    char *o1[] = {"model.dim=128",
                  "optim.lr=1e-3",
                  "output.dir=runs/x y",
                  "model.tie_embeddings=true",
                  "optim.schedule=constant",
                  "train.seed=18446744073709551615",
                  "layout={\"dp\": 2, \"micro_batches\": 2}",
                  "bench.steps=9",
                  "bench.steps=11",
                  "output.dir=\"quoted\"",
                  "data.seed=\"123\""};
    int n1 = (int)(sizeof o1 / sizeof o1[0]);
    CHECK(config_parse(&c, "{\"bench\": {\"steps\": 3}}", "o.json", o1, n1, err, sizeof err) == 0,
          "overrides: %s", err);
    CHECK(c.model.dim == 128 && c.optim.lr == 1e-3f && c.model.tie_embeddings == 1,
          "numbers/bools");
    CHECK(c.optim.schedule == SCHEDULE_CONSTANT, "enum override");
    CHECK(c.train.seed == UINT64_MAX, "big seed override %llu", (unsigned long long)c.train.seed);
    CHECK(c.layout.dp == 2 && c.layout.micro_batches == 2 && c.layout.pp == 1, "object override");
    CHECK(c.bench.steps == 11, "later override wins (%d)", c.bench.steps);
    CHECK(!strcmp(c.output.dir, "quoted"), "quoted string override '%s'", c.output.dir);
    CHECK(c.data.seed == 123, "string seed override");

    char *o2[] = {"output.dir=2024", "model.n_layers=2.0"};
    CHECK(config_parse(&c, "{}", "o.json", o2, 2, err, sizeof err) == 0, "o2: %s", err);
    CHECK(!strcmp(c.output.dir, "2024") && c.model.n_layers == 2, "scalar to string key");
    char *o3[] = {"output.dir=runs/x y"};
    CHECK(config_parse(&c, "{}", "o.json", o3, 1, err, sizeof err) == 0 &&
              !strcmp(c.output.dir, "runs/x y"),
          "bare string override");

    char *e1[] = {"model.dimm=3"};
    parse_expect("{}", e1, 1,
                 "config 't.json': --set 'model.dimm=3': unknown key 'model.dimm' (known keys in "
                 "'model': vocab_size, dim,");
    char *e2[] = {"model.dim=abc"};
    parse_expect("{}", e2, 1,
                 "--set 'model.dim=abc': key 'model.dim': expected an integer in [1, 65536], got "
                 "\"abc\"");
    char *e3[] = {"model.dim"};
    parse_expect("{}", e3, 1, "--set 'model.dim': expected key=value");
    char *e4[] = {"=3"};
    parse_expect("{}", e4, 1, "--set '=3': expected key=value with a dotted key");
    char *e5[] = {"model..dim=3"};
    parse_expect("{}", e5, 1, "--set 'model..dim=3': key 'model..dim' has an empty component");
    char *e6[] = {"model.dim.x=3"};
    parse_expect("{}", e6, 1, "unknown key 'model.dim.x' ('model.dim' is a value, not a section)");
    char *e7[] = {"foo.bar=1"};
    parse_expect("{}", e7, 1, "--set 'foo.bar=1': unknown key 'foo' (known top-level keys: model,");
    char *e8[] = {"model={\"dimm\": 3}"};
    parse_expect("{}", e8, 1, "--set 'model={\\\"dimm\\\": 3}': unknown key 'model.dimm'");
    char *e9[] = {"model=3"};
    parse_expect("{}", e9, 1,
                 "--set 'model=3': key 'model': expected an object (a section), got 3");
    char *e10[] = {"train.seed=-5"};
    parse_expect("{}", e10, 1, "--set 'train.seed=-5': key 'train.seed': expected an integer");
    char *e11[] = {"model.n_heads=3"};
    parse_expect("{}", e11, 1, "model.n_heads = 3 must be a multiple of model.n_kv_heads = 2");
    char *e13[] = {"eval.gen_batch=0"}, *e14[] = {"eval.gen_batch=1025"};
    parse_expect("{}", e13, 1, "key 'eval.gen_batch': expected an integer in [1, 1024], got 0");
    parse_expect("{}", e14, 1, "key 'eval.gen_batch': expected an integer in [1, 1024], got 1025");
    /* The file's own error is not blamed on an override of another key. */
    char *e12[] = {"model.dim=128"};
    parse_expect("{\"model\": {\"n_layers\": 0}}", e12, 1,
                 "config 't.json': key 'model.n_layers': expected an integer in [1, 1024], got 0");
    /* Overriding a wrong value in the file fixes it. */
    char *f1[] = {"model.n_layers=4"};
    CHECK(config_parse(&c, "{\"model\": {\"n_layers\": 0}}", "t.json", f1, 1, err, sizeof err) ==
                  0 &&
              c.model.n_layers == 4,
          "override replacing a bad file value: %s", err);
}

static void test_misc_errors(const char *bad_dir, const char *scratch)
{
    lethe_config c, before;
    char err[1024] = "";
    config_defaults(&c);
    c.threads = 77;
    before = c;
    const char *which;

    int rc = config_parse(&c, "{\"threads\": 0}", "t.json", NULL, 0, err, sizeof err);
    expect_error(rc, err, "key 'threads'", "threads 0");
    CHECK(same_config(&c, &before, &which), "a failed parse changed the struct (%s)", which);

    rc = config_load(&c, "/nonexistent/lethe.json", NULL, 0, err, sizeof err);
    expect_error(rc, err, "config '/nonexistent/lethe.json': cannot open: No such file", "missing");
    rc = config_load(&c, bad_dir, NULL, 0, err, sizeof err);
    expect_error(rc, err, "is a directory, expected a JSON file", "directory");
    rc = config_load(&c, "-", NULL, 0, err, sizeof err);
    expect_error(rc, err, "expected the path of a JSON config file", "stdin");
    rc = config_load(&c, NULL, NULL, 0, err, sizeof err);
    expect_error(rc, err, "expected the path of a JSON config file", "NULL path");

    /* 16 MiB + 1 byte: refused from its size, before reading. */
    char big[1024];
    snprintf(big, sizeof big, "%s/big.json", scratch);
    FILE *f = fopen(big, "wb");
    CHECK(f != NULL, "create %s: %s", big, strerror(errno));
    if (f) {
        CHECK(fseek(f, (16L << 20), SEEK_SET) == 0 && fputc(' ', f) != EOF && fclose(f) == 0,
              "write big file");
        rc = config_load(&c, big, NULL, 0, err, sizeof err);
        expect_error(rc, err, "file is 16777217 bytes, more than the 16 MiB a config may have",
                     "big");
        unlink(big);
    }
    /* A UTF-8 byte-order mark is skipped. */
    CHECK(config_parse(&c, "\xef\xbb\xbf{\"threads\": 3}", "bom.json", NULL, 0, err, sizeof err) ==
                  0 &&
              c.threads == 3,
          "BOM: %s", err);
    /* A small buffer truncates safely, terminated. */
    char small[24];
    memset(small, 'x', sizeof small);
    rc = config_parse(&c, "{\"nope\": 1}", "t.json", NULL, 0, small, sizeof small);
    CHECK(rc == -1 && strlen(small) == sizeof small - 1 && !strncmp(small, "config 't.json'", 15),
          "truncated message '%.*s'", (int)sizeof small, small);
    CHECK(config_parse(&c, "{\"nope\": 1}", "t.json", NULL, 0, NULL, 0) == -1, "NULL err");
}

/* Every X.json in the folder is rejected with X.expect's line in the message. */
static int test_bad_files(const char *dir)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL, "open %s: %s", dir, strerror(errno));
    if (!d) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        char path[1024], expect_path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(expect_path, sizeof expect_path, "%s/%.*s.expect", dir, (int)(l - 5), e->d_name);
        char *want = read_text(expect_path);
        CHECK(want != NULL, "%s has no .expect sidecar", e->d_name);
        if (!want) continue;
        want[strcspn(want, "\n")] = 0;
        CHECK(want[0] != 0, "%s: empty expectation", expect_path);
        lethe_config c;
        char err[2048] = "";
        int rc = config_load(&c, path, NULL, 0, err, sizeof err);
        expect_error(rc, err, want, e->d_name);
        CHECK(strlen(err) < sizeof err - 1, "%s: message filled the buffer", e->d_name);
        free(want);
        n++;
    }
    closedir(d);
    return n;
}

/* The names of the keys the model reads as enums land on model/model_config.h's values;
 * a name of another case is refused naming the key. */
static void test_model_enums(void)
{
    lethe_config c;
    const struct {
        const char *set;
        const void *field;
        int want;
    } cases[] = {
        {"optim.schedule=constant", &c.optim.schedule, SCHEDULE_CONSTANT},
        {"optim.schedule=linear", &c.optim.schedule, SCHEDULE_LINEAR},
        {"optim.schedule=cosine", &c.optim.schedule, SCHEDULE_COSINE},
        {"optim.on_nonfinite=stop", &c.optim.on_nonfinite, NONFINITE_STOP},
        {"optim.on_nonfinite=skip", &c.optim.on_nonfinite, NONFINITE_SKIP},
        {"unlearn.method=ga", &c.unlearn.method, METHOD_GA},
        {"unlearn.method=graddiff", &c.unlearn.method, METHOD_GRADDIFF},
        {"unlearn.method=npo", &c.unlearn.method, METHOD_NPO},
        {"unlearn.method=simnpo", &c.unlearn.method, METHOD_SIMNPO},
        {"unlearn.retain_loss=nll", &c.unlearn.retain_loss, RETAIN_NLL},
        {"unlearn.retain_loss=kl", &c.unlearn.retain_loss, RETAIN_KL},
    };
    char err[1024] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *o[] = {(char *)cases[i].set};
        int rc = config_parse(&c, "{}", "e.json", o, 1, err, sizeof err), v = -1;
        memcpy(&v, cases[i].field, sizeof v);
        CHECK(rc == 0 && v == cases[i].want, "%s: value %d, expected %d (%s)", cases[i].set, v,
              cases[i].want, err);
    }
    config_defaults(&c);
    CHECK(c.optim.on_nonfinite == NONFINITE_STOP && c.unlearn.method == METHOD_SIMNPO &&
              c.unlearn.retain_loss == RETAIN_NLL,
          "enum defaults");
    char *e1[] = {"unlearn.method=SimNPO"};
    parse_expect("{}", e1, 1,
                 "key 'unlearn.method': expected one of ga|graddiff|npo|simnpo|wga|satimp|ceu|undial|rmu|idknll|dpo|idkdpo|pdu, got \"SimNPO\"");
}

/* unlearn.preset fills the reference settings; keys given explicitly win. */
static void test_presets(void)
{
    lethe_config c;
    char err[1024] = "";
    CHECK(config_parse(&c, "{\"unlearn\": {\"preset\": \"tofu-forget10\", \"beta\": 3}}", "p.json",
                       NULL, 0, err, sizeof err) == 0,
          "preset: %s", err);
    CHECK(c.unlearn.method == METHOD_SIMNPO && c.unlearn.beta == 3.0f && c.unlearn.c_f == 0.125f &&
              c.unlearn.c_r == 1.0f && c.unlearn.gamma == 0.0f,
          "tofu-forget10 objective (explicit beta 3 wins)");
    CHECK(c.optim.lr == 1e-5f && c.optim.weight_decay == 0.01f && c.optim.min_lr == 0.0f &&
              c.optim.schedule == SCHEDULE_LINEAR && c.unlearn.epochs == 10 &&
              c.unlearn.warmup_epochs == 1.0f && c.unlearn.batch_size == 32,
          "tofu-forget10 optimizer and schedule");
    char *ovr[] = {"unlearn.preset=tofu-forget05", "optim.lr=2e-5"};
    CHECK(config_parse(&c, "{}", "p.json", ovr, 2, err, sizeof err) == 0, "preset --set: %s", err);
    CHECK(c.unlearn.beta == 2.5f && c.unlearn.c_f == 0.1375f && c.optim.lr == 2e-5f,
          "tofu-forget05 from --set, lr overridden");
    CHECK(config_parse(&c, "{\"unlearn\": {\"preset\": \"tofu-npo\"}}", "p.json", NULL, 0, err,
                       sizeof err) == 0,
          "npo preset: %s", err);
    CHECK(c.unlearn.method == METHOD_NPO && c.unlearn.beta == 0.1f && c.unlearn.c_f == 1.0f &&
              c.unlearn.c_r == 1.0f,
          "tofu-npo");
    CHECK(config_parse(&c, "{\"unlearn\": {\"preset\": \"tofu\"}}", "p.json", NULL, 0, err,
                       sizeof err) != 0 &&
              strstr(err, "key 'unlearn.preset': expected one of none|tofu-forget05"),
          "unknown preset: %s", err);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CONFIGS_BAD_DIR SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    char scratch[900];
    snprintf(scratch, sizeof scratch, "%s/test_config.%ld", argv[2], (long)getpid());
    if (mkdir(scratch, 0755) != 0) {
        fprintf(stderr, "mkdir %s: %s\n", scratch, strerror(errno));
        return 1;
    }
    test_defaults();
    test_round_trip(scratch);
    test_presets();
    test_model_enums();
    test_overrides();
    test_misc_errors(argv[1], scratch);
    int n = test_bad_files(argv[1]);
    CHECK(n >= 15, "only %d bad config files", n);

    FILE *keys = tmpfile();
    CHECK(keys != NULL, "tmpfile");
    if (keys) {
        config_print_keys(keys);
        rewind(keys);
        char line[512];
        int lines = 0, found = 0;
        while (fgets(line, sizeof line, keys)) {
            if (lines++ == 0) {
                CHECK(!strncmp(line, "key", 3) && strstr(line, "range/choices"), "header '%s'",
                      line);
                continue;
            }
            const char *name = config_key_name(lines - 2);
            found += name && !strncmp(line, name, strlen(name)) && line[strlen(name)] == ' ';
        }
        CHECK(lines == config_key_count() + 1 && found == config_key_count(),
              "--help listing: %d lines, %d keys in order", lines, found);
        fclose(keys);
    }
    rmdir(scratch);
    if (failures) {
        fprintf(stderr, "test_config: %d failures\n", failures);
        return 1;
    }
    printf("test_config: defaults, round trip, overrides, %d bad files: all pass\n", n);
    return 0;
}
