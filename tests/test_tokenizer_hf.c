/* tests/test_tokenizer_hf.c — the tokenizers of model directories (llama3, spm) against
 * the ids of independent reference encoders, their decoding, and their save/load round
 * trip through an HDF5 dataset file.
 *
 *   test_tokenizer_hf ref FORM PATH S X [P=ID ...]
 *       FORM json (a tokenizer.json), model (a tokenizer.model) or dir (a model
 *       directory): encodes every string of S (JSON array) and checks the ids against X
 *       (array of id arrays, made by a reference encoder: tests/llama_tok_fixture.sh);
 *       decoding gives each string back (strings with special pieces excepted); the
 *       tokenizer saved into an HDF5 file and loaded back encodes S the same; each P=ID
 *       checks tokenizer_token_id(P) (bos=ID, eos=ID, pad=ID check those ids). FORM h5:
 *       the tokenizer saved in a dataset file (by lethe prepare --tokenizer-dir).
 *   test_tokenizer_hf row H5 SPLIT X
 *       row 0 of SPLIT/input_ids of the dataset H5 is X[0] (the prompt's reference ids),
 *       then X[1] (the answer's), then eos, then pad; lengths and answer_start agree.
 * Bad files are tests/test_tokenizer_bad.c's. */
#include "io/dataset.h"
#include "io/text/tokenizer.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "test_tokenizer_io.h"

CHECK_COUNTERS;

static int load(const char *form, const char *path, tokenizer **t, char *err, size_t errlen)
{
    if (!strcmp(form, "json")) return tokenizer_hf_json_load(t, path, err, errlen);
    if (!strcmp(form, "model")) return tokenizer_spm_load(t, path, err, errlen);
    if (!strcmp(form, "h5")) return tokenizer_load(t, path, err, errlen);
    return tokenizer_load_dir(t, path, err, errlen);
}

/* Encodes every string; returns the number of ids compared, counting mismatches as
 * failures (the first few are shown). */
static long compare_all(const tokenizer *t, const cJSON *s, const cJSON *x, const char *what,
                        int decode)
{
    long total = 0;
    int shown = 0, n = cJSON_GetArraySize(s), decoded = 0;
    const cJSON *si = s->child, *xi = x->child;
    for (int i = 0; i < n; i++, si = si->next, xi = xi->next) {
        const char *text = si->valuestring;
        tok_ids v = {0};
        int rc = tokenizer_encode(t, text, strlen(text), &v);
        int m = cJSON_GetArraySize(xi), same = rc == 0 && v.n == m, j = 0;
        for (const cJSON *e = xi->child; same && e; e = e->next, j++)
            same = v.ids[j] == e->valueint;
        total += m;
        if (!same && shown++ < 5) {
            char got[600] = "", want[600] = "";
            size_t o = 0, w = 0;
            for (int k = 0; k < v.n && o < sizeof got - 16; k++)
                o += snprintf(got + o, sizeof got - o, "%d ", v.ids[k]);
            for (const cJSON *e = xi->child; e && w < sizeof want - 16; e = e->next)
                w += snprintf(want + w, sizeof want - w, "%d ", e->valueint);
            CHECK(0, "%s: string %d \"%s\": ids [%s], reference [%s]", what, i, text, got, want);
        } else if (!same) {
            CHECK(0, "%s: string %d differs", what, i);
        }
        if (decode && same && !strstr(text, "<|")) {
            char *d = tokenizer_decode(t, v.ids, v.n);
            CHECK(d && strcmp(d, text) == 0, "%s: decode of string %d gave \"%s\", expected \"%s\"",
                  what, i, d ? d : "(null)", text);
            decoded++;
            free(d);
        }
        tok_ids_free(&v);
    }
    if (decode) printf("%s: %d strings decoded back to the text\n", what, decoded);
    return total;
}

/* Saves t into an HDF5 file as a dataset writer does, loads it back. */
static tokenizer *round_trip(const tokenizer *t)
{
    char err[1024];
    const char *path = "test_tokenizer_hf.h5";
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_attr_write_str(f, "tokenizer", tokenizer_name(t));
    h5_attr_write_i64(f, "vocab_size", tokenizer_vocab_size(t));
    h5_attr_write_i64(f, "pad_id", tokenizer_pad_id(t));
    h5_attr_write_i64(f, "eos_id", tokenizer_eos_id(t));
    CHECK(tokenizer_save(t, f, err, sizeof err) == 0, "save: %s", err);
    H5Fclose(f);
    tokenizer *t2 = NULL;
    CHECK(tokenizer_load(&t2, path, err, sizeof err) == 0, "load from HDF5: %s", err);
    remove(path);
    if (t2) {
        CHECK(tokenizer_kind_of(t2) == tokenizer_kind_of(t) &&
                  tokenizer_vocab_size(t2) == tokenizer_vocab_size(t) &&
                  tokenizer_bos_id(t2) == tokenizer_bos_id(t) &&
                  tokenizer_eos_id(t2) == tokenizer_eos_id(t) &&
                  tokenizer_pad_id(t2) == tokenizer_pad_id(t),
              "reloaded tokenizer: kind/vocab/bos/eos/pad %s %d %d %d %d, expected %s %d %d %d %d",
              tokenizer_name(t2), tokenizer_vocab_size(t2), tokenizer_bos_id(t2),
              tokenizer_eos_id(t2), tokenizer_pad_id(t2), tokenizer_name(t),
              tokenizer_vocab_size(t), tokenizer_bos_id(t), tokenizer_eos_id(t),
              tokenizer_pad_id(t));
    }
    return t2;
}

static int test_ref(int argc, char **argv)
{
    const char *form = argv[2], *path = argv[3];
    char err[1024];
    tokenizer *t = NULL;
    if (load(form, path, &t, err, sizeof err)) {
        fprintf(stderr, "FAIL load %s '%s': %s\n", form, path, err);
        return 1;
    }
    char *sj = slurp(argv[4]), *xj = slurp(argv[5]);
    cJSON *s = sj ? cJSON_Parse(sj) : NULL, *x = xj ? cJSON_Parse(xj) : NULL;
    int n = cJSON_GetArraySize(s);
    if (!s || !x || cJSON_GetArraySize(x) != n || n < 1) {
        fprintf(stderr, "FAIL: cannot read '%s' and '%s' as arrays of the same size\n", argv[4],
                argv[5]);
        return 1;
    }
    for (int i = 6; i < argc; i++) {
        char *eq = strrchr(argv[i], '=');
        if (!eq) continue;
        *eq = 0;
        int want = atoi(eq + 1);
        int got = !strcmp(argv[i], "bos")   ? tokenizer_bos_id(t)
                  : !strcmp(argv[i], "eos") ? tokenizer_eos_id(t)
                  : !strcmp(argv[i], "pad") ? tokenizer_pad_id(t)
                                            : tokenizer_token_id(t, argv[i]);
        CHECK(got == want, "%s: id of '%s' is %d, expected %d", path, argv[i], got, want);
    }
    CHECK(tokenizer_token_id(t, "no such piece \x01") == -1, "an absent piece has an id");
    int f0 = failures;
    long ids = compare_all(t, s, x, tokenizer_name(t), 1);
    printf("%s (%s '%s'): %d strings, %ld reference ids, %s\n", tokenizer_name(t), form, path, n,
           ids, failures == f0 ? "all identical" : "MISMATCHES");
    tokenizer *t2 = round_trip(t);
    if (t2) {
        f0 = failures;
        compare_all(t2, s, x, "reloaded from HDF5", 0);
        printf("reloaded from HDF5: %d strings, %s\n", n,
               failures == f0 ? "all identical" : "MISMATCHES");
    }
    tokenizer_free(t2);
    tokenizer_free(t);
    cJSON_Delete(s);
    cJSON_Delete(x);
    free(sj);
    free(xj);
    return 0;
}

static int read_i32(hid_t f, const char *name, hsize_t row, hsize_t n, int32_t *v)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t fs = H5Dget_space(d);
    int nd = H5Sget_simple_extent_ndims(fs);
    hsize_t start[2] = {row, 0}, cnt[2] = {1, n};
    if (nd == 1) cnt[0] = n;
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
    hid_t ms = H5Screate_simple(nd, cnt, NULL);
    herr_t rc = H5Dread(d, H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT, v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
    return rc < 0 ? -1 : 0;
}

static int test_row(char **argv)
{
    char err[1024], name[256];
    tokenizer *t = NULL;
    if (tokenizer_load(&t, argv[2], err, sizeof err)) {
        fprintf(stderr, "FAIL: %s\n", err);
        return 1;
    }
    char *xj = slurp(argv[4]);
    cJSON *x = xj ? cJSON_Parse(xj) : NULL;
    if (cJSON_GetArraySize(x) != 2) {
        fprintf(stderr, "FAIL: '%s' is not [prompt ids, answer ids]\n", argv[4]);
        return 1;
    }
    int32_t want[4096], got[4096], len = -1, as = -1;
    int m = 0, np = cJSON_GetArraySize(x->child);
    for (const cJSON *a = x->child; a; a = a->next)
        for (const cJSON *e = a->child; e && m < 4000; e = e->next) want[m++] = e->valueint;
    want[m++] = tokenizer_eos_id(t);
    hid_t f = H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT);
    snprintf(name, sizeof name, "/%s/input_ids", argv[3]);
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    int T = (int)dims[1];
    CHECK(T >= m && T <= 4096, "%s: row length %d, the reference needs %d", name, T, m);
    for (int j = m; j < T && T <= 4096; j++) want[j] = tokenizer_pad_id(t);
    CHECK(T <= 4096 && read_i32(f, name, 0, (hsize_t)T, got) == 0, "cannot read %s", name);
    snprintf(name, sizeof name, "/%s/lengths", argv[3]);
    read_i32(f, name, 0, 1, &len);
    snprintf(name, sizeof name, "/%s/answer_start", argv[3]);
    read_i32(f, name, 0, 1, &as);
    H5Fclose(f);
    int same = T >= m && T <= 4096 && memcmp(got, want, (size_t)T * sizeof *got) == 0;
    CHECK(same && len == m && as == np,
          "row 0 of %s/%s differs from the reference ids (length %d answer_start %d, expected "
          "%d %d)",
          argv[2], argv[3], len, as, m, np);
    printf("%s row 0: %d reference ids (prompt %d) + eos + pad to %d: %s\n", argv[3], m - 1, np, T,
           same ? "identical" : "DIFFERENT");
    cJSON_Delete(x);
    free(xj);
    tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "ref") == 0) {
        if (test_ref(argc, argv)) return 1;
    } else if (argc == 5 && strcmp(argv[1], "row") == 0) {
        if (test_row(argv)) return 1;
    } else {
        fprintf(stderr,
                "usage: test_tokenizer_hf ref json|model|dir PATH STRINGS EXPECTED [P=ID ...]\n");
        return 2;
    }
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("test_tokenizer_hf: all %d checks passed\n", checks);
    return 0;
}
