/* io/text/tokenizer_spm.c — SentencePiece BPE (Llama-2) however it was read (a .model:
 * tokenizer_spm_model.c; a tokenizer.json: tokenizer_hf_json.c): the checks that make
 * its pieces usable (byte pieces, the word split), encoding (spaces -> '▁', the '▁'
 * prefix, the merge loop of tokenizer_gpt2.c, byte fallback) and decoding of a piece. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../mpi/fatal.h"
#include "tokenizer_impl.h"

static const char META[] = "\xE2\x96\x81"; /* U+2581 '▁', SentencePiece's space */

/* "<0xHH>" -> HH, else -1 */
static int byte_piece_value(const char *p)
{
    unsigned v;
    char end;
    if (strlen(p) != 6 || strncmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    if (sscanf(p + 3, "%2x%c", &v, &end) != 2 || end != '>') return -1;
    return (int)v;
}

int tk_spm_setup(tokenizer *t, const char *origin, char *err, size_t errlen)
{
    t->spm_words = 1;
    for (int i = 0; i < t->vocab_size; i++) {
        const char *p = t->tokens[i];
        if (t->ptype[i] == TK_BYTE) {
            int b = byte_piece_value(p);
            if (b < 0)
                return lethe_errf(err, errlen, "%s: byte piece %d '%s' is not of the form <0xHH>",
                                  origin, i, lethe_shown(p, (char[80]){0}, 80, 0));
            t->byte_id[b] = i;
        }
        if (t->ptype[i] != TK_NORMAL && t->ptype[i] != TK_UNUSED) continue;
        for (const char *m = strstr(p + 1, META); m; m = strstr(m + 1, META))
            if (m - p < 3 || memcmp(m - 3, META, 3) != 0) t->spm_words = 0;
    }
    for (int b = 0; t->byte_fallback && b < 256; b++)
        if (t->byte_id[b] < 0)
            return lethe_errf(err, errlen,
                              "%s: byte fallback is on but the byte piece <0x%02X> is missing",
                              origin, b);
    if (!t->byte_fallback && t->unk_id < 0)
        return lethe_errf(err, errlen, "%s: no byte fallback and no unknown piece", origin);
    return 0;
}

static int usable(const tokenizer *t, int id)
{
    return id >= 0 &&
           (t->ptype[id] == TK_NORMAL || t->ptype[id] == TK_ADDED || t->ptype[id] == TK_UNUSED);
}

/* BPE of one word of normalized text (or of the whole segment when pieces may span
 * words). */
static int spm_word(const tokenizer *t, const char *w, size_t wn, tk_bpe_buf *b, tok_ids *out)
{
    size_t m = tk_bpe_merge(t, w, wn, b);
    const size_t *off = b->off, *len = b->len;
    int prev_unk = 0;
    for (size_t i = 0; i < m; i++) {
        int id = tk_hm_get(&t->vocab, w + off[i], len[i]);
        if (usable(t, id)) {
            if (tk_push(out, id)) return -1;
            prev_unk = 0;
        } else if (t->byte_fallback) {
            for (size_t k = 0; k < len[i]; k++)
                if (tk_push(out, t->byte_id[(unsigned char)w[off[i] + k]])) return -1;
        } else if (!prev_unk) { /* a run of unknown characters is one <unk> */
            if (tk_push(out, t->unk_id)) return -1;
            prev_unk = 1;
        }
    }
    return 0;
}

/* One segment of text free of added pieces: normalized, then BPE word by word. */
static int spm_segment(const tokenizer *t, const char *s, size_t n, int prefix, tok_ids *out)
{
    if (!n && prefix != 3) return 0;
    char *w = malloc(3 * n + 3); /* every byte may become '▁' */
    tk_bpe_buf b = {0};
    int rc = -1;
    if (w && !tk_bpe_reserve(&b, 3 * n + 3)) {
        size_t wn = 0;
        if (prefix) memcpy(w, META, 3), wn = 3;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ')
                memcpy(w + wn, META, 3), wn += 3;
            else
                w[wn++] = s[i];
        }
        rc = 0;
        size_t a = 0;
        /* words start at a '▁' that follows another character */
        for (size_t i = 3; t->spm_words && i + 3 <= wn && rc == 0; i++)
            if (memcmp(w + i, META, 3) == 0 && memcmp(w + i - 3, META, 3) != 0) {
                rc = spm_word(t, w + a, i - a, &b, out);
                a = i;
            }
        if (rc == 0) rc = spm_word(t, w + a, wn - a, &b, out);
    }
    free(w);
    tk_bpe_release(&b);
    return rc;
}

/* Whether the segment starting at seg gets the '▁' prefix: every one (1), the text's
 * first (2: Hugging Face's Metaspace "first", nothing when the text starts with an added
 * piece), or the text's start whatever follows (3: SentencePiece, which prefixes the
 * whole text before it finds user-defined pieces). */
static int prefix_of(const tokenizer *t, size_t seg, size_t n)
{
    if (t->add_prefix == 1) return 1;
    if (seg != 0 || n == 0) return 0;
    return t->add_prefix;
}

int tk_spm_segment(const tokenizer *t, const char *text, size_t n, size_t a, size_t b, tok_ids *out)
{
    return spm_segment(t, text + a, b - a, prefix_of(t, a, n), out);
}

size_t tk_spm_decode_piece(const tokenizer *t, int id, int first, char *o)
{
    const char *p = t->tokens[id];
    if (t->ptype[id] == TK_BYTE) {
        o[0] = (char)byte_piece_value(p);
        return 1;
    }
    if (t->ptype[id] == TK_UNKNOWN) {
        memcpy(o, " \xE2\x81\x87 ", 5); /* SentencePiece shows <unk> as " ⁇ " */
        return 5;
    }
    size_t k = 0;
    for (size_t i = 0; p[i];) {
        if (t->ptype[id] != TK_ADDED && strncmp(p + i, META, 3) == 0) {
            if (!(first && k == 0 && i == 0 && t->add_prefix)) o[k++] = ' ';
            i += 3;
        } else {
            o[k++] = p[i++];
        }
    }
    return k;
}
