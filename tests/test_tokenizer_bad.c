/* tests/test_tokenizer_bad.c — the files of model directories, good and bad, made here
 * byte by byte: a tiny SentencePiece ModelProto (written by a protobuf writer of this
 * file, independent of the reader) and tiny tokenizer.json files. The good ones encode
 * to ids derived by hand; each bad one (a truncated protobuf, a Unigram model, an
 * unsupported normalizer, a missing byte piece, a tokenizer.json of another model type,
 * without merges, with a merge outside the vocabulary, with another pre-tokenizer, not
 * JSON; a directory without tokenizer files or whose configuration names an absent
 * piece) fails with one line that names the file and what is wrong. The model cut at
 * every length is refused; 600 one-bit changes of it are refused or encode inside the
 * vocabulary.
 *
 *   test_tokenizer_bad WORKDIR */
#include "io/text/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "check.h"

CHECK_COUNTERS;

static char dir[1024];

/* ---- a protobuf writer ------------------------------------------------------------------- */

typedef struct {
    unsigned char b[8192];
    size_t n;
} buf;

static void put_varint(buf *o, uint64_t v)
{
    do {
        o->b[o->n++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void put_int(buf *o, int field, int64_t v)
{
    put_varint(o, (uint64_t)field << 3);
    put_varint(o, (uint64_t)v);
}

static void put_bytes(buf *o, int field, const void *d, size_t n)
{
    put_varint(o, (uint64_t)field << 3 | 2);
    put_varint(o, n);
    memcpy(o->b + o->n, d, n);
    o->n += n;
}

static void put_piece(buf *o, const char *p, float score, int type)
{
    buf m = {.n = 0};
    put_bytes(&m, 1, p, strlen(p));
    uint32_t u;
    memcpy(&u, &score, 4);
    put_varint(&m, 2 << 3 | 5);
    for (int i = 0; i < 4; i++) m.b[m.n++] = (unsigned char)(u >> (8 * i));
    if (type != 1) put_int(&m, 3, type);
    put_bytes(o, 1, m.b, m.n);
}

/* <unk> <s> </s> <0x00>..<0xFF> ▁ a b ▁a ab ▁ab: ids 0 1 2, 3..258, 259..264 */
static size_t spm_model(buf *o, int model_type, const char *norm, int skip_byte)
{
    o->n = 0;
    put_piece(o, "<unk>", 0, 2);
    put_piece(o, "<s>", 0, 3);
    put_piece(o, "</s>", 0, 3);
    for (int b = 0; b < 256; b++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        put_piece(o, b == skip_byte ? "<0xZZ>" : p, 0, 6);
    }
    /* ▁ab outranks ab outranks ▁a: "▁ab" becomes ▁ + ab, then ▁ab */
    const char *pieces[6] = {"\xE2\x96\x81",
                             "a",
                             "b",
                             "\xE2\x96\x81"
                             "a",
                             "ab",
                             "\xE2\x96\x81"
                             "ab"};
    const float scores[6] = {-10, -11, -12, -3, -2, -1};
    for (int i = 0; i < 6; i++) put_piece(o, pieces[i], scores[i], 1);
    buf t = {.n = 0};
    put_int(&t, 3, model_type);
    put_int(&t, 35, 1);
    put_int(&t, 43, -1); /* pad_id -1: a 10-byte varint */
    put_bytes(o, 2, t.b, t.n);
    buf nz = {.n = 0};
    put_bytes(&nz, 1, norm, strlen(norm));
    put_int(&nz, 4, 0);
    put_bytes(o, 3, nz.b, nz.n);
    return o->n;
}

static const char *write_file(const char *name, const void *d, size_t n)
{
    static char path[2][1200];
    static int k;
    char *p = path[k ^= 1];
    snprintf(p, 1200, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(d, 1, n, f) != n) CHECK(0, "cannot write %s", p);
    if (f) fclose(f);
    return p;
}

static void expect_ids(const tokenizer *t, const char *text, const int32_t *want, int n)
{
    tok_ids v = {0};
    int same = tokenizer_encode(t, text, strlen(text), &v) == 0 && v.n == n;
    for (int i = 0; same && i < n; i++) same = v.ids[i] == want[i];
    CHECK(same, "%s: encode(\"%s\") gave %d ids (first %d), expected %d", tokenizer_name(t), text,
          v.n, v.n ? v.ids[0] : -1, n);
    tok_ids_free(&v);
}

/* A load that must fail with err naming the file (or directory) and saying what. */
static void expect_fail(int rc, tokenizer *t, const char *err, const char *where, const char *what)
{
    CHECK(rc != 0 && !t, "loading '%s' succeeded, expected \"%s\"", where, what);
    printf("lethe: %s\n", err); /* as the jobs print it */
    CHECK(strstr(err, where) && strstr(err, what) && !strchr(err, '\n'),
          "error \"%s\" does not name '%s' and \"%s\" on one line", err, where, what);
    tokenizer_free(t);
}

static void test_model(void)
{
    buf o;
    char err[1024] = "";
    tokenizer *t = NULL;
    size_t n = spm_model(&o, 2, "identity", -1);
    const char *p = write_file("tokenizer.model", o.b, n);
    CHECK(tokenizer_spm_load(&t, p, err, sizeof err) == 0, "good model: %s", err);
    if (t) {
        /* "ab ab" -> ▁ab ▁ab; "ba" -> ▁ b a; "é" -> ▁ <0xC3> <0xA9> */
        expect_ids(t, "ab ab", (int32_t[]){264, 264}, 2);
        expect_ids(t, "ba", (int32_t[]){259, 261, 260}, 3);
        expect_ids(t, "\xC3\xA9", (int32_t[]){259, 3 + 0xC3, 3 + 0xA9}, 3);
        CHECK(tokenizer_bos_id(t) == 1 && tokenizer_eos_id(t) == 2 && tokenizer_pad_id(t) == 2,
              "bos/eos/pad %d %d %d", tokenizer_bos_id(t), tokenizer_eos_id(t),
              tokenizer_pad_id(t));
        CHECK(tokenizer_token_id(t, "\xE2\x96\x81"
                                    "ab") == 264,
              "id of ▁ab");
        int32_t ids[4] = {1, 264, 259, 3 + 'x'};
        char *d = tokenizer_decode(t, ids, 4);
        CHECK(d && !strcmp(d, "ab x"), "decode gave \"%s\"", d ? d : "(null)");
        free(d);
    }
    tokenizer_free(t);
    /* truncated anywhere inside: never a crash, always the one line */
    size_t cuts[4] = {1, 5, n / 2, n - 3};
    for (int i = 0; i < 4; i++) {
        t = NULL;
        p = write_file("truncated.model", o.b, cuts[i]);
        expect_fail(tokenizer_spm_load(&t, p, err, sizeof err), t, err, p,
                    "the protobuf is truncated or malformed");
    }
    /* every cut, and one-bit changes: a refusal on one line or a model whose
     * ids stay inside the vocabulary, never a crash (the ASan build runs this too) */
    int refused = 0, changed_ok = 0;
    for (size_t cut = 0; cut < n; cut++) {
        t = NULL;
        p = write_file("cut.model", o.b, cut);
        int rc = tokenizer_spm_load(&t, p, err, sizeof err);
        refused += rc != 0 && strstr(err, p) && !strchr(err, '\n');
        tokenizer_free(t);
    }
    CHECK(refused == (int)n, "%d of %zu cut models refused with one line", refused, n);
    unsigned seed = 12345;
    for (int k = 0; k < 600; k++) {
        buf m = o;
        seed = seed * 1103515245u + 12345u;
        m.b[(seed >> 8) % n] ^= (unsigned char)(1u << ((seed >> 4) & 7));
        t = NULL;
        p = write_file("flip.model", m.b, n);
        if (tokenizer_spm_load(&t, p, err, sizeof err) == 0) {
            tok_ids v = {0};
            const char *text = "ab ba \xC3\xA9 <s> x";
            int in = tokenizer_encode(t, text, strlen(text), &v) == 0;
            for (int i = 0; in && i < v.n; i++)
                in = v.ids[i] >= 0 && v.ids[i] < tokenizer_vocab_size(t);
            changed_ok += in;
            CHECK(in, "a changed model that loads encodes outside its vocabulary");
            tok_ids_free(&v);
        } else {
            CHECK(strstr(err, p) && !strchr(err, '\n'), "changed model: \"%s\"", err);
        }
        tokenizer_free(t);
    }
    printf("%zu cut models refused; 600 one-bit changes: %d load and encode inside the "
           "vocabulary, the rest refused with one line\n",
           n, changed_ok);
    n = spm_model(&o, 1, "identity", -1);
    p = write_file("unigram.model", o.b, n);
    t = NULL;
    expect_fail(tokenizer_spm_load(&t, p, err, sizeof err), t, err, p,
                "a SentencePiece Unigram model; only BPE is supported");
    n = spm_model(&o, 2, "nmt_nfkc", -1);
    p = write_file("nfkc.model", o.b, n);
    t = NULL;
    expect_fail(tokenizer_spm_load(&t, p, err, sizeof err), t, err, p,
                "normalizer 'nmt_nfkc' is not supported");
    n = spm_model(&o, 2, "identity", 0x41);
    p = write_file("nobyte.model", o.b, n);
    t = NULL;
    expect_fail(tokenizer_spm_load(&t, p, err, sizeof err), t, err, p, "is not of the form <0xHH>");
}

static const char *json_file(const char *name, const char *model, const char *extra)
{
    static char text[4096];
    snprintf(text, sizeof text,
             "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
             "{\"id\":1,\"content\":\"<s>\",\"special\":true},"
             "{\"id\":2,\"content\":\"</s>\",\"special\":true}],%s\"model\":%s}",
             extra, model);
    return write_file(name, text, strlen(text));
}

static void test_json(void)
{
    char err[1024] = "", model[2048];
    tokenizer *t = NULL;
    const char *spm_pre = "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"Metaspace\","
                          "\"replacement\":\"\xE2\x96\x81\",\"prepend_scheme\":\"always\"},";
    const char *vocab = "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\xE2\x96\x81\":3,"
                        "\"a\":4,\"b\":5,\"\xE2\x96\x81"
                        "a\":6,\"ab\":7}";
    snprintf(model, sizeof model,
             "{\"type\":\"BPE\",\"unk_token\":\"<unk>\",%s,\"merges\":"
             "[\"a b\",[\"\xE2\x96\x81\",\"a\"]]}",
             vocab);
    const char *p = json_file("good.json", model, spm_pre);
    CHECK(tokenizer_hf_json_load(&t, p, err, sizeof err) == 0, "good json: %s", err);
    if (t) {
        /* "ab a" -> ▁ ab ▁a (a b ranks first); "c" is unknown, no byte fallback: <unk>;
         * "<s>" in the text is the added piece */
        expect_ids(t, "ab a", (int32_t[]){3, 7, 6}, 3);
        expect_ids(t, "cc<s>a", (int32_t[]){3, 0, 1, 6}, 4);
    }
    tokenizer_free(t);
    t = NULL;
    p = json_file("unigram.json", "{\"type\":\"Unigram\",\"vocab\":[]}", "");
    expect_fail(tokenizer_hf_json_load(&t, p, err, sizeof err), t, err, p,
                "model.type 'Unigram' is not supported (BPE only)");
    snprintf(model, sizeof model, "{\"type\":\"BPE\",%s}", vocab);
    p = json_file("nomerges.json", model, spm_pre);
    expect_fail(tokenizer_hf_json_load(&t, p, err, sizeof err), t, err, p,
                "model.merges is missing");
    snprintf(model, sizeof model, "{\"type\":\"BPE\",%s,\"merges\":[\"a c\"]}", vocab);
    p = json_file("badmerge.json", model, spm_pre);
    expect_fail(tokenizer_hf_json_load(&t, p, err, sizeof err), t, err, p,
                "merge 0 'a c': 'c' is not in the vocabulary");
    snprintf(model, sizeof model, "{\"type\":\"BPE\",%s,\"merges\":[]}", vocab);
    p = json_file("nfkc.json", model, "\"normalizer\":{\"type\":\"NFKC\"},");
    expect_fail(tokenizer_hf_json_load(&t, p, err, sizeof err), t, err, p,
                "normalizer 'NFKC' is not supported");
    p = json_file("gpt2pre.json", model,
                  "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"use_regex\":true},");
    expect_fail(tokenizer_hf_json_load(&t, p, err, sizeof err), t, err, p,
                "pre_tokenizer is not Llama-3's");
    const char *cut = "{\"model\": {\"type\": \"BP";
    p = write_file("cut.json", cut, strlen(cut));
    expect_fail(tokenizer_hf_json_load(&t, p, err, sizeof err), t, err, p, "not a JSON object");
}

static void test_dir(void)
{
    char err[1024] = "", sub[1200];
    tokenizer *t = NULL;
    snprintf(sub, sizeof sub, "%s/empty", dir);
    mkdir(sub, 0755);
    expect_fail(tokenizer_load_dir(&t, sub, err, sizeof err), t, err, sub,
                "neither tokenizer.json nor tokenizer.model is there");
    snprintf(sub, sizeof sub, "%s/cfg", dir);
    mkdir(sub, 0755);
    buf o;
    size_t n = spm_model(&o, 2, "identity", -1);
    write_file("cfg/tokenizer.model", o.b, n);
    const char *cfg = "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"<nope>\"}";
    const char *p = write_file("cfg/tokenizer_config.json", cfg, strlen(cfg));
    expect_fail(tokenizer_load_dir(&t, sub, err, sizeof err), t, err, p,
                "eos_token '<nope>' is not in the vocabulary");
    /* special_tokens_map.json is read when tokenizer_config.json names nothing */
    cfg = "{\"pad_token\": \"<unk>\"}";
    write_file("cfg/tokenizer_config.json", cfg, strlen(cfg));
    cfg = "{\"eos_token\": \"<s>\", \"pad_token\": \"</s>\"}";
    write_file("cfg/special_tokens_map.json", cfg, strlen(cfg));
    CHECK(tokenizer_load_dir(&t, sub, err, sizeof err) == 0, "dir with configs: %s", err);
    if (t)
        CHECK(tokenizer_eos_id(t) == 1 && tokenizer_pad_id(t) == 0 && tokenizer_bos_id(t) == 1,
              "eos/pad/bos %d %d %d, expected 1 0 1 (config first, then the map)",
              tokenizer_eos_id(t), tokenizer_pad_id(t), tokenizer_bos_id(t));
    tokenizer_free(t);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_tokenizer_bad WORKDIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s/tokenizer-bad", argv[1]);
    mkdir(dir, 0755);
    test_model();
    test_json();
    test_dir();
    if (failures) {
        fprintf(stderr, "%d of %d check(s) failed\n", failures, checks);
        return 1;
    }
    printf("test_tokenizer_bad: all %d checks passed\n", checks);
    return 0;
}
