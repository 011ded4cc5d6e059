/* analysis/report_cpu.c — results.md's "CPU-seconds per job kind": what a study's jobs
 * cost, read from each job folder's provenance.json ("job", "cpu_seconds": user + system
 * over all its ranks, "wall_seconds", "phases") and summed per job kind (train, unlearn,
 * eval, relearn, ...), with each kind's share of the study's CPU seconds and how its
 * seconds split over its phases (start-up, load, run, eval). A job whose record has no
 * cost (it is running, it failed, or an older lethe wrote it) is counted apart, never
 * as zero. Jobs without a provenance.json (select, report) are not in the table. */
#include "report_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One kind's sums; phase[k] is the study-wide phase k (in order of first appearance). */
typedef struct {
    const char *kind;
    int jobs, unrecorded;
    double cpu, wall, phase[RP_MAX_PHASES];
} kind_sum;

/* The costs of dir/provenance.json. A file that is not JSON is an error like any result
 * file's; missing or non-numeric cost keys only mark the job as unrecorded. */
void rp_load_cost(ctx_t *c, const char *dir)
{
    cJSON *doc = rp_load_json(c, rp_path_join(c, dir, "provenance.json"));
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(doc, "job");
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(doc, "cpu_seconds");
    const cJSON *wall = cJSON_GetObjectItemCaseSensitive(doc, "wall_seconds");
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(doc, "phases");
    RESERVE(c, c->costs, c->ncosts, c->capcosts);
    cost_t *k = &c->costs[c->ncosts++];
    memset(k, 0, sizeof *k);
    k->dir = dir;
    k->job = rp_xstrdup(c, cJSON_IsString(job) && job->valuestring[0] ? job->valuestring : "?");
    int rec = cJSON_IsNumber(cpu) && isfinite(cpu->valuedouble) && cpu->valuedouble >= 0;
    k->cpu_s = rec ? cpu->valuedouble : NAN;
    k->wall_s = rec && cJSON_IsNumber(wall) ? wall->valuedouble : NAN;
    for (const cJSON *p = cJSON_IsObject(ph) && rec ? ph->child : NULL; p; p = p->next) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "cpu_seconds");
        if (k->nph == RP_MAX_PHASES || !cJSON_IsNumber(v) || !p->string) continue;
        k->phase[k->nph] = rp_xstrdup(c, p->string);
        k->phase_cpu[k->nph++] = v->valuedouble;
    }
    rp_drop_doc(c);
}

/* Index of name in names[0..*n), appended when new (and room is left); -1: no room. */
static int name_index(const char **names, int *n, int cap, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(names[i], name)) return i;
    if (*n == cap) return -1;
    names[*n] = name;
    return (*n)++;
}

static int by_cpu(const void *a, const void *b)
{
    const kind_sum *x = a, *y = b;
    return x->cpu != y->cpu ? (x->cpu < y->cpu ? 1 : -1) : strcmp(x->kind, y->kind);
}

/* The per-kind sums, the costliest kind first; returns how many. */
static int sum_kinds(ctx_t *c, kind_sum *K, const char **phases, int *nph)
{
    int nk = 0;
    const char **kinds = rp_xalloc(c, sizeof *kinds * (size_t)c->ncosts);
    for (int i = 0; i < c->ncosts; i++) {
        const cost_t *x = &c->costs[i];
        int k = name_index(kinds, &nk, c->ncosts, x->job);
        if (!K[k].kind) K[k].kind = x->job;
        K[k].jobs++;
        if (isnan(x->cpu_s)) {
            K[k].unrecorded++;
            continue;
        }
        K[k].cpu += x->cpu_s;
        if (!isnan(x->wall_s)) K[k].wall += x->wall_s;
        for (int p = 0; p < x->nph; p++) {
            int j = name_index(phases, nph, RP_MAX_PHASES, x->phase[p]);
            if (j >= 0) K[k].phase[j] += x->phase_cpu[p];
        }
    }
    qsort(K, (size_t)nk, sizeof *K, by_cpu);
    return nk;
}

static void cell(FILE *f, double v, const char *fmt)
{
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs(" – |", f);
}

void rp_md_cpu(ctx_t *c, FILE *f)
{
    if (!c->ncosts) return;
    kind_sum *K = rp_xalloc(c, sizeof *K * (size_t)c->ncosts);
    memset(K, 0, sizeof *K * (size_t)c->ncosts);
    const char *phases[RP_MAX_PHASES];
    int nph = 0, nk = sum_kinds(c, K, phases, &nph), jobs = 0, unrec = 0;
    double total = 0, wall = 0;
    for (int k = 0; k < nk; k++) total += K[k].cpu, wall += K[k].wall;
    for (int k = 0; k < nk; k++) jobs += K[k].jobs, unrec += K[k].unrecorded;
    fputs("\n## CPU-seconds per job kind\n\nFrom each job's provenance.json: CPU seconds "
          "(user + system, summed over the job's ranks, from reading its config to closing "
          "it), wall seconds, and the share of the CPU seconds in each phase of the job "
          "(start-up: config, grid, model; load: reading checkpoints; run: the job's work; "
          "eval: the forget metrics inside a relearn run). select and report jobs keep no "
          "provenance.json and are not counted.",
          f);
    if (unrec)
        fprintf(f, " %d of the %d jobs record no cost (running, failed, or run by an older "
                   "lethe); the means are over the recorded ones.",
                unrec, jobs);
    fputs("\n\n| job kind | jobs | CPU-s total | CPU-s mean | share | wall-s total |", f);
    for (int p = 0; p < nph; p++) fprintf(f, " %s |", phases[p]);
    fputs("\n|---|--:|--:|--:|--:|--:|", f);
    for (int p = 0; p < nph; p++) fputs("--:|", f);
    for (int k = 0; k < nk; k++) {
        const kind_sum *w = &K[k];
        int rec = w->jobs - w->unrecorded;
        fputs("\n| ", f);
        rp_md_text(f, w->kind);
        fprintf(f, " | %d |", w->jobs);
        cell(f, rec ? w->cpu : NAN, " %.1f |");
        cell(f, rec ? w->cpu / rec : NAN, " %.2f |");
        cell(f, total > 0 && rec ? 100 * w->cpu / total : NAN, " %.1f %% |");
        cell(f, rec ? w->wall : NAN, " %.1f |");
        for (int p = 0; p < nph; p++)
            cell(f, w->cpu > 0 && w->phase[p] > 0 ? 100 * w->phase[p] / w->cpu : NAN,
                 " %.0f %% |");
    }
    fprintf(f, "\n| all | %d | %.1f | | 100 %% | %.1f |", jobs, total, wall);
    for (int p = 0; p < nph; p++) fputs(" |", f);
    fputs("\n", f);
}
