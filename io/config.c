/* io/config.c — parsing and validating a config: JSON with line and column errors,
 * the tree walk against the schema, --set overrides, cross-field rules, loading a file.
 * The schema table, value formatting, defaults and presets are in config_keys.c; the
 * resolved config as JSON and the key listing of --help in config_out.c (shared:
 * config_impl.h). No MPI here. */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config_impl.h"
#include "safefile.h"

/* ------------------------------------------------------------------------ */
/* Parsing context and error reporting. */

/* The last applied override whose key is `key` or a section holding it: the
 * value under `key` came from there, not from the file. */
static int blame(const ctx *x, const char *key)
{
    size_t kl = strlen(key);
    for (int i = x->applied - 1; i >= 0; i--) {
        const char *o = x->overrides[i];
        const char *eq = strchr(o, '=');
        if (!eq) continue;
        size_t ol = (size_t)(eq - o);
        if (ol <= kl && strncmp(o, key, ol) == 0 && (key[ol] == 0 || key[ol] == '.')) return i;
    }
    return -1;
}

/* Formats "config 'f': [--set 'o': ]message" into err; returns -1. `blame_ovr`
 * is an override index, or -1. */
static int failv(ctx *x, int blame_ovr, const char *fmt, va_list ap)
{
    char msg[1024], pre[400] = "";
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (blame_ovr >= 0) {
        char e[200];
        cf_escape(e, sizeof e, x->overrides[blame_ovr], 120);
        snprintf(pre, sizeof pre, "--set '%s': ", e);
    }
    if (x->err && x->errlen) snprintf(x->err, x->errlen, "config '%s': %s%s", x->origin, pre, msg);
    return -1;
}

int cf_fail(ctx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(x, -1, fmt, ap);
    va_end(ap);
    return -1;
}

/* An error about the value at `key`, blamed on the override that set it if any. */
static int fail_key(ctx *x, const char *key, const char *fmt, ...) CFG_PRINTF(3, 4);
static int fail_key(ctx *x, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(x, blame(x, key), fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_ovr(ctx *x, int i, const char *fmt, ...) CFG_PRINTF(3, 4);
static int fail_ovr(ctx *x, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(x, i, fmt, ap);
    va_end(ap);
    return -1;
}

/* "vocab_size, dim, ..." — the names one level below section `path`. */
static void known_children(char *buf, size_t n, const char *path)
{
    size_t pl = strlen(path), o = 0;
    buf[0] = 0;
    for (int i = 0; i < N_KEYS; i++) {
        const char *name = SCHEMA[i].name;
        if (pl && (strncmp(name, path, pl) != 0 || name[pl] != '.')) continue;
        const char *child = pl ? name + pl + 1 : name;
        size_t cl = strcspn(child, ".");
        /* Skip names already listed (sections repeat once per key). */
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) {
            const char *prev = SCHEMA[j].name;
            if (pl && (strncmp(prev, path, pl) != 0 || prev[pl] != '.')) continue;
            const char *pc = pl ? prev + pl + 1 : prev;
            seen = strcspn(pc, ".") == cl && strncmp(pc, child, cl) == 0;
        }
        if (seen) continue;
        int w = snprintf(buf + o, n - o, "%s%.*s", o ? ", " : "", (int)cl, child);
        if (w < 0 || (size_t)w >= n - o) break;
        o += (size_t)w;
    }
}

static int fail_unknown(ctx *x, int blame_ovr, const char *key, const char *parent)
{
    char e[200], known[600];
    cf_escape(e, sizeof e, key, 120);
    known_children(known, sizeof known, parent);
    if (parent[0]) {
        const key_def *leaf = cf_find_key(parent);
        if (leaf)
            return fail_ovr(x, blame_ovr, "unknown key '%s' ('%s' is a value, not a section)", e,
                            parent);
        return fail_ovr(x, blame_ovr, "unknown key '%s' (known keys in '%s': %s)", e, parent,
                        known);
    }
    return fail_ovr(x, blame_ovr, "unknown key '%s' (known top-level keys: %s)", e, known);
}

/* ------------------------------------------------------------------------ */
/* Leaves. */

static int parse_u64_string(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20 || strspn(s, "0123456789") != n) return -1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int in_float_range(const key_def *k, double v)
{
    if (!isfinite(v)) return 0;
    if (k->lo_open ? !(v > k->lo) : !(v >= k->lo)) return 0;
    if (k->hi_open ? !(v < k->hi) : !(v <= k->hi)) return 0;
    return 1;
}

static int set_leaf(ctx *x, lethe_config *c, const key_def *k, const cJSON *v)
{
    void *p = cf_field(c, k);
    int ok = 0;
    switch (k->type) {
    case T_INT:
        if (cJSON_IsNumber(v)) {
            double d = v->valuedouble;
            ok = isfinite(d) && d == floor(d) && d >= k->lo && d <= k->hi;
            if (ok) *(int *)p = (int)d;
        }
        break;
    case T_U64:
        if (cJSON_IsNumber(v)) {
            double d = v->valuedouble;
            ok = isfinite(d) && d == floor(d) && d >= 0 && d <= EXACT_DOUBLE_MAX;
            if (ok) *(uint64_t *)p = (uint64_t)d;
        } else if (cJSON_IsString(v)) {
            uint64_t u;
            ok = parse_u64_string(v->valuestring, &u) == 0;
            if (ok) *(uint64_t *)p = u;
        }
        break;
    case T_FLOAT:
        if (cJSON_IsNumber(v)) {
            /* Range-check the value as stored, so 1e-50 for a positive float (0
             * once rounded) and 1e39 (inf) are refused. */
            float f = (float)v->valuedouble;
            ok = isfinite(v->valuedouble) && in_float_range(k, (double)f);
            if (ok) *(float *)p = f;
        }
        break;
    case T_BOOL:
        if (cJSON_IsBool(v)) {
            ok = 1;
            *(int *)p = cJSON_IsTrue(v) ? 1 : 0;
        }
        break;
    case T_STRING:
        if (cJSON_IsString(v)) {
            const char *s = v->valuestring;
            size_t l = strlen(s);
            int ctrl = 0;
            for (size_t i = 0; i < l; i++) ctrl |= (unsigned char)s[i] < 0x20;
            ok = !ctrl && l >= (size_t)k->lo && l < k->cap;
            if (ok) cf_set_string(p, k->cap, s);
        }
        break;
    case T_ENUM:
        ok = cJSON_IsString(v) && cf_choice_index(k->choices, v->valuestring) >= 0 &&
             strlen(v->valuestring) < k->cap;
        if (ok) cf_set_string(p, k->cap, v->valuestring);
        break;
    case T_CHOICE: {
        /* the name becomes its enum value here, once */
        int i = cJSON_IsString(v) ? cf_choice_index(k->choices, v->valuestring) : -1;
        ok = i >= 0;
        if (ok) *(int *)p = i;
        break;
    }
    }
    if (ok) return 0;
    char exp[256], got[200];
    cf_fmt_expected(exp, sizeof exp, k);
    cf_describe(got, sizeof got, v);
    return fail_key(x, k->name, "key '%s': expected %s, got %s", k->name, exp, got);
}

/* ------------------------------------------------------------------------ */
/* The tree walk. */

/* parent.name into out; returns 1 when it had to be cut (such a path matches no
 * key, so it is reported as unknown, cut). */
static int join(char *out, size_t n, const char *parent, const char *name)
{
    size_t pl = strlen(parent), nl = strlen(name), sep = pl ? 1 : 0;
    int cut = pl + sep + nl >= n;
    if (pl >= n) pl = n - 1;
    memcpy(out, parent, pl);
    if (sep && pl + 1 < n) out[pl++] = '.';
    if (nl > n - 1 - pl) nl = n - 1 - pl;
    memcpy(out + pl, name, nl);
    out[pl + nl] = 0;
    return cut;
}

/* Duplicate names are legal JSON that cJSON keeps silently (lookups find the
 * first), so a second "dim" would be ignored without this check. */
static int check_duplicates(ctx *x, const cJSON *obj, const char *path, int depth)
{
    for (const cJSON *a = obj->child; a; a = a->next) {
        for (const cJSON *b = obj->child; b != a; b = b->next) {
            if (strcmp(a->string, b->string) == 0) {
                char full[256], e[200];
                join(full, sizeof full, path, a->string);
                cf_escape(e, sizeof e, full, 120);
                return cf_fail(x, "key '%s' appears twice", e);
            }
        }
        /* Only the levels the schema has can hold a meaningful duplicate; deeper
         * objects are unknown keys or type errors anyway. */
        if (cJSON_IsObject(a) && depth < 4) {
            char full[256];
            join(full, sizeof full, path, a->string);
            if (check_duplicates(x, a, full, depth + 1)) return -1;
        }
    }
    return 0;
}

static int walk(ctx *x, lethe_config *c, const cJSON *obj, const char *path)
{
    for (const cJSON *item = obj->child; item; item = item->next) {
        char full[256];
        int cut = join(full, sizeof full, path, item->string);
        const key_def *k = cut ? NULL : cf_find_key(full);
        if (k) {
            if (set_leaf(x, c, k, item)) return -1;
        } else if (!cut && cf_is_section(full)) {
            if (!cJSON_IsObject(item)) {
                char got[200];
                cf_describe(got, sizeof got, item);
                return fail_key(x, full, "key '%s': expected an object (a section), got %s", full,
                                got);
            }
            if (walk(x, c, item, full)) return -1;
        } else {
            return fail_unknown(x, blame(x, full), full, path);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Cross-field rules. */

static int check_rules(ctx *x, const lethe_config *c)
{
    const lethe_model_config *m = &c->model;
    char a[32], b[32];
    if (m->n_heads % m->n_kv_heads != 0)
        return cf_fail(x, "model.n_heads = %d must be a multiple of model.n_kv_heads = %d",
                       m->n_heads, m->n_kv_heads);
    if (m->dim % m->n_heads != 0)
        return cf_fail(x, "model.dim = %d must be a multiple of model.n_heads = %d", m->dim,
                       m->n_heads);
    if ((m->dim / m->n_heads) % 2 != 0)
        return cf_fail(x,
                       "head dimension model.dim / model.n_heads = %d / %d = %d must be even (RoPE "
                       "rotates pairs)",
                       m->dim, m->n_heads, m->dim / m->n_heads);
    const lethe_rope_scaling *r = &m->rope;
    if (r->type == ROPE_LLAMA3 && !(r->high_freq_factor > r->low_freq_factor)) {
        cf_fmt_double(a, sizeof a, cf_float_to_short_double(r->low_freq_factor));
        cf_fmt_double(b, sizeof b, cf_float_to_short_double(r->high_freq_factor));
        return cf_fail(x, "model.rope_high_freq_factor = %s must be > model.rope_low_freq_factor "
                          "= %s (llama3 RoPE blends between them)", b, a);
    }
    /* with a dataset, T comes from the file and the job checks it against the model */
    if (!strcmp(c->data.source, "synthetic-markov") && c->train.seq_len > m->max_seq_len)
        return cf_fail(x, "train.seq_len = %d must be <= model.max_seq_len = %d", c->train.seq_len,
                       m->max_seq_len);
    if (!strcmp(c->data.source, "synthetic-markov") && c->data.min_len > c->train.seq_len)
        return cf_fail(x, "data.min_len = %d must be <= train.seq_len = %d", c->data.min_len,
                       c->train.seq_len);
    if (c->data.prompt_len >= c->data.min_len)
        return cf_fail(x,
                       "data.prompt_len = %d must be < data.min_len = %d (every sequence needs a "
                       "token past the prompt)",
                       c->data.prompt_len, c->data.min_len);
    long long per = (long long)c->layout.dp * c->layout.micro_batches;
    if (c->train.batch_size % per != 0)
        return cf_fail(
            x,
            "train.batch_size = %d must be a multiple of layout.dp * layout.micro_batches "
            "= %d * %d = %lld",
            c->train.batch_size, c->layout.dp, c->layout.micro_batches, per);
    if (c->optim.min_lr > c->optim.lr) {
        cf_fmt_double(a, sizeof a, cf_float_to_short_double(c->optim.min_lr));
        cf_fmt_double(b, sizeof b, cf_float_to_short_double(c->optim.lr));
        return cf_fail(x, "optim.min_lr = %s must be <= optim.lr = %s", a, b);
    }
    if (c->optim.warmup_steps > c->train.steps)
        return cf_fail(x, "optim.warmup_steps = %d must be <= train.steps = %d",
                       c->optim.warmup_steps, c->train.steps);
    if (c->data.branching > m->vocab_size)
        return cf_fail(x, "data.branching = %d must be <= model.vocab_size = %d", c->data.branching,
                       m->vocab_size);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Overrides. */

/* The value of "key=value": JSON if it parses, else the bare text as a string.
 * Two exceptions keep the command line natural: an integer literal too long for
 * a double to hold exactly stays a string (so --set train.seed=18446744073709551615
 * reaches the uint64 parser intact), and a string key takes any scalar as its
 * text (--set output.dir=2024 is the folder "2024"). */
static cJSON *override_value(const char *text, const key_def *k)
{
    size_t n = strlen(text);
    if (n > 0 && strspn(text, "0123456789") == n && strtod(text, NULL) > EXACT_DOUBLE_MAX)
        return cJSON_CreateString(text);
    cJSON *v = cJSON_ParseWithLengthOpts(text, n + 1, NULL, 1);
    if (v && k && (k->type == T_STRING || k->type == T_ENUM || k->type == T_CHOICE) &&
        (cJSON_IsNumber(v) || cJSON_IsBool(v) || cJSON_IsNull(v))) {
        cJSON_Delete(v);
        v = NULL;
    }
    if (!v) v = cJSON_CreateString(text);
    return v;
}

static int apply_override(ctx *x, cJSON *root, int i)
{
    const char *o = x->overrides[i];
    const char *eq = o ? strchr(o, '=') : NULL;
    if (!o || !eq) return fail_ovr(x, i, "expected key=value (for example model.dim=128)");
    size_t kl = (size_t)(eq - o);
    char key[256];
    if (kl == 0 || kl >= sizeof key) return fail_ovr(x, i, "expected key=value with a dotted key");
    memcpy(key, o, kl);
    key[kl] = 0;

    /* Check every prefix against the schema before touching the tree, so the
     * message names the first unknown component. */
    char path[256] = "";
    cJSON *node = root;
    const char *comp = key;
    for (;;) {
        size_t cl = strcspn(comp, ".");
        char name[256], parent[256], e[200];
        memcpy(name, comp, cl);
        name[cl] = 0;
        if (cl == 0) {
            cf_escape(e, sizeof e, key, 120);
            return fail_ovr(x, i, "key '%s' has an empty component", e);
        }
        snprintf(parent, sizeof parent, "%s", path);
        join(path, sizeof path, parent, name);
        int last = comp[cl] == 0;
        const key_def *k = cf_find_key(path);
        if (!k && !cf_is_section(path)) return fail_unknown(x, i, last ? key : path, parent);
        if (k && !last) return fail_unknown(x, i, key, path);
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, name);
        if (last) {
            cJSON *v = override_value(eq + 1, k);
            if (!v) return fail_ovr(x, i, "out of memory");
            int ok = child ? cJSON_ReplaceItemInObjectCaseSensitive(node, name, v)
                           : cJSON_AddItemToObject(node, name, v);
            if (!ok) {
                cJSON_Delete(v);
                return fail_ovr(x, i, "out of memory");
            }
            return 0;
        }
        if (!child) {
            child = cJSON_AddObjectToObject(node, name);
            if (!child) return fail_ovr(x, i, "out of memory");
        } else if (!cJSON_IsObject(child)) {
            char got[200];
            cf_describe(got, sizeof got, child);
            return fail_key(x, path, "key '%s': expected an object (a section), got %s", path, got);
        }
        node = child;
        comp += cl + 1;
    }
}

/* ------------------------------------------------------------------------ */
/* Parse and load. */

int config_parse_base(lethe_config *c, const char *text, const char *origin, char **overrides,
                      int n_overrides, const char *base, const char *base_origin, int from_init,
                      char *err, size_t errlen)
{
    ctx x = {.overrides = overrides, .n_overrides = n_overrides, .err = err, .errlen = errlen};
    cf_escape(x.origin, sizeof x.origin, origin ? origin : "(text)", 200);
    if (err && errlen) err[0] = 0;
    if (!text) return cf_fail(&x, "no text");
    /* A UTF-8 byte-order mark is harmless; cJSON does not skip it. */
    if ((unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        text += 3;
    size_t len = strlen(text);
    if (strspn(text, " \t\r\n") == len)
        return cf_fail(&x, "file is empty (expected a JSON object)");

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    if (!root) return cf_parse_error(&x, text, len, end ? (size_t)(end - text) : 0);

    lethe_config tmp;
    config_defaults(&tmp);
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        char got[200];
        cf_describe(got, sizeof got, root);
        rc = cf_fail(&x, "the top level must be a JSON object, got %s", got);
    }
    if (!rc) rc = check_duplicates(&x, root, "", 0);
    for (int i = 0; i < n_overrides && !rc; i++) {
        x.applied = i + 1;
        rc = apply_override(&x, root, i);
    }
    if (!rc) rc = cf_apply_preset(&x, root);
    if (!rc && base) rc = cf_carry_base(&x, root, base, base_origin ? base_origin : "the base");
    if (!rc && !base && from_init) rc = cf_carry_init_checkpoint(&x, root);
    if (!rc) rc = walk(&x, &tmp, root, "");
    if (!rc) rc = check_rules(&x, &tmp);
    cJSON_Delete(root);
    if (rc) return -1;
    *c = tmp;
    return 0;
}

int config_load_base(lethe_config *c, const char *path, char **overrides, int n_overrides,
                     const char *base, const char *base_origin, int from_init, char *err,
                     size_t errlen)
{
    ctx x = {.err = err, .errlen = errlen};
    if (!path && base) /* the model comes with the weights, the rest is defaults */
        return config_parse_base(c, "{}", "(no config file)", overrides, n_overrides, base,
                                 base_origin, 0, err, errlen);
    if (!path || !path[0] || strcmp(path, "-") == 0) {
        snprintf(x.origin, sizeof x.origin, "%s", path ? path : "(none)");
        return cf_fail(&x, "expected the path of a JSON config file");
    }
    cf_escape(x.origin, sizeof x.origin, path, 200);

    char se[600];
    FILE *f = safe_open_stream(path, "config", se, sizeof se);
    if (!f) return cf_fail(&x, "%s", strstr(se, "': ") ? strstr(se, "': ") + 3 : se);
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return cf_fail(&x, "cannot stat: %s", strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return cf_fail(&x, "is a directory, expected a JSON file");
    }
    if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > CONFIG_MAX_BYTES) {
        fclose(f);
        return cf_fail(&x, "file is %llu bytes, more than the %u MiB a config may have",
                       (unsigned long long)st.st_size, CONFIG_MAX_BYTES >> 20);
    }
    /* Read in chunks rather than trusting st_size: pipes (<(...)) have none. */
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return cf_fail(&x, "out of memory");
    }
    for (;;) {
        if (n + 1 >= cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return cf_fail(&x, "out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > CONFIG_MAX_BYTES) {
            free(buf);
            fclose(f);
            return cf_fail(&x, "file is more than the %u MiB a config may have",
                           CONFIG_MAX_BYTES >> 20);
        }
        if (r == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return cf_fail(&x, "read failed: %s", strerror(e));
    }
    if (fclose(f) != 0) {
        free(buf);
        return cf_fail(&x, "close failed: %s", strerror(errno));
    }
    buf[n] = 0;
    const char *nul = memchr(buf, 0, n);
    if (nul) {
        int line, col;
        cf_line_col(buf, (size_t)(nul - buf), &line, &col);
        free(buf);
        return cf_fail(&x, "NUL byte at line %d, column %d (not a JSON text file)", line, col);
    }
    int rc = config_parse_base(c, buf, path, overrides, n_overrides, base, base_origin, from_init,
                               err, errlen);
    free(buf);
    return rc;
}
