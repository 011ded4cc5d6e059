/* io/text/tokenizer_spm_model.c — a SentencePiece tokenizer.model read without
 * libsentencepiece: a protobuf wire-format reader (varint, fixed32/64, length-delimited,
 * every length checked against the bytes left) and the fields of ModelProto that a BPE
 * model with byte fallback needs: pieces (piece, score, type), trainer_spec (model_type,
 * byte_fallback, unk/bos/eos/pad ids, treat_whitespace_as_suffix) and normalizer_spec
 * (name, precompiled_charsmap, add_dummy_prefix, remove_extra_whitespaces,
 * escape_whitespaces). What the encoder cannot honour is refused with one line. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mpi/fatal.h"
#include "../safefile.h"
#include "tokenizer_impl.h"

typedef struct {
    const unsigned char *p, *end;
} pb;

/* One field: its number, wire type, and value (varint, or bytes for length-delimited,
 * or the raw 32/64 bits). Returns 1 at the end, 0 on a field, -1 when truncated or
 * malformed. */
typedef struct {
    uint32_t num, wt;
    uint64_t v;
    const unsigned char *data;
    size_t len;
} pb_field;

static int pb_varint(pb *b, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (b->p >= b->end) return -1;
        unsigned char c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << sh;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

static int pb_next(pb *b, pb_field *f)
{
    if (b->p == b->end) return 1;
    uint64_t key;
    if (pb_varint(b, &key)) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (uint32_t)(key & 7);
    f->data = NULL;
    f->len = 0;
    if (f->wt == 0) return pb_varint(b, &f->v);
    size_t need = f->wt == 1 ? 8 : f->wt == 5 ? 4 : 0;
    if (f->wt == 2) {
        if (pb_varint(b, &f->v)) return -1;
        need = (size_t)f->v;
        if (f->v > (uint64_t)(b->end - b->p)) return -1;
    } else if (!need) {
        return -1; /* groups (3, 4) and unknown wire types */
    }
    if (need > (size_t)(b->end - b->p)) return -1;
    f->data = b->p;
    f->len = need;
    f->v = 0;
    for (size_t i = 0; f->wt != 2 && i < need; i++) f->v |= (uint64_t)b->p[i] << (8 * i);
    b->p += need;
    return 0;
}

typedef struct {
    char **pieces;
    float *scores;
    uint8_t *types;
    int n, cap;
    int64_t model_type, byte_fallback, unk, bos, eos, pad, ws_suffix;
    int64_t dummy_prefix, remove_ws, escape_ws;
    char norm_name[64];
    size_t charsmap_len;
} spm_proto;

static int read_piece(spm_proto *m, const unsigned char *d, size_t n)
{
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 1024;
        char **p = realloc(m->pieces, (size_t)cap * sizeof *p);
        if (p) m->pieces = p;
        float *s = p ? realloc(m->scores, (size_t)cap * sizeof *s) : NULL;
        if (s) m->scores = s;
        uint8_t *t = s ? realloc(m->types, (size_t)cap) : NULL;
        if (!t) return -2;
        m->types = t;
        m->cap = cap;
    }
    pb b = {d, d + n};
    pb_field f;
    int r, i = m->n;
    m->pieces[i] = NULL;
    m->scores[i] = 0;
    m->types[i] = TK_NORMAL;
    m->n++;
    while ((r = pb_next(&b, &f)) == 0) {
        if (f.num == 1 && f.wt == 2) {
            free(m->pieces[i]);
            if (!(m->pieces[i] = strndup((const char *)f.data, f.len))) return -2;
        } else if (f.num == 2 && f.wt == 5) {
            uint32_t u = (uint32_t)f.v;
            memcpy(&m->scores[i], &u, 4);
        } else if (f.num == 3 && f.wt == 0) {
            if (f.v < 1 || f.v > 6) return -3;
            m->types[i] = (uint8_t)f.v; /* SentencePiece's numbering is TK_*'s */
        }
    }
    return r < 0 ? -1 : m->pieces[i] ? 0 : -4;
}

static int read_spec(spm_proto *m, const unsigned char *d, size_t n, int trainer)
{
    pb b = {d, d + n};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) == 0) {
        int64_t v = (int64_t)f.v; /* int32 fields: negative values are 10-byte varints */
        if (trainer && f.wt == 0) {
            if (f.num == 3) m->model_type = v;
            if (f.num == 24) m->ws_suffix = v;
            if (f.num == 35) m->byte_fallback = v;
            if (f.num == 40) m->unk = (int32_t)v;
            if (f.num == 41) m->bos = (int32_t)v;
            if (f.num == 42) m->eos = (int32_t)v;
            if (f.num == 43) m->pad = (int32_t)v;
        } else if (!trainer) {
            if (f.num == 1 && f.wt == 2)
                snprintf(m->norm_name, sizeof m->norm_name, "%.*s", (int)f.len, f.data);
            if (f.num == 2 && f.wt == 2) m->charsmap_len = f.len;
            if (f.num == 3 && f.wt == 0) m->dummy_prefix = v;
            if (f.num == 4 && f.wt == 0) m->remove_ws = v;
            if (f.num == 5 && f.wt == 0) m->escape_ws = v;
        }
    }
    return r < 0 ? -1 : 0;
}

/* ModelProto: 1 pieces, 2 trainer_spec, 3 normalizer_spec; the rest is skipped. */
static int read_model(spm_proto *m, const unsigned char *d, size_t n, const char *path, char *err,
                      size_t errlen)
{
    pb b = {d, d + n};
    pb_field f;
    int r;
    while ((r = pb_next(&b, &f)) == 0) {
        int q = 0;
        if (f.num == 1 && f.wt == 2) q = read_piece(m, f.data, f.len);
        if ((f.num == 2 || f.num == 3) && f.wt == 2) q = read_spec(m, f.data, f.len, f.num == 2);
        if (q == -2) return lethe_errf(err, errlen, "tokenizer file '%s': out of memory", path);
        if (q == -3)
            return lethe_errf(err, errlen, "tokenizer file '%s': piece %d has an unknown type",
                              path, m->n - 1);
        if (q == -4)
            return lethe_errf(err, errlen, "tokenizer file '%s': piece %d has no text", path,
                              m->n - 1);
        if (q) break;
    }
    if (r != 1)
        return lethe_errf(err, errlen,
                          "tokenizer file '%s': not a SentencePiece model: the protobuf is "
                          "truncated or malformed near byte %zu of %zu",
                          path, (size_t)(b.p - d), n);
    return 0;
}

/* What the encoder honours (tokenizer.h: spm). */
static int check_model(const spm_proto *m, const char *path, char *err, size_t errlen)
{
    static const char *const types[] = {"?", "Unigram", "BPE", "Word", "Char"};
    if (m->n < 1) return lethe_errf(err, errlen, "tokenizer file '%s': no pieces", path);
    if (m->model_type != 2)
        return lethe_errf(
            err, errlen, "tokenizer file '%s': a SentencePiece %s model; only BPE is supported",
            path, m->model_type >= 1 && m->model_type <= 4 ? types[m->model_type] : "?");
    if ((m->norm_name[0] && strcmp(m->norm_name, "identity") != 0) || m->charsmap_len)
        return lethe_errf(err, errlen,
                          "tokenizer file '%s': normalizer '%s' is not supported (identity is)",
                          path, m->norm_name[0] ? m->norm_name : "(precompiled)");
    if (m->remove_ws || !m->escape_ws || m->ws_suffix)
        return lethe_errf(err, errlen,
                          "tokenizer file '%s': remove_extra_whitespaces, no whitespace escaping "
                          "or whitespace as suffix are not supported",
                          path);
    int ids[4] = {(int)m->unk, (int)m->bos, (int)m->eos, (int)m->pad};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= m->n || (ids[i] < 0 && i < 3 && i != 1) || ids[i] < -1)
            return lethe_errf(err, errlen,
                              "tokenizer file '%s': trainer_spec %s_id %d is not a piece id", path,
                              (const char *[]){"unk", "bos", "eos", "pad"}[i], ids[i]);
    return 0;
}

int tk_spm_model_load(tokenizer **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    size_t n;
    char *d = safe_read(path, "tokenizer file", LETHE_MAX_TOKENIZER, &n, err, errlen);
    if (!d) return -1;
    /* the protobuf defaults, less those of a BPE model with an identity normalizer */
    spm_proto m = {.model_type = 1,
                   .unk = 0,
                   .bos = 1,
                   .eos = 2,
                   .pad = -1,
                   .dummy_prefix = 1,
                   .remove_ws = 1,
                   .escape_ws = 1};
    tokenizer *t = NULL;
    int rc = read_model(&m, (const unsigned char *)d, n, path, err, errlen);
    if (!rc) rc = check_model(&m, path, err, errlen);
    if (!rc && !(t = tk_new(TOKENIZER_SPM))) rc = lethe_errf(err, errlen, "out of memory");
    char origin[4200];
    snprintf(origin, sizeof origin, "tokenizer file '%s'", path);
    if (!rc) rc = tk_set_vocab(t, m.pieces, m.n, origin, err, errlen);
    if (!rc) {
        t->ptype = m.types;
        t->scores = m.scores;
        m.types = NULL;
        m.scores = NULL;
        t->unk_id = (int)m.unk;
        t->bos_id = (int)m.bos;
        t->eos_id = (int)m.eos;
        t->pad_id = m.pad >= 0 ? (int)m.pad : t->eos_id;
        t->byte_fallback = (int)m.byte_fallback;
        t->add_prefix = m.dummy_prefix ? 3 : 0;
        if (t->ptype[t->unk_id] != TK_UNKNOWN)
            rc = lethe_errf(err, errlen, "tokenizer file '%s': unk_id %d is not the unknown piece",
                            path, t->unk_id);
    }
    if (!rc && tk_set_added(t, 0)) rc = lethe_errf(err, errlen, "out of memory");
    if (!rc) rc = tk_spm_setup(t, origin, err, errlen);
    for (int i = 0; i < m.n; i++) free(m.pieces[i]);
    free(m.pieces);
    free(m.scores);
    free(m.types);
    free(d);
    if (rc)
        tokenizer_free(t);
    else
        *out = t;
    return rc;
}

int tokenizer_spm_load(tokenizer **out, const char *path, char *err, size_t errlen)
{
    return tk_spm_model_load(out, path, err, errlen);
}
