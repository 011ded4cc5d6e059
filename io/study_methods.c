/* io/study_methods.c — the search space of a study: each method's fixed keys and grid
 * (the flat form: the method's own dotted keys and the study-wide "grid"; the other:
 * {"fixed": {...}, "grid": {...}}), the seeds, the protocol ("selection_seeds",
 * "report_seeds", "tau", "rule"), and the equal-budget check: every method gets the
 * same number of settings x seeds, or the study is refused in one line naming the
 * methods and their counts. Setting k of a method is the k-th point of its grid, the
 * last key varying fastest. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../mpi/fatal.h"
#include "study_impl.h"

#define NEED(cond, ...)                                                                            \
    if (!rc && !(cond)) rc = lethe_errf(x->err, x->errlen, __VA_ARGS__)

int study_bad_key(const char *what, const char *k, char *err, size_t errlen)
{
    size_t n = strlen(k);
    if (n > 0 && n < 256 && k[0] != '.' && k[n - 1] != '.' && !strstr(k, "..")) return 0;
    char b[80];
    return lethe_errf(err, errlen, "study: '%s': key '%s' is not a dotted config key", what,
                      study_shown(k, b, sizeof b));
}

/* A grid object (an object of non-empty lists) into m; what names it in messages. */
static int read_grid(expansion *x, study_method *m, const cJSON *grid, const char *what)
{
    int rc = 0;
    m->npoints = 1;
    NEED(!grid || cJSON_IsObject(grid), "study '%s': '%s' must be an object of lists", x->path,
         what);
    for (const cJSON *g = grid && !rc ? grid->child : NULL; g && !rc; g = g->next) {
        char gb[80];
        NEED(cJSON_IsArray(g) && cJSON_GetArraySize(g) > 0 && m->gk < STUDY_MAX_GRID_KEYS,
             "study '%s': grid key '%s' must be a non-empty list", x->path,
             study_shown(g->string, gb, sizeof gb));
        if (!rc) rc = study_bad_key(what, g->string, x->err, x->errlen);
        NEED(m->npoints <= STUDY_MAX_JOBS / cJSON_GetArraySize(g),
             "study '%s': the grid has more than %d points", x->path, STUDY_MAX_JOBS);
        if (rc) break;
        m->gkeys[m->gk] = g;
        m->glen[m->gk++] = cJSON_GetArraySize(g);
        m->npoints *= cJSON_GetArraySize(g);
    }
    return rc;
}

/* One method, in either form. */
static int read_method(expansion *x, study_method *m, const cJSON *mo)
{
    int rc = 0;
    char b[80];
    m->name = mo->string;
    NEED(cJSON_IsObject(mo), "study: '%s' must be an object of dotted keys",
         study_shown(mo->string, b, sizeof b));
    if (rc) return rc;
    const cJSON *fixed = cJSON_GetObjectItemCaseSensitive(mo, "fixed");
    const cJSON *grid = cJSON_GetObjectItemCaseSensitive(mo, "grid");
    if (!fixed && !grid) { /* the flat form */
        m->fixed = mo;
        return read_grid(x, m, cJSON_GetObjectItemCaseSensitive(x->root, "grid"), "grid");
    }
    for (const cJSON *k = mo->child; k && !rc; k = k->next)
        NEED(!strcmp(k->string, "fixed") || !strcmp(k->string, "grid"),
             "study '%s': method '%s': key '%s' beside 'fixed' and 'grid' (a method is either "
             "dotted keys, or {\"fixed\": {...}, \"grid\": {...}})",
             x->path, m->name, study_shown(k->string, b, sizeof b));
    char what[100];
    snprintf(what, sizeof what, "%s.fixed", m->name);
    NEED(!fixed || cJSON_IsObject(fixed), "study: '%s' must be an object of dotted keys", what);
    m->fixed = fixed;
    snprintf(what, sizeof what, "%s.grid", m->name);
    return rc ? rc : read_grid(x, m, grid, what);
}

/* A list of integer seeds (key names it in messages); its length in *n. */
static int read_seeds(expansion *x, const cJSON *seeds, const char *key, int *n)
{
    int rc = 0;
    *n = seeds ? cJSON_GetArraySize(seeds) : 1;
    NEED(!seeds || (cJSON_IsArray(seeds) && *n > 0), "study '%s': '%s' must be a list of integers",
         x->path, key);
    for (int i = 0; seeds && i < *n && !rc; i++) {
        const cJSON *sd = cJSON_GetArrayItem(seeds, i);
        NEED(cJSON_IsNumber(sd) && sd->valuedouble >= 0 && sd->valuedouble <= 1e9 &&
                 sd->valuedouble == floor(sd->valuedouble),
             "study '%s': %s must be integers in [0, 1000000000]", x->path,
             strcmp(key, "seeds") ? key : "seeds");
        for (int k = 0; k < i && !rc; k++)
            NEED(cJSON_GetArrayItem(seeds, k)->valuedouble != sd->valuedouble,
                 "study '%s': %s lists seed %d twice", x->path, key, sd->valueint);
    }
    return rc;
}

/* "protocol": its keys, each checked; the selection and report seeds are disjoint. */
static int read_protocol(expansion *x, const cJSON *p)
{
    int rc = 0;
    char b[80];
    NEED(cJSON_IsObject(p),
         "study '%s': 'protocol' must be an object {\"selection_seeds\": [...], "
         "\"report_seeds\": [...], \"tau\": 0.95, \"rule\": \"fq_at_mu\"}",
         x->path);
    for (const cJSON *k = rc ? NULL : p->child; k && !rc; k = k->next)
        NEED(!strcmp(k->string, "selection_seeds") || !strcmp(k->string, "report_seeds") ||
                 !strcmp(k->string, "tau") || !strcmp(k->string, "rule"),
             "study '%s': protocol: unknown key '%s' (known: selection_seeds, report_seeds, tau, "
             "rule)",
             x->path, study_shown(k->string, b, sizeof b));
    NEED(!cJSON_GetObjectItemCaseSensitive(x->root, "seeds"),
         "study '%s': 'seeds' and 'protocol' both given: a protocol study's seeds are "
         "protocol.selection_seeds and protocol.report_seeds",
         x->path);
    x->seeds = rc ? NULL : cJSON_GetObjectItemCaseSensitive(p, "selection_seeds");
    x->report_seeds = rc ? NULL : cJSON_GetObjectItemCaseSensitive(p, "report_seeds");
    NEED(x->seeds, "study '%s': protocol.selection_seeds is missing", x->path);
    NEED(x->report_seeds, "study '%s': protocol.report_seeds is missing", x->path);
    if (!rc) rc = read_seeds(x, x->seeds, "protocol.selection_seeds", &x->nseeds);
    if (!rc) rc = read_seeds(x, x->report_seeds, "protocol.report_seeds", &x->nreport);
    for (int i = 0; i < x->nseeds && !rc; i++)
        for (int k = 0; k < x->nreport && !rc; k++)
            NEED(cJSON_GetArrayItem(x->seeds, i)->valuedouble !=
                     cJSON_GetArrayItem(x->report_seeds, k)->valuedouble,
                 "study '%s': seed %d is both a selection and a report seed (report seeds must "
                 "be fresh)",
                 x->path, cJSON_GetArrayItem(x->seeds, i)->valueint);
    const cJSON *tau = rc ? NULL : cJSON_GetObjectItemCaseSensitive(p, "tau");
    const cJSON *rule = rc ? NULL : cJSON_GetObjectItemCaseSensitive(p, "rule");
    NEED(!tau || (cJSON_IsNumber(tau) && tau->valuedouble >= 0 && tau->valuedouble <= 1),
         "study '%s': protocol.tau must be a number in [0, 1] (the share of the origin model's "
         "utility a setting must keep)",
         x->path);
    NEED(!rule || (cJSON_IsString(rule) && !strcmp(rule->valuestring, "fq_at_mu")),
         "study '%s': protocol.rule must be \"fq_at_mu\" (the one rule: best forget quality at "
         "model utility >= tau x the origin's)",
         x->path);
    x->tau = tau ? tau->valuedouble : 0.95;
    x->rule = "fq_at_mu";
    x->protocol = 1;
    return rc;
}

/* Every method the same settings x seeds: else one line with every method's count. */
static int check_budget(expansion *x)
{
    int equal = 1;
    for (int i = 1; i < x->nmethods; i++) equal &= x->methods[i].npoints == x->methods[0].npoints;
    if (equal) return 0;
    char list[900] = "";
    size_t o = 0;
    for (int i = 0; i < x->nmethods && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s %d settings x %d seeds = %d",
                              i ? ", " : "", x->methods[i].name, x->methods[i].npoints, x->nseeds,
                              x->methods[i].npoints * x->nseeds);
    return lethe_errf(x->err, x->errlen,
                      "study '%s': unequal budget: %s (every method needs the same number of "
                      "settings x seeds)",
                      x->path, list);
}

int study_read_methods(expansion *x)
{
    const cJSON *methods = cJSON_GetObjectItemCaseSensitive(x->root, "methods");
    const cJSON *protocol = cJSON_GetObjectItemCaseSensitive(x->root, "protocol");
    int rc = 0;
    for (const cJSON *mo = methods->child; mo && !rc; mo = mo->next) {
        NEED(x->nmethods < STUDY_MAX_METHODS, "study '%s': more than %d methods", x->path,
             STUDY_MAX_METHODS);
        if (!rc) rc = read_method(x, &x->methods[x->nmethods++], mo);
    }
    if (!rc && protocol) return read_protocol(x, protocol) || check_budget(x) ? -1 : 0;
    x->seeds = cJSON_GetObjectItemCaseSensitive(x->root, "seeds");
    NEED(!x->seeds || cJSON_IsArray(x->seeds), "study '%s': 'seeds' must be a list of integers",
         x->path);
    if (!rc) rc = read_seeds(x, x->seeds, "seeds", &x->nseeds);
    return rc ? rc : check_budget(x);
}
#undef NEED

void study_set_point(const study_method *m, int k, cJSON *u, cJSON *lab, cJSON *over)
{
    int idx[STUDY_MAX_GRID_KEYS], rem = k;
    for (int g = m->gk - 1; g >= 0; g--) idx[g] = rem % m->glen[g], rem /= m->glen[g];
    for (int g = 0; g < m->gk; g++) {
        const cJSON *v = cJSON_GetArrayItem(m->gkeys[g], idx[g]);
        const char *key = m->gkeys[g]->string, *dot = strrchr(key, '.');
        if (u) study_json_set(u, key, cJSON_Duplicate(v, 1));
        if (over) cJSON_AddItemToObject(over, key, cJSON_Duplicate(v, 1));
        if (lab) {
            cJSON_DeleteItemFromObjectCaseSensitive(lab, dot ? dot + 1 : key);
            cJSON_AddItemToObject(lab, dot ? dot + 1 : key, cJSON_Duplicate(v, 1));
        }
    }
    if (lab) {
        char set[100];
        snprintf(set, sizeof set, "%s-p%d", m->name, k);
        cJSON_DeleteItemFromObjectCaseSensitive(lab, "setting");
        cJSON_AddStringToObject(lab, "setting", set);
    }
}
