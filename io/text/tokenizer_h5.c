/* io/text/tokenizer_h5.c — a tokenizer saved inside a dataset file (its kind, tokens and
 * merges as HDF5 string datasets; for llama3 and spm also piece types, scores and
 * settings) and loaded back from one. */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mpi/fatal.h"
#include "../dataset.h"
#include "../safefile.h"
#include "tokenizer_impl.h"

/* ---- saving inside a dataset -------------------------------------------------------------- */

static int write_strings(hid_t g, const char *name, char *const *v, int n)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(g, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        rc = H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 ? -1 : 0;
        H5Dclose(d);
    }
    H5Sclose(s);
    H5Tclose(t);
    return rc;
}

/* A 1-D dataset of n numbers of memory type mt, stored as ft. */
static int write_numbers(hid_t g, const char *name, hid_t ft, hid_t mt, const void *v, int n)
{
    hsize_t dims[1] = {(hsize_t)n};
    hid_t s = H5Screate_simple(1, dims, NULL);
    hid_t d = H5Dcreate2(g, name, ft, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    H5Sclose(s);
    return rc;
}

static const char *const hf_attrs[5] = {"bos_id", "unk_id", "ignore_merges", "add_prefix",
                                        "byte_fallback"};

/* llama3 and spm: piece types, scores and settings */
static int save_hf(const tokenizer *t, hid_t g)
{
    int64_t v[5] = {t->bos_id, t->unk_id, t->ignore_merges, t->add_prefix, t->byte_fallback};
    for (int i = 0; i < 5; i++)
        if (h5_attr_write_i64(g, hf_attrs[i], v[i])) return -1;
    if (write_numbers(g, "types", H5T_STD_U8LE, H5T_NATIVE_UINT8, t->ptype, t->vocab_size))
        return -1;
    return t->scores ? write_numbers(g, "scores", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->scores,
                                     t->vocab_size)
                     : 0;
}

int tokenizer_save(const tokenizer *t, hid_t file, char *err, size_t errlen)
{
    h5_quiet q;
    h5_quiet_on(&q);
    int rc = 0;
    hid_t g = H5Gcreate2(file, "tokenizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || h5_attr_write_str(g, "kind", tokenizer_name(t)))
        rc = lethe_errf(err, errlen, "cannot create the /tokenizer group");
    if (!rc && t->tokens && write_strings(g, "vocab", t->tokens, t->vocab_size))
        rc = lethe_errf(err, errlen, "cannot write /tokenizer/vocab (%d strings)", t->vocab_size);
    if (!rc && t->merges && write_strings(g, "merges", t->merges, t->n_merges))
        rc = lethe_errf(err, errlen, "cannot write /tokenizer/merges (%d strings)", t->n_merges);
    if (!rc && t->ptype && save_hf(t, g))
        rc = lethe_errf(err, errlen, "cannot write the /tokenizer types, scores or settings");
    if (g >= 0) H5Gclose(g);
    h5_quiet_off(&q);
    return rc;
}

/* Reads a 1-D string dataset; *out holds n malloc'd strings (caller frees). */
static int read_strings(hid_t g, const char *name, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0) return 1;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) return 1;
    hid_t ft = H5Dget_type(d), s = H5Dget_space(d);
    int rc = 2;
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (H5Tget_class(ft) == H5T_STRING && H5Sget_simple_extent_ndims(s) == 1 && np >= 0 &&
        np < INT32_MAX) {
        char **v = calloc((size_t)(np ? np : 1), sizeof *v);
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char **raw = calloc((size_t)(np ? np : 1), sizeof *raw);
            if (v && raw && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0) {
                rc = 0;
                for (hssize_t i = 0; i < np; i++)
                    if (!(v[i] = strdup(raw[i] ? raw[i] : ""))) rc = 3;
#if H5_VERSION_GE(1, 12, 0)
                H5Treclaim(mt, s, H5P_DEFAULT, raw);
#else
                H5Dvlen_reclaim(mt, s, H5P_DEFAULT, raw);
#endif
            }
            free(raw);
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(ft);
            char *raw = calloc((size_t)np * sz + 1, 1);
            if (v && raw && H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0) {
                rc = 0;
                for (hssize_t i = 0; i < np; i++)
                    if (!(v[i] = strndup(raw + i * sz, sz))) rc = 3;
            }
            free(raw);
        }
        if (rc == 0) {
            *out = v;
            *n = (int)np;
        } else if (v) {
            for (hssize_t i = 0; i < np; i++) free(v[i]);
            free(v);
        }
    }
    H5Tclose(ft);
    H5Sclose(s);
    H5Dclose(d);
    return rc;
}

/* read_strings of /tokenizer/<name> (g < 0: no such group), or -1 with the one line
 * that says what is wrong with it. */
static int read_strings_or_say(hid_t g, const char *name, char ***v, int *n, const char *path,
                               char *err, size_t errlen)
{
    int r = g < 0 ? 1 : read_strings(g, name, v, n);
    if (!r) return 0;
    return lethe_errf(err, errlen, "dataset '%s': '/tokenizer/%s' is %s", path, name,
                      r == 1   ? "missing"
                      : r == 2 ? "not a 1-D string dataset"
                               : "unreadable");
}

static void free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* The piece types and scores of a saved llama3/spm tokenizer, which is set up anew. */
static int load_hf(tokenizer *t, hid_t f, hid_t g, char **vs, int nv, char **ms, int nm,
                   const char *origin, char *err, size_t errlen)
{
    int64_t v[5], pad, eos;
    for (int i = 0; i < 5; i++)
        if (h5_attr_read_i64(g, hf_attrs[i], &v[i]))
            return lethe_errf(err, errlen, "%s: attribute '%s' is missing", origin, hf_attrs[i]);
    if (h5_attr_read_i64(f, "pad_id", &pad) || h5_attr_read_i64(f, "eos_id", &eos))
        return lethe_errf(err, errlen, "%s: root attributes pad_id and eos_id are required",
                          origin);
    int rc = t->kind == TOKENIZER_LLAMA3
                 ? tk_bytelevel_setup(t, vs, nv, ms, nm, origin, err, errlen)
                 : tk_set_vocab(t, vs, nv, origin, err, errlen) ||
                       tk_set_merges(t, ms, nm, origin, err, errlen);
    if (rc) return -1;
    t->ptype = malloc((size_t)(nv ? nv : 1));
    if (!t->ptype) return lethe_errf(err, errlen, "out of memory");
    hid_t d = H5Dopen2(g, "types", H5P_DEFAULT);
    hid_t s = d >= 0 ? H5Dget_space(d) : -1;
    rc = s < 0 || H5Sget_simple_extent_npoints(s) != nv ||
         H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->ptype) < 0;
    if (s >= 0) H5Sclose(s);
    if (d >= 0) H5Dclose(d);
    if (rc) return lethe_errf(err, errlen, "%s: 'types' is missing or not %d bytes", origin, nv);
    for (int i = 0; i < nv; i++)
        if (t->ptype[i] < TK_NORMAL || t->ptype[i] > TK_BYTE)
            return lethe_errf(err, errlen, "%s: piece %d has type %d", origin, i, t->ptype[i]);
    if (H5Lexists(g, "scores", H5P_DEFAULT) > 0) {
        t->scores = malloc((size_t)(nv ? nv : 1) * sizeof *t->scores);
        d = H5Dopen2(g, "scores", H5P_DEFAULT);
        s = d >= 0 ? H5Dget_space(d) : -1;
        rc = !t->scores || s < 0 || H5Sget_simple_extent_npoints(s) != nv ||
             H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->scores) < 0;
        if (s >= 0) H5Sclose(s);
        if (d >= 0) H5Dclose(d);
        if (rc) return lethe_errf(err, errlen, "%s: 'scores' is not %d numbers", origin, nv);
    }
    int64_t ids[4] = {v[0], v[1], pad, eos};
    for (int i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= nv)
            return lethe_errf(err, errlen, "%s: special id %lld is out of range", origin,
                              (long long)ids[i]);
    t->bos_id = (int)v[0];
    t->unk_id = (int)v[1];
    t->ignore_merges = (int)v[2];
    t->add_prefix = (int)v[3];
    t->byte_fallback = (int)v[4];
    t->pad_id = (int)pad;
    t->eos_id = (int)eos;
    if (tk_set_added(t, t->kind == TOKENIZER_LLAMA3 || !t->scores))
        return lethe_errf(err, errlen, "out of memory");
    return t->kind == TOKENIZER_SPM ? tk_spm_setup(t, origin, err, errlen) : 0;
}

int tokenizer_load(tokenizer **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    h5_quiet q;
    h5_quiet_on(&q);
    int rc = -1;
    char kind[64];
    int64_t vocab = 0;
    char **vs = NULL, **ms = NULL;
    int nv = 0, nm = 0;
    hid_t g = -1, f = -1;
    if (safe_check_read(path, "dataset", LETHE_MAX_TENSORS, err, errlen)) goto out;
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        lethe_errf(err, errlen, "dataset '%s': cannot open it to read its tokenizer", path);
        goto out;
    }
    if (h5_attr_read_str(f, "tokenizer", kind, sizeof kind) ||
        h5_attr_read_i64(f, "vocab_size", &vocab)) {
        lethe_errf(err, errlen,
                   "dataset '%s': root attributes 'tokenizer' (string) and 'vocab_size' "
                   "(integer) are required",
                   path);
        goto out;
    }
    if (strcmp(kind, "byte") == 0) {
        *out = tokenizer_byte();
        rc = *out ? 0 : lethe_errf(err, errlen, "out of memory");
    } else if (strcmp(kind, "word") == 0 || strcmp(kind, "gpt2") == 0 ||
               strcmp(kind, "llama3") == 0 || strcmp(kind, "spm") == 0) {
        g = H5Gopen2(f, "tokenizer", H5P_DEFAULT);
        if (read_strings_or_say(g, "vocab", &vs, &nv, path, err, errlen)) goto out;
        if (kind[0] == 'w') {
            rc = tokenizer_word_from_list(out, vs, nv, err, errlen);
        } else {
            int hf = kind[0] != 'g';
            if ((!hf || H5Lexists(g, "merges", H5P_DEFAULT) > 0) &&
                read_strings_or_say(g, "merges", &ms, &nm, path, err, errlen))
                goto out;
            tokenizer *t = tk_new(kind[0] == 'g'   ? TOKENIZER_GPT2
                                  : kind[0] == 'l' ? TOKENIZER_LLAMA3
                                                   : TOKENIZER_SPM);
            char origin[1100];
            snprintf(origin, sizeof origin, "dataset '%s': /tokenizer", path);
            rc = !t   ? lethe_errf(err, errlen, "out of memory")
                 : hf ? load_hf(t, f, g, vs, nv, ms, nm, origin, err, errlen)
                      : tk_gpt2_setup(t, vs, nv, ms, nm, origin, err, errlen);
            if (rc)
                tokenizer_free(t);
            else
                *out = t;
        }
        if (rc) {
            char m[512];
            snprintf(m, sizeof m, "%s", err);
            if (strncmp(m, "dataset", 7) != 0) lethe_errf(err, errlen, "dataset '%s': %s", path, m);
        }
    } else {
        lethe_errf(err, errlen,
                   "dataset '%s': tokenizer '%s' is not built in (byte, word, gpt2, llama3, spm)",
                   path, kind);
    }
    if (rc == 0 && tokenizer_vocab_size(*out) != vocab) {
        lethe_errf(err, errlen,
                   "dataset '%s': vocab_size attribute %lld differs from the %s "
                   "tokenizer's %d",
                   path, (long long)vocab, kind, tokenizer_vocab_size(*out));
        tokenizer_free(*out);
        *out = NULL;
        rc = -1;
    }
out:
    free_strings(vs, nv);
    free_strings(ms, nm);
    if (g >= 0) H5Gclose(g);
    if (f >= 0) H5Fclose(f);
    H5Eclear2(H5E_DEFAULT);
    h5_quiet_off(&q);
    return rc;
}
