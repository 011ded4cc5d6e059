/* io/config_carry.c — a model that comes with the weights: the "model" and "hf" sections of
 * a base config (a checkpoint's stored config, or what convert reads from a Hugging Face
 * config.json) carried into a job's config before validation. A key the job's config (or
 * --set) does not give is taken from the base; a key it gives must equal the base's
 * value, else one line names the key and both values. model.init_* are not carried: they
 * only say how weights that are then overwritten were drawn. config_parse and config_load
 * are the calls without a base. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "checkpoint.h"
#include "config_impl.h"

/* Without a base: the plain parse and load of io/config.h. */
int config_parse(lethe_config *c, const char *text, const char *origin, char **overrides,
                 int n_overrides, char *err, size_t errlen)
{
    return config_parse_base(c, text, origin, overrides, n_overrides, NULL, NULL, 0, err, errlen);
}

int config_load(lethe_config *c, const char *path, char **overrides, int n_overrides, char *err,
                size_t errlen)
{
    return config_load_base(c, path, overrides, n_overrides, NULL, NULL, 0, err, errlen);
}

static int carried(const char *section, const char *key)
{
    return !(strcmp(section, "model") == 0 && strncmp(key, "init_", 5) == 0);
}

/* Equal as the schema reads them: floats compare as the float the model uses (500000
 * and 5e5 are one value), everything else as JSON. */
static int same_value(const key_def *k, const cJSON *a, const cJSON *b)
{
    if (k && k->type == T_FLOAT && cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return (float)a->valuedouble == (float)b->valuedouble;
    if (k && k->type == T_INT && cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble == b->valuedouble;
    return cJSON_Compare(a, b, 1);
}

void config_model_conflict(char *buf, size_t len, const char *key, const char *stored,
                           const char *mine, const char *origin)
{
    char a[80], b[80];
    config_shown(stored ? stored : "(missing)", a, sizeof a);
    config_shown(mine ? mine : "(missing)", b, sizeof b);
    snprintf(buf, len, "%s is %s in %s but %s in this job's config; the weights there need %s",
             key, a, origin, b, a);
}

void cf_shown_json(char *buf, size_t len, const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s", s ? s : "?");
    config_shown(tmp, buf, len);
    cJSON_free(s);
}

static int carry_section(ctx *x, cJSON *root, const cJSON *base, const char *section,
                         const char *base_origin)
{
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(base, section);
    if (!cJSON_IsObject(from)) return 0;
    cJSON *into = cJSON_GetObjectItemCaseSensitive(root, section);
    if (into && !cJSON_IsObject(into)) return 0; /* the walk names the wrong type */
    if (!into) {
        into = cJSON_AddObjectToObject(root, section);
        if (!into) return cf_fail(x, "out of memory");
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, from)
    {
        if (!v->string || !carried(section, v->string)) continue;
        char name[128];
        snprintf(name, sizeof name, "%s.%s", section, v->string);
        const key_def *k = cf_find_key(name);
        if (!k) continue; /* a key of another lethe version: the weights do not need it */
        const cJSON *mine = cJSON_GetObjectItemCaseSensitive(into, v->string);
        if (!mine) {
            cJSON *dup = cJSON_Duplicate(v, 1);
            if (!dup || !cJSON_AddItemToObject(into, v->string, dup))
                return cf_fail(x, "out of memory");
            continue;
        }
        if (same_value(k, mine, v)) continue;
        char *a = cJSON_PrintUnformatted(v), *b = cJSON_PrintUnformatted(mine), line[600];
        config_model_conflict(line, sizeof line, name, a, b, base_origin);
        cJSON_free(a);
        cJSON_free(b);
        return cf_fail(x, "%s", line);
    }
    return 0;
}

int cf_carry_base(ctx *x, cJSON *root, const char *base_json, const char *base_origin)
{
    cJSON *base = cJSON_Parse(base_json);
    if (!cJSON_IsObject(base)) {
        cJSON_Delete(base);
        return cf_fail(x, "%s holds no config (not a JSON object)", base_origin);
    }
    int rc = carry_section(x, root, base, "model", base_origin);
    if (!rc) rc = carry_section(x, root, base, "hf", base_origin);
    cJSON_Delete(base);
    return rc;
}

int cf_carry_init_checkpoint(ctx *x, cJSON *root)
{
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(root, "init");
    const cJSON *ck = cJSON_IsObject(init) ? cJSON_GetObjectItemCaseSensitive(init, "checkpoint")
                                          : NULL;
    if (!cJSON_IsString(ck) || !ck->valuestring[0]) return 0;
    char err[1024] = "", origin[600];
    char *stored = NULL;
    /* MPI_COMM_SELF: ranks parse their configs on their own and agree afterwards */
    if (ckpt_read_config(ck->valuestring, MPI_COMM_SELF, &stored, err, sizeof err))
        return cf_fail(x, "init.checkpoint: %s", err);
    char shown_path[520];
    cf_escape(shown_path, sizeof shown_path, ck->valuestring, 500);
    snprintf(origin, sizeof origin, "checkpoint '%s'", shown_path);
    int rc = cf_carry_base(x, root, stored, origin);
    free(stored);
    return rc;
}
