/* io/config_out.c — the resolved config as JSON (config_to_json, config_write, written
 * through a temporary file), the key listing of --help, and the first key where two
 * JSON configs differ (config_json_diff: a study's changed job, ranks that disagree). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_impl.h"
#include "safefile.h"

/* ------------------------------------------------------------------------ */
/* Output. */

char *config_to_json(const lethe_config *c)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &SCHEMA[i];
        cJSON *node = root;
        const char *comp = k->name;
        char name[64];
        size_t cl;
        /* Sections are created on first use, in table order. */
        while (comp[cl = strcspn(comp, ".")] == '.') {
            memcpy(name, comp, cl);
            name[cl] = 0;
            cJSON *child = cJSON_GetObjectItemCaseSensitive(node, name);
            if (!child) child = cJSON_AddObjectToObject(node, name);
            if (!child) goto oom;
            node = child;
            comp += cl + 1;
        }
        const void *p = cf_cfield(c, k);
        cJSON *v = NULL;
        switch (k->type) {
        case T_INT: v = cJSON_CreateNumber(*(const int *)p); break;
        case T_U64: {
            /* Raw digits: cJSON prints doubles with 15 significant digits when
             * that is "close enough", which would change a seed above 1e15. */
            uint64_t u = *(const uint64_t *)p;
            char s[32];
            snprintf(s, sizeof s, "%llu", (unsigned long long)u);
            v = u <= (uint64_t)EXACT_DOUBLE_MAX ? cJSON_CreateRaw(s) : cJSON_CreateString(s);
            break;
        }
        case T_FLOAT: v = cJSON_CreateNumber(cf_float_to_short_double(*(const float *)p)); break;
        case T_BOOL: v = cJSON_CreateBool(*(const int *)p); break;
        case T_STRING:
        case T_ENUM: {
            /* Bounded copy: the struct's buffer may be full without a NUL. */
            char s[1024];
            size_t l = strnlen(p, k->cap);
            if (l >= sizeof s) l = sizeof s - 1;
            memcpy(s, p, l);
            s[l] = 0;
            v = cJSON_CreateString(s);
            break;
        }
        case T_CHOICE: {
            char s[64];
            cf_choice_name(s, sizeof s, k->choices, *(const int *)p);
            v = cJSON_CreateString(s);
            break;
        }
        }
        if (!v) goto oom;
        if (!cJSON_AddItemToObject(node, comp, v)) {
            cJSON_Delete(v);
            goto oom;
        }
    }
    char *out = cJSON_Print(root);
    cJSON_Delete(root);
    return out;
oom:
    cJSON_Delete(root);
    return NULL;
}

int config_write(const lethe_config *c, const char *path, char *err, size_t errlen)
{
    if (err && errlen) err[0] = 0;
    char *json = config_to_json(c);
    if (!json) {
        if (err) snprintf(err, errlen, "config '%s': out of memory while formatting", path);
        return -1;
    }
    safe_out w;
    char e[4600] = "";
    int rc = safe_create(&w, path, e, sizeof e);
    if (!rc && (fputs(json, w.f) == EOF || fputc('\n', w.f) == EOF)) {
        snprintf(e, sizeof e, "cannot write '%s': %s", w.tmp, strerror(errno));
        safe_abort(&w);
        rc = -1;
    } else if (!rc) {
        rc = safe_finish(&w, e, sizeof e);
    }
    free(json);
    if (rc && err) snprintf(err, errlen, "config: %s", e);
    return rc;
}

void config_print_keys(void *file)
{
    FILE *f = file;
    lethe_config d;
    config_defaults(&d);
    int wk = 3, wt = 4, wd = 7, wr = 14;
    char def[600], range[128];
    for (int i = 0; i < N_KEYS; i++) {
        int l;
        if ((l = (int)strlen(SCHEMA[i].name)) > wk) wk = l;
        if ((l = (int)strlen(cf_type_name(SCHEMA[i].type))) > wt) wt = l;
        cf_fmt_value(def, sizeof def, &d, &SCHEMA[i]);
        if ((l = (int)strlen(def)) > wd) wd = l;
        cf_fmt_range(range, sizeof range, &SCHEMA[i]);
        if ((l = (int)strlen(range)) > wr) wr = l;
    }
    fprintf(f, "%-*s  %-*s  %-*s  %-*s  %s\n", wk, "key", wt, "type", wd, "default", wr,
            "range/choices", "description");
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &SCHEMA[i];
        cf_fmt_value(def, sizeof def, &d, k);
        cf_fmt_range(range, sizeof range, k);
        fprintf(f, "%-*s  %-*s  %-*s  %-*s  %s\n", wk, k->name, wt, cf_type_name(k->type), wd, def,
                wr, range, k->desc);
    }
}

/* ------------------------------------------------------------------------ */
/* Differences. */

void config_shown(const char *v, char *buf, size_t len)
{
    size_t o = 0;
    for (; *v && o + 4 < len; v++) buf[o++] = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
    if (*v) buf[o++] = '.', buf[o++] = '.', buf[o++] = '.';
    buf[o] = 0;
}

/* The first dotted key where old and new differ (new's order, then keys only in old),
 * with both values printed (or "(absent)"): 1 when they differ, 0 when equal. */
static int first_diff(const cJSON *o, const cJSON *n, const char *prefix, char *key, size_t klen,
                      char *ov, char *nv, size_t vlen)
{
    if (cJSON_IsObject(o) && cJSON_IsObject(n)) {
        for (int pass = 0; pass < 2; pass++)
            for (const cJSON *i = (pass ? o : n)->child; i; i = i->next) {
                const cJSON *a = pass ? i : cJSON_GetObjectItemCaseSensitive(o, i->string);
                const cJSON *b = pass ? cJSON_GetObjectItemCaseSensitive(n, i->string) : i;
                if (pass && b) continue; /* seen in the first pass */
                char k[300];
                snprintf(k, sizeof k, "%s%s%s", prefix, *prefix ? "." : "", i->string);
                if (first_diff(a, b, k, key, klen, ov, nv, vlen)) return 1;
            }
        return 0;
    }
    if (o && n && cJSON_Compare(o, n, 1)) return 0;
    char *a = o ? cJSON_PrintUnformatted(o) : NULL, *b = n ? cJSON_PrintUnformatted(n) : NULL;
    snprintf(key, klen, "%s", *prefix ? prefix : "(the whole file)");
    config_shown(a ? a : "(absent)", ov, vlen);
    config_shown(b ? b : "(absent)", nv, vlen);
    free(a), free(b);
    return 1;
}

int config_json_diff(const char *a_text, const char *b_text, char *key, size_t klen, char *av,
                     char *bv, size_t vlen)
{
    cJSON *a = cJSON_Parse(a_text), *b = cJSON_Parse(b_text);
    int rc;
    if (!a || !b) {
        snprintf(key, klen, "(the whole file)");
        config_shown(a ? "(JSON)" : "(not valid JSON)", av, vlen);
        config_shown(b ? "(JSON)" : "(not valid JSON)", bv, vlen);
        rc = 1;
    } else {
        rc = first_diff(a, b, "", key, klen, av, bv, vlen);
    }
    cJSON_Delete(a), cJSON_Delete(b);
    return rc;
}
