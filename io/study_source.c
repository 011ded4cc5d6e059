/* io/study_source.c — a study that starts from a model folder and the TOFU files as
 * published, instead of the built-in data: its "source" part
 *   "source": {"model_dir": DIR, "tofu_dir": DIR, "template": "llama3-chat",
 *              "seq_len": 512, "holdout": true, "prepare_args": [...],
 *              "retrain_dirs": {"forget05": DIR, ...}}
 * (each key also given on the command line: --set source.model_dir=DIR) becomes a
 * `prepare --tofu` job (the data set, with the model's own tokenizer and chat template)
 * and a `convert --from` job (the origin model), both run by their flags in job.json
 * (jobs/job_args.c); a forget level takes TOFU's split names as `prepare --tofu` writes
 * them (io/DATASETS.md "TOFU"): forget05 is unlearnt against retain95 and evaluated on
 * eval/forget05_perturbed, eval/retain_perturbed, eval/real_authors, eval/world_facts and
 * holdout05. A level's retrained model (the reference of forget quality) is converted from
 * retrain_dirs when given; without it the evaluations report no forget quality. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../mpi/fatal.h"
#include "study_impl.h"

static const char *str_key(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int study_source_set(expansion *x, const char *key, const char *value)
{
    if (!x->source)
        return lethe_errf(x->err, x->errlen,
                          "study '%s': --set source.%s: this study has no \"source\" (it makes "
                          "its own data)",
                          x->path, key);
    if (study_bad_key("source", key, x->err, x->errlen)) return -1;
    cJSON *v = cJSON_Parse(value);
    /* a path stays a string even when it parses as JSON (a folder named 1) */
    if (v && !cJSON_IsObject(v) && !cJSON_IsArray(v) && !cJSON_IsBool(v) && strcmp(key, "seq_len"))
        cJSON_Delete(v), v = NULL;
    study_json_set(x->source, key, v ? v : cJSON_CreateString(value));
    return 0;
}

#define NEED(cond, ...)                                                                            \
    if (!rc && !(cond)) rc = lethe_errf(x->err, x->errlen, __VA_ARGS__)

/* retrain_dirs: an object of TOFU levels -> folders; prepare_args: strings. */
static int check_lists(expansion *x)
{
    const cJSON *rd = cJSON_GetObjectItemCaseSensitive(x->source, "retrain_dirs"), *i;
    const cJSON *pa = cJSON_GetObjectItemCaseSensitive(x->source, "prepare_args");
    int rc = 0;
    NEED(!rd || cJSON_IsObject(rd),
         "study '%s': source.retrain_dirs must be an object {\"forget05\": DIR, ...}", x->path);
    for (i = rc || !rd ? NULL : rd->child; i && !rc; i = i->next) {
        char b[80];
        NEED(!strcmp(i->string, "forget01") || !strcmp(i->string, "forget05") ||
                 !strcmp(i->string, "forget10"),
             "study '%s': source.retrain_dirs: '%s' is not a TOFU forget level (forget01, "
             "forget05, forget10)",
             x->path, study_shown(i->string, b, sizeof b));
        NEED(cJSON_IsString(i) && i->valuestring[0],
             "study '%s': source.retrain_dirs.%s must name a model folder", x->path, i->string);
    }
    NEED(!pa || cJSON_IsArray(pa), "study '%s': source.prepare_args must be a list of strings",
         x->path);
    for (i = rc || !pa ? NULL : pa->child; i && !rc; i = i->next)
        NEED(cJSON_IsString(i), "study '%s': source.prepare_args must be a list of strings",
             x->path);
    return rc;
}

int study_source_check(expansion *x)
{
    static const char *const known[] = {"model_dir", "tofu_dir",     "template",     "seq_len",
                                        "holdout",   "prepare_args", "retrain_dirs", NULL};
    static const char *const excluded[] = {"synth", "origin", "retrain", NULL};
    int rc = 0;
    char b[80];
    for (const cJSON *i = x->source->child; i && !rc; i = i->next) {
        int ok = 0;
        for (const char *const *k = known; *k; k++) ok |= !strcmp(*k, i->string);
        NEED(ok,
             "study '%s': source: unknown key '%s' (known: model_dir, tofu_dir, template, "
             "seq_len, holdout, prepare_args, retrain_dirs)",
             x->path, study_shown(i->string, b, sizeof b));
    }
    for (const char *const *k = excluded; *k && !rc; k++)
        NEED(!cJSON_GetObjectItemCaseSensitive(x->root, *k),
             "study '%s': '%s' and 'source' exclude each other (a source study converts its "
             "models and prepares its data; it trains none)",
             x->path, *k);
    const char *md = str_key(x->source, "model_dir"), *td = str_key(x->source, "tofu_dir");
    NEED(md && md[0],
         "study '%s': source.model_dir is not given: name the Hugging Face model folder with "
         "--set source.model_dir=DIR",
         x->path);
    NEED(td && td[0],
         "study '%s': source.tofu_dir is not given: name the folder of the TOFU files with "
         "--set source.tofu_dir=DIR",
         x->path);
    NEED(str_key(x->source, "template"),
         "study '%s': source.template must name a chat template (llama3-chat, llama2-chat, "
         "question-answer or a file)",
         x->path);
    const cJSON *T = cJSON_GetObjectItemCaseSensitive(x->source, "seq_len");
    NEED(cJSON_IsNumber(T) && T->valuedouble >= 1 && T->valuedouble <= 1048576 &&
             T->valuedouble == (int)T->valuedouble,
         "study '%s': source.seq_len must be an integer in [1, 1048576]", x->path);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(x->source, "holdout");
    NEED(!h || cJSON_IsBool(h), "study '%s': source.holdout must be true or false", x->path);
    return rc ? rc : check_lists(x);
}

/* A job whose job.json holds its flags (args, and the layout it runs at). */
static int add_args_job(expansion *x, const char *name, const char *kind, cJSON *args,
                        int with_layout, int dep)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "args", args);
    const cJSON *lay = cJSON_GetObjectItemCaseSensitive(x->base, "layout");
    if (with_layout && lay) cJSON_AddItemToObject(c, "layout", cJSON_Duplicate(lay, 1));
    int j = study_add_job(x, name, kind, c, &dep, 1, NULL, 0);
    cJSON_Delete(c);
    return j;
}

static void add_strs(cJSON *a, const char *const *s)
{
    for (; *s; s++) cJSON_AddItemToArray(a, cJSON_CreateString(*s));
}

/* `convert --from DIR --to <study>/<name>/model.h5`, at the study's layout. */
static int add_convert(expansion *x, const char *name, const char *from, int dep)
{
    char to[800];
    snprintf(to, sizeof to, "%s/%s/model.h5", x->dir, name);
    cJSON *a = cJSON_CreateArray();
    add_strs(a, (const char *const[]){"--from", from, "--to", to, NULL});
    return add_args_job(x, name, "convert", a, 1, dep);
}

int study_add_source(expansion *x)
{
    char T[32];
    snprintf(T, sizeof T, "%d", cJSON_GetObjectItemCaseSensitive(x->source, "seq_len")->valueint);
    const char *md = str_key(x->source, "model_dir");
    cJSON *a = cJSON_CreateArray(), *i;
    add_strs(a, (const char *const[]){"--tofu", str_key(x->source, "tofu_dir"), "--tokenizer-dir",
                                      md, "--template", str_key(x->source, "template"), "--seq-len",
                                      T, "--output", x->data, NULL});
    cJSON_ArrayForEach(i, cJSON_GetObjectItemCaseSensitive(x->source, "prepare_args"))
        cJSON_AddItemToArray(a, cJSON_CreateString(i->valuestring));
    /* prepare is serial (rank 0 works): no layout, one rank under lethe slurm */
    x->j_synth = add_args_job(x, "prepare", "prepare", a, 0, -1);
    x->j_origin = x->j_synth < 0 ? -1 : add_convert(x, "origin", md, x->j_synth);
    return x->j_origin < 0 ? -1 : 0;
}

int study_source_level(expansion *x, const cJSON *fl, level *L)
{
    int rc = 0;
    const char *v = cJSON_IsString(fl) ? fl->valuestring : "";
    NEED(!strcmp(v, "forget01") || !strcmp(v, "forget05") || !strcmp(v, "forget10"),
         "study '%s': a TOFU study's forget levels are \"forget01\", \"forget05\" and "
         "\"forget10\"",
         x->path);
    if (rc) return rc;
    int pct = atoi(v + 6);
    snprintf(L->fs, sizeof L->fs, "%s", v);
    snprintf(L->lv, sizeof L->lv, "%02d", pct);
    snprintf(L->rs, sizeof L->rs, "retain%02d", 100 - pct);
    snprintf(L->efs, sizeof L->efs, "eval/%s_perturbed", v);
    snprintf(L->ers, sizeof L->ers, "eval/retain_perturbed");
    return 0;
}

void study_source_eval(const expansion *x, const level *L, cJSON *eval)
{
    char h[32];
    const cJSON *hold = cJSON_GetObjectItemCaseSensitive(x->source, "holdout");
    snprintf(h, sizeof h, "holdout%s", L->lv);
    study_json_set(eval, "eval.utility_splits",
                   cJSON_CreateString("eval/real_authors,eval/world_facts"));
    study_json_set(eval, "eval.holdout_split", cJSON_CreateString(cJSON_IsFalse(hold) ? "" : h));
}

int study_source_retrain(expansion *x, const level *L, const char *name, int *j)
{
    const char *dir = str_key(cJSON_GetObjectItemCaseSensitive(x->source, "retrain_dirs"), L->fs);
    *j = dir ? add_convert(x, name, dir, x->j_synth) : -1;
    return dir && *j < 0 ? -1 : 0;
}
#undef NEED
