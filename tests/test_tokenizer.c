/* tests/test_tokenizer.c — exact ids of the built-in tokenizers.
 *
 *   test_tokenizer                 byte and word tokenizers on fixed strings (ids derived
 *                                  by hand from the rules in io/text/tokenizer.h), decoding,
 *                                  and a save/load round trip through an HDF5 file
 *   test_tokenizer gpt2 E B S X    GPT-2 BPE with encoder.json E and vocab.bpe B on the
 *                                  strings S (JSON array) against the reference ids X
 *                                  (tests/gpt2_fixture.sh makes X with the npm package) */
#include "io/dataset.h"
#include "io/text/prepare.h"
#include "io/text/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "test_tokenizer_io.h"

CHECK_COUNTERS;


static void expect_ids(const tokenizer *t, const char *text, const int32_t *want, int n)
{
    tok_ids v = {0};
    int rc = tokenizer_encode(t, text, strlen(text), &v);
    int same = rc == 0 && v.n == n;
    for (int i = 0; same && i < n; i++) same = v.ids[i] == want[i];
    if (!same) {
        char got[1024] = "";
        size_t o = 0;
        for (int i = 0; i < v.n && o < sizeof got - 16; i++)
            o += snprintf(got + o, sizeof got - o, "%d ", v.ids[i]);
        CHECK(0, "%s: encode(\"%s\") gave [%s] (%d ids), expected %d ids", tokenizer_name(t), text,
              got, v.n, n);
    }
    tok_ids_free(&v);
}

static void expect_decode(const tokenizer *t, const int32_t *ids, int n, const char *want)
{
    char *s = tokenizer_decode(t, ids, n);
    CHECK(s && strcmp(s, want) == 0, "%s: decode gave \"%s\", expected \"%s\"", tokenizer_name(t),
          s ? s : "(null)", want);
    free(s);
}

static void test_byte(void)
{
    tokenizer *t = tokenizer_byte();
    CHECK(tokenizer_vocab_size(t) == 258 && tokenizer_pad_id(t) == 256 &&
              tokenizer_eos_id(t) == 257,
          "byte: vocab %d pad %d eos %d, expected 258 256 257", tokenizer_vocab_size(t),
          tokenizer_pad_id(t), tokenizer_eos_id(t));
    /* ids are the UTF-8 bytes: 'H' 0x48, 'i' 0x69, '!' 0x21, ' ' 0x20, 'é' = C3 A9, '\n' 0x0A */
    expect_ids(t, "Hi!", (int32_t[]){72, 105, 33}, 3);
    expect_ids(t, "é \n", (int32_t[]){0xC3, 0xA9, 32, 10}, 4);
    expect_ids(t, "", NULL, 0);
    expect_decode(t, (int32_t[]){72, 105, 257, 256, 256}, 5, "Hi");
    tokenizer_free(t);
}

static const char *corpus = "the cat sat on the mat. the dog don't";

static void test_word(void)
{
    char err[512];
    word_counter *wc = word_counter_new();
    word_counter_add(wc, corpus, strlen(corpus));
    tokenizer *t = NULL;
    CHECK(tokenizer_word_build(&t, wc, 1, 0, err, sizeof err) == 0 && t, "word build: %s", err);
    if (!t) {
        word_counter_free(wc);
        return;
    }
    /* counts: the 3; ".", cat, dog, don't, mat, on, sat 1 each (byte order breaks ties):
     * 0 <pad> 1 <eos> 2 <unk> 3 the 4 . 5 cat 6 dog 7 don't 8 mat 9 on 10 sat */
    CHECK(tokenizer_vocab_size(t) == 11, "word: vocab %d, expected 11", tokenizer_vocab_size(t));
    const char *want[] = {"<pad>", "<eos>", "<unk>", "the", ".",  "cat",
                          "dog",   "don't", "mat",   "on",  "sat"};
    for (int i = 0; i < 11 && i < tokenizer_vocab_size(t); i++)
        CHECK(strcmp(tokenizer_token(t, i), want[i]) == 0, "word: id %d is '%s', expected '%s'", i,
              tokenizer_token(t, i), want[i]);
    expect_ids(t, "the dog sat on a mat.", (int32_t[]){3, 6, 10, 9, 2, 8, 4}, 7);
    expect_ids(t, "  don't\tthe\n", (int32_t[]){7, 3}, 2);
    expect_ids(t, "The cat's", (int32_t[]){2, 2}, 2); /* case kept; "cat's" is one word */
    expect_decode(t, (int32_t[]){3, 5, 10, 1, 0}, 5, "the cat sat");

    /* min_count and max_vocab */
    tokenizer *t2 = NULL;
    CHECK(tokenizer_word_build(&t2, wc, 2, 0, err, sizeof err) == 0, "%s", err);
    CHECK(t2 && tokenizer_vocab_size(t2) == 4, "word min_count 2: vocab %d, expected 4",
          t2 ? tokenizer_vocab_size(t2) : -1);
    tokenizer_free(t2);
    CHECK(tokenizer_word_build(&t2, wc, 1, 6, err, sizeof err) == 0, "%s", err);
    CHECK(t2 && tokenizer_vocab_size(t2) == 6 && strcmp(tokenizer_token(t2, 5), "cat") == 0,
          "word max_vocab 6: vocab %d", t2 ? tokenizer_vocab_size(t2) : -1);
    tokenizer_free(t2);

    /* save into a file and load it back */
    const char *path = "test_tokenizer_word.h5";
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(f >= 0, "cannot create %s", path);
    h5_attr_write_str(f, "tokenizer", "word");
    h5_attr_write_i64(f, "vocab_size", tokenizer_vocab_size(t));
    CHECK(tokenizer_save(t, f, err, sizeof err) == 0, "save: %s", err);
    H5Fclose(f);
    tokenizer *t3 = NULL;
    CHECK(tokenizer_load(&t3, path, err, sizeof err) == 0, "load: %s", err);
    if (t3) {
        CHECK(tokenizer_vocab_size(t3) == 11, "loaded vocab %d", tokenizer_vocab_size(t3));
        expect_ids(t3, "the dog sat on a mat.", (int32_t[]){3, 6, 10, 9, 2, 8, 4}, 7);
    }
    tokenizer_free(t3);
    remove(path);

    /* a bad list */
    char *bad[] = {"<pad>", "<unk>", "<eos>", "x"};
    CHECK(tokenizer_word_from_list(&t2, bad, 4, err, sizeof err) != 0 &&
              strstr(err, "entry 1 is '<unk>', expected '<eos>'"),
          "bad word list: '%s'", err);
    tokenizer_free(t);
    word_counter_free(wc);
}

static int test_gpt2(const char *enc, const char *bpe, const char *strings, const char *expected)
{
    char err[1024];
    tokenizer *t = NULL;
    if (tokenizer_gpt2_load(&t, enc, bpe, err, sizeof err)) {
        fprintf(stderr, "FAIL gpt2 load: %s\n", err);
        return 1;
    }
    CHECK(tokenizer_vocab_size(t) == 50257 && tokenizer_eos_id(t) == 50256,
          "gpt2: vocab %d eos %d, expected 50257 50256", tokenizer_vocab_size(t),
          tokenizer_eos_id(t));
    /* the package's README figure */
    expect_ids(t, "Hello world", (int32_t[]){15496, 995}, 2);
    char *sj = slurp(strings), *xj = slurp(expected);
    cJSON *s = sj ? cJSON_Parse(sj) : NULL, *x = xj ? cJSON_Parse(xj) : NULL;
    if (!s || !x || cJSON_GetArraySize(s) != cJSON_GetArraySize(x) || cJSON_GetArraySize(s) < 1) {
        fprintf(stderr, "FAIL gpt2: cannot read '%s' and '%s' as arrays of the same size\n",
                strings, expected);
        return 1;
    }
    int n = cJSON_GetArraySize(s), total = 0;
    for (int i = 0; i < n; i++) {
        const char *text = cJSON_GetArrayItem(s, i)->valuestring;
        cJSON *ids = cJSON_GetArrayItem(x, i);
        int m = cJSON_GetArraySize(ids);
        int32_t *want = malloc((size_t)(m ? m : 1) * sizeof *want);
        for (int j = 0; j < m; j++) want[j] = cJSON_GetArrayItem(ids, j)->valueint;
        expect_ids(t, text, want, m);
        /* byte-level BPE is lossless */
        expect_decode(t, want, m, text);
        total += m;
        free(want);
    }
    printf("gpt2: %d strings, %d ids compared with the reference encoder\n", n, total);

    /* save into a dataset-like file, load, encode again */
    const char *path = "test_tokenizer_gpt2.h5";
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_attr_write_str(f, "tokenizer", "gpt2");
    h5_attr_write_i64(f, "vocab_size", tokenizer_vocab_size(t));
    CHECK(tokenizer_save(t, f, err, sizeof err) == 0, "gpt2 save: %s", err);
    H5Fclose(f);
    tokenizer *t2 = NULL;
    CHECK(tokenizer_load(&t2, path, err, sizeof err) == 0, "gpt2 load: %s", err);
    if (t2) {
        const char *text = cJSON_GetArrayItem(s, 2)->valuestring;
        tok_ids a = {0}, b = {0};
        tokenizer_encode(t, text, strlen(text), &a);
        tokenizer_encode(t2, text, strlen(text), &b);
        CHECK(a.n == b.n && memcmp(a.ids, b.ids, (size_t)a.n * 4) == 0,
              "gpt2 reloaded from HDF5 encodes differently");
        tok_ids_free(&a);
        tok_ids_free(&b);
    }
    tokenizer_free(t2);
    remove(path);

    /* prepare with gpt2: the first record of tests/data/tofu_forget.jsonl is stored as
     * the reference ids of its prompt (the strings file's second-to-last entry) and of
     * " " + its answer (the last), then <|endoftext|>, padded with it */
    char dir[1024], fin[1100];
    snprintf(dir, sizeof dir, "%s", strings);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(fin, sizeof fin, "%s/tofu_forget.jsonl", dir);
    prepare_input inp = {"forget", fin, "qa"};
    prepare_opts o;
    prepare_opts_defaults(&o);
    o.output = "test_tokenizer_gpt2_prepare.h5";
    o.inputs = &inp;
    o.n_inputs = 1;
    o.tokenizer = "gpt2";
    o.gpt2_encoder = enc;
    o.gpt2_merges = bpe;
    o.seq_len = 40;
    CHECK(prepare_run(&o, err, sizeof err) == 0, "prepare gpt2: %s", err);
    cJSON *pr = cJSON_GetArrayItem(x, n - 2), *an = cJSON_GetArrayItem(x, n - 1);
    int np = cJSON_GetArraySize(pr), na = cJSON_GetArraySize(an);
    int32_t want[40], got[40], len = 0, as = 0;
    int m = 0;
    for (int j = 0; j < np; j++) want[m++] = cJSON_GetArrayItem(pr, j)->valueint;
    for (int j = 0; j < na; j++) want[m++] = cJSON_GetArrayItem(an, j)->valueint;
    want[m++] = 50256;
    for (int j = m; j < 40; j++) want[j] = 50256;
    hid_t f2 = H5Fopen(o.output, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f2 >= 0, "cannot open %s", o.output);
    if (f2 >= 0) {
        hid_t d = H5Dopen2(f2, "/forget/input_ids", H5P_DEFAULT);
        hid_t fs = H5Dget_space(d);
        hsize_t start[2] = {0, 0}, cnt[2] = {1, 40};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
        hid_t ms = H5Screate_simple(2, cnt, NULL);
        H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, got);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Dclose(d);
        hsize_t one[1] = {1}, s0[1] = {0};
        const char *names[2] = {"/forget/lengths", "/forget/answer_start"};
        int32_t *dst[2] = {&len, &as};
        for (int q = 0; q < 2; q++) {
            d = H5Dopen2(f2, names[q], H5P_DEFAULT);
            fs = H5Dget_space(d);
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, s0, NULL, one, NULL);
            ms = H5Screate_simple(1, one, NULL);
            H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, dst[q]);
            H5Sclose(ms);
            H5Sclose(fs);
            H5Dclose(d);
        }
        H5Fclose(f2);
        CHECK(memcmp(got, want, sizeof want) == 0 && len == m && as == np,
              "prepare gpt2: row 0 differs from the reference ids (length %d answer_start %d, "
              "expected %d %d)",
              len, as, m, np);
        tokenizer *t3 = NULL;
        CHECK(tokenizer_load(&t3, o.output, err, sizeof err) == 0 && t3 &&
                  tokenizer_vocab_size(t3) == 50257,
              "gpt2 tokenizer from the prepared file: %s", err);
        tokenizer_free(t3);
    }
    remove(o.output);
    cJSON_Delete(s);
    cJSON_Delete(x);
    free(sj);
    free(xj);
    tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "gpt2") == 0) {
        if (test_gpt2(argv[2], argv[3], argv[4], argv[5])) return 1;
    } else {
        test_byte();
        test_word();
    }
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_tokenizer: all checks passed\n");
    return 0;
}
