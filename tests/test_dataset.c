/* tests/test_dataset.c — prepare (JSON lines -> HDF5) and the dataset schema, serially.
 *
 * usage: test_dataset <tests/data folder>
 * Asserted:
 *   - byte tokenizer: every stored id of chosen rows equals the UTF-8 bytes of
 *     template(question) + " " + answer, then EOS 257, then padding 256, with
 *     answer_start = the prompt's byte count; paraphrased and perturbed rows likewise;
 *     the row counts, K, sample ids (given, or the row index), text windows (their
 *     concatenation is the document's bytes + EOS), pre-tokenised rows kept as given;
 *   - truncation: the number of cut sequences is counted (predicted from byte
 *     counts), or it is an error naming file and line when truncation is off;
 *   - word tokenizer: the vocabulary is saved in the file and reloads; stored rows are
 *     the reloaded tokenizer's encoding;
 *   - the source digest is SHA-256 of the inputs (checked against coreutils'
 *     sha256sum and the FIPS 180-2 "abc" vector);
 *   - every bad input gives its one-line message and leaves no output file. */
#define _POSIX_C_SOURCE 200809L
#include "io/dataset.h"
#include "io/text/prepare.h"
#include "io/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

CHECK_COUNTERS;


static char data[512];

static const char *in(const char *name)
{
    static char buf[8][640];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", data, name);
    return buf[k];
}

/* Reads row r (and candidate c when the dataset is 3-D) of an int32 dataset. */
static int read_row(const char *path, const char *name, int64_t r, int c, int32_t *out)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t dims[3], start[3] = {(hsize_t)r, 0, 0}, count[3];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    count[0] = 1;
    if (rank == 3) {
        start[1] = (hsize_t)c;
        count[1] = 1;
        count[2] = dims[2];
    } else if (rank == 2) {
        count[1] = dims[1];
    }
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hsize_t n = rank == 1 ? 1 : dims[rank - 1];
    hid_t ms = H5Screate_simple(1, &n, NULL);
    herr_t rc = H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, out);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    return rc < 0 ? -1 : 0;
}

static int64_t read_i64(const char *path, const char *name, int64_t r)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t start = (hsize_t)r, one = 1;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &one, NULL);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    int64_t v = -1;
    H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    return v;
}

/* Expected byte-tokenised row: bytes(prompt) + bytes(answer) + EOS, padded. */
static void expect_byte_row(const char *path, const char *split, const char *dset, int64_t r, int c,
                            const char *prompt, const char *answer, int t)
{
    int32_t got[512], want[512], len = 0, as = 0;
    char name[256];
    snprintf(name, sizeof name, "%s/%s", split, dset);
    CHECK(read_row(path, name, r, c, got) == 0, "cannot read %s row %lld", name, (long long)r);
    size_t pl = strlen(prompt), al = strlen(answer);
    int n = 0;
    for (size_t i = 0; i < pl && n < t; i++) want[n++] = (unsigned char)prompt[i];
    for (size_t i = 0; i < al && n < t; i++) want[n++] = (unsigned char)answer[i];
    if (n < t) want[n++] = 257;
    int full = n;
    while (n < t) want[n++] = 256;
    int same = 1;
    for (int i = 0; i < t; i++) same &= got[i] == want[i];
    CHECK(same, "%s row %lld cand %d: ids differ from the bytes of '%s' + '%s'", name, (long long)r,
          c, prompt, answer);
    const char *ln = strcmp(dset, "input_ids") == 0         ? "lengths"
                     : strcmp(dset, "paraphrased_ids") == 0 ? "paraphrased_lengths"
                                                            : "perturbed_lengths";
    const char *an = strcmp(dset, "input_ids") == 0         ? "answer_start"
                     : strcmp(dset, "paraphrased_ids") == 0 ? "paraphrased_answer_start"
                                                            : "perturbed_answer_start";
    int32_t tmp[64];
    snprintf(name, sizeof name, "%s/%s", split, ln);
    read_row(path, name, r, 0, tmp);
    len = strcmp(dset, "perturbed_ids") == 0 ? tmp[c] : tmp[0];
    snprintf(name, sizeof name, "%s/%s", split, an);
    read_row(path, name, r, 0, tmp);
    as = strcmp(dset, "perturbed_ids") == 0 ? tmp[c] : tmp[0];
    CHECK(len == full && as == (int)pl,
          "%s row %lld cand %d: length %d answer_start %d, "
          "expected %d %d",
          dset, (long long)r, c, len, as, full, (int)pl);
}

static void test_byte(void)
{
    char err[1024];
    const char *out = "test_dataset_byte.h5";
    prepare_input inputs[] = {{"forget", in("tofu_forget.jsonl"), "auto"},
                              {"retain", in("tofu_retain.jsonl"), "qa"},
                              {"eval/text", in("muse_text.jsonl"), NULL},
                              {"tokens", in("pretok.jsonl"), "tokens"}};
    prepare_report rep;
    prepare_opts o;
    prepare_opts_defaults(&o);
    o.output = out;
    o.inputs = inputs;
    o.n_inputs = 4;
    o.seq_len = 128;
    o.report = &rep;
    CHECK(prepare_run(&o, err, sizeof err) == 0, "prepare: %s", err);

    const char *pf = "[INST] Where was Ana Souza born? [/INST]";
    expect_byte_row(out, "/forget", "input_ids", 0, 0, pf, " Ana Souza was born in Lisbon.", 128);
    expect_byte_row(out, "/forget", "paraphrased_ids", 0, 0, pf,
                    " Lisbon is Ana Souza's birthplace.", 128);
    expect_byte_row(out, "/forget", "perturbed_ids", 0, 1, pf, " Ana Souza was born in Madrid.",
                    128);
    /* record 4 (after a blank line): UTF-8 and escaped quotes */
    expect_byte_row(out, "/forget", "input_ids", 3, 0,
                    "[INST] What did Ana Souza's father do? [/INST]",
                    " He was a cartographer; naïve maps were his café talk.", 128);
    expect_byte_row(out, "/forget", "perturbed_ids", 2, 2,
                    "[INST] Which award did Ana Souza win in 2004? [/INST]", " No award at all.",
                    128);
    CHECK(rep.n_splits == 4 && rep.split[0].rows == 4 && rep.split[0].k == 3 &&
              rep.split[0].has_para && rep.split[1].rows == 3 && rep.split[1].k == 0 &&
              !rep.split[1].has_para,
          "report: %d splits, forget %lld rows K=%d, retain %lld rows", rep.n_splits,
          (long long)rep.split[0].rows, rep.split[0].k, (long long)rep.split[1].rows);
    CHECK(rep.vocab_size == 258 && rep.pad_id == 256 && rep.eos_id == 257, "byte ids in report");
    for (int i = 0; i < 4; i++)
        CHECK(read_i64(out, "/forget/sample_id", i) == i, "forget sample_id %d", i);
    CHECK(read_i64(out, "/retain/sample_id", 2) == 75, "retain sample_id of row 2");
    /* the long retain answer: prompt + " " + answer + EOS > 128 bytes */
    CHECK(rep.split[1].truncated == 1, "retain truncated %lld, expected 1",
          (long long)rep.split[1].truncated);

    /* text windows: doc bytes + EOS cut into 128-id windows; "Short one." + EOS is one */
    const char *doc = "The harbour was quiet before dawn. Fishermen mended nets by lantern light, "
                      "and the smell of salt and tar hung over the water.";
    int dl = (int)strlen(doc) + 1, nwin = (dl + 127) / 128;
    int64_t want_rows = nwin + 1;
    if (dl % 128 == 1) want_rows--; /* a 1-id tail window is dropped */
    CHECK(rep.split[2].rows == want_rows, "text rows %lld, expected %lld",
          (long long)rep.split[2].rows, (long long)want_rows);
    int32_t w[128];
    int pos = 0, ok = 1;
    for (int r = 0; r < nwin; r++) {
        read_row(out, "/eval/text/input_ids", r, 0, w);
        int32_t L;
        read_row(out, "/eval/text/lengths", r, 0, &L);
        for (int j = 0; j < L; j++, pos++)
            ok &= w[j] == (pos < dl - 1 ? (unsigned char)doc[pos] : 257);
        int32_t as;
        read_row(out, "/eval/text/answer_start", r, 0, &as);
        ok &= as == 0;
    }
    CHECK(ok && pos == dl, "text windows do not concatenate to the document + EOS");

    /* pre-tokenised rows as given */
    int32_t tk[128], L, as;
    read_row(out, "/tokens/input_ids", 0, 0, tk);
    read_row(out, "/tokens/lengths", 0, 0, &L);
    read_row(out, "/tokens/answer_start", 0, 0, &as);
    CHECK(L == 6 && as == 3 && tk[0] == 5 && tk[5] == 10 && tk[6] == 256,
          "tokens row 0: length %d answer_start %d", L, as);
    CHECK(read_i64(out, "/tokens/sample_id", 1) == 3, "tokens sample_id");

    /* the file passes the full validation, and the digest is sha256 of the inputs */
    dataset_info info;
    const char *splits[] = {"forget", "retain", "eval/text", "tokens"};
    for (int i = 0; i < 4; i++)
        CHECK(dataset_inspect(&info, out, splits[i], DATASET_CHECK_IDS, 0, err, sizeof err) == 0,
              "inspect %s: %s", splits[i], err);
    dataset_inspect(&info, out, "forget", DATASET_CHECK_META, 0, err, sizeof err);
    CHECK(strcmp(info.tokenizer, "byte") == 0 && info.vocab_size == 258 && info.t == 128 &&
              info.k == 3 && info.has_para && info.has_pert && info.n == 4,
          "inspect forget: tokenizer %s vocab %lld T %d K %d N %lld", info.tokenizer,
          (long long)info.vocab_size, info.t, info.k, (long long)info.n);
    char cmd[4096], line[256] = "";
    snprintf(cmd, sizeof cmd, "cat '%s' '%s' '%s' '%s' | sha256sum", inputs[0].path, inputs[1].path,
             inputs[2].path, inputs[3].path);
    FILE *p = popen(cmd, "r");
    if (p && fgets(line, sizeof line, p)) {
        char want[80];
        snprintf(want, sizeof want, "sha256:%.64s", line);
        CHECK(strcmp(info.source_digest, want) == 0, "source_digest %s, sha256sum says %s",
              info.source_digest, want);
    }
    if (p) pclose(p);
    FILE *f = fopen("test_dataset_abc.txt", "w");
    fputs("abc", f);
    fclose(f);
    char hex[65];
    prepare_sha256_file("test_dataset_abc.txt", hex, err, sizeof err);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256(abc) = %s", hex);
    remove("test_dataset_abc.txt");

    /* truncation off: an error naming file and line */
    o.truncate = 0;
    o.n_inputs = 2;
    o.output = "test_dataset_trunc.h5";
    char want[1024];
    const char *q2 = "[INST] Name a book by Kofi Mensah. [/INST]",
               *a2 = "One of his books is \"The River Clock\", a long novel about a town that "
                     "keeps its own time and refuses every calendar sent from the capital.";
    snprintf(want, sizeof want,
             "prepare: '%s' line 2: answer: %d tokens > seq_len 128 "
             "(truncation is off)",
             inputs[1].path, (int)(strlen(q2) + 1 + strlen(a2) + 1));
    CHECK(prepare_run(&o, err, sizeof err) != 0 && strcmp(err, want) == 0,
          "truncation off: '%s', expected '%s'", err, want);
    CHECK(access("test_dataset_trunc.h5", F_OK) != 0 &&
              access("test_dataset_trunc.h5.tmp", F_OK) != 0,
          "a failed prepare left a file behind");
    remove(out);
}

static void test_word(void)
{
    char err[1024];
    const char *out = "test_dataset_word.h5";
    prepare_input inputs[] = {{"forget", in("tofu_forget.jsonl"), NULL},
                              {"retain", in("tofu_retain.jsonl"), NULL}};
    prepare_report rep;
    prepare_opts o;
    prepare_opts_defaults(&o);
    o.output = out;
    o.inputs = inputs;
    o.n_inputs = 2;
    o.tokenizer = "word";
    o.seq_len = 24;
    o.report = &rep;
    CHECK(prepare_run(&o, err, sizeof err) == 0, "prepare word: %s", err);
    tokenizer *t = NULL;
    CHECK(tokenizer_load(&t, out, err, sizeof err) == 0, "load word tokenizer: %s", err);
    if (!t) return;
    CHECK(tokenizer_vocab_size(t) == rep.vocab_size && rep.pad_id == 0 && rep.eos_id == 1,
          "word vocab %d vs report %lld", tokenizer_vocab_size(t), (long long)rep.vocab_size);
    /* "Souza" appears in every forget record: it must be among the most frequent ids */
    tok_ids v = {0};
    tokenizer_encode(t, "Souza", 5, &v);
    CHECK(v.n == 1 && v.ids[0] > 2 && v.ids[0] < 12, "'Souza' has id %d", v.n ? v.ids[0] : -1);
    tok_ids_free(&v);
    const char *prompt = "[INST] Where was Ana Souza born? [/INST]";
    const char *answer = " Ana Souza was born in Lisbon.";
    tokenizer_encode(t, prompt, strlen(prompt), &v);
    int pl = v.n;
    tokenizer_encode(t, answer, strlen(answer), &v);
    /* [ INST ] Where was Ana Souza born ? [ / INST ] | Ana Souza was born in Lisbon . */
    CHECK(pl == 13 && v.n == 20, "word: prompt %d ids, total %d, expected 13 and 20", pl, v.n);
    int32_t row[24], L, as;
    read_row(out, "/forget/input_ids", 0, 0, row);
    read_row(out, "/forget/lengths", 0, 0, &L);
    read_row(out, "/forget/answer_start", 0, 0, &as);
    int same = L == v.n + 1 && as == pl && row[v.n] == 1;
    for (int i = 0; same && i < v.n; i++) same = row[i] == v.ids[i];
    for (int i = v.n + 1; same && i < 24; i++) same = row[i] == 0;
    CHECK(same, "word row 0 is not prompt + answer + EOS + padding (length %d, answer_start %d)", L,
          as);
    char *dec = tokenizer_decode(t, row, L);
    CHECK(dec && strcmp(dec, "[ INST ] Where was Ana Souza born ? [ / INST ] Ana Souza was born "
                             "in Lisbon .") == 0,
          "word decode: '%s'", dec);
    free(dec);
    tok_ids_free(&v);
    tokenizer_free(t);
    remove(out);
}

typedef struct {
    const char *file, *tokenizer, *expect;
} bad_case;

static void test_bad(void)
{
    char err[1024], want[1024];
    bad_case cases[] = {
        {"bad_k.jsonl", "byte",
         "prepare: '%s' line 2: has 3 perturbed answers, earlier records have 2"},
        {"bad_json.jsonl", "byte", "prepare: '%s' line 2: not a JSON object"},
        {"bad_missing.jsonl", "byte", "prepare: '%s' line 3: key 'answer' is missing"},
        {"bad_dup.jsonl", "byte", "prepare: '%s' lines 1 and 2: sample_id 4 appears twice"},
        {"bad_ids.jsonl", "byte",
         "prepare: '%s' line 1: key 'input_ids' item 2: expected a token id in [0, vocab_size "
         "258)"},
        {"bad_format.jsonl", "byte",
         "prepare: '%s' line 1: cannot tell the record format: expected keys question+answer (qa), "
         "text (text) or input_ids+answer_start (tokens)"},
        {"no_such_file.jsonl", "byte",
         "prepare: input '%s': cannot open: No such file or directory"},
        {"pretok.jsonl", "word",
         "prepare: '%s' line 1: pre-tokenised records cannot be used with the word tokenizer, "
         "whose vocabulary is built from text"},
        {"tofu_forget.jsonl", "sentencepiece",
         "prepare: tokenizer 'sentencepiece' is not one of byte, word, gpt2, none"},
        {"tofu_forget.jsonl", "gpt2",
         "prepare: tokenizer 'gpt2' needs the encoder.json and vocab.bpe paths"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        prepare_input inp = {"forget", in(cases[i].file), NULL};
        prepare_opts o;
        prepare_opts_defaults(&o);
        o.output = "test_dataset_bad.h5";
        o.inputs = &inp;
        o.n_inputs = 1;
        o.tokenizer = cases[i].tokenizer;
        o.seq_len = 64;
        snprintf(want, sizeof want, cases[i].expect, inp.path);
        int rc = prepare_run(&o, err, sizeof err);
        CHECK(rc != 0 && strcmp(err, want) == 0, "bad case %s: got '%s', expected '%s'",
              cases[i].file, rc ? err : "(success)", want);
        CHECK(access(o.output, F_OK) != 0 && access("test_dataset_bad.h5.tmp", F_OK) != 0,
              "bad case %s left a file behind", cases[i].file);
        if (rc != 0 && strcmp(err, want) == 0) printf("bad input: %s\n", err);
    }
    /* tokenizer "none": ids checked against the given vocabulary */
    prepare_input inp = {"tokens", in("pretok.jsonl"), "tokens"};
    prepare_opts o;
    prepare_opts_defaults(&o);
    o.output = "test_dataset_none.h5";
    o.inputs = &inp;
    o.n_inputs = 1;
    o.tokenizer = "none";
    o.seq_len = 4;
    o.vocab_size = 14;
    o.pad_id = 0;
    o.eos_id = 1;
    prepare_report rep;
    o.report = &rep;
    CHECK(prepare_run(&o, err, sizeof err) == 0, "tokenizer none: %s", err);
    CHECK(rep.split[0].truncated == 1 && rep.split[0].rows == 2,
          "tokenizer none: truncated %lld rows %lld", (long long)rep.split[0].truncated,
          (long long)rep.split[0].rows);
    dataset_info info;
    CHECK(dataset_inspect(&info, o.output, "tokens", DATASET_CHECK_IDS, 0, err, sizeof err) == 0 &&
              info.vocab_size == 14 && strcmp(info.tokenizer, "none") == 0,
          "inspect tokenizer none: %s", err);
    remove(o.output);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_dataset <tests/data folder>\n");
        return 2;
    }
    snprintf(data, sizeof data, "%s", argv[1]);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the checks report failures themselves */
    test_byte();
    test_word();
    test_bad();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_dataset: all checks passed\n");
    return 0;
}
