/* jobs/select.c — `lethe select JOB.json`: a protocol study's choice of one setting of a
 * method at a forget level (io/study.h "protocol"). JOB.json is the spec the study's
 * expansion wrote (io/study_protocol.c): the candidates (each setting's overrides,
 * labels and the folders of its selection-phase evals), the origin model's eval, tau
 * and the rule, and the report-phase jobs' templates. The job reads each eval's
 * summary.json (model_utility, log10_forget_quality, forget_prob_gap), averages them
 * over the selection seeds, applies the rule (analysis/select.h), writes
 * <output_dir>/selected.json and then the chosen setting's report-phase job.json and
 * labels.json files (study_materialise). Serial file work: rank 0 does it and the other
 * ranks share its verdict (exit 0, 2 for a bad spec or missing result, 1 for an output
 * that cannot be written). --set options are accepted and ignored: `lethe slurm` gives
 * them to every job's command line, and the report-phase jobs take them there. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/select.h"
#include "../io/study.h"
#include "../mpi/fatal.h"
#include "jobs.h"

#define SELECT_USAGE "usage: lethe select JOB.json (a protocol study's select job; see lethe study)"
#define SELECT_MAX 64

typedef struct {
    cJSON *spec;
    const cJSON *sel, *cands;
    int n, ns[SELECT_MAX];
    select_candidate c[SELECT_MAX];
    double mu_origin;
    char err[1400];
} select_job;

/* A number of a summary.json (NaN for null or missing). */
static double summary_num(const cJSON *sum, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sum, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* dir/summary.json as JSON, or NULL with err set. */
static cJSON *read_summary(const char *dir, char *err, size_t errlen)
{
    char path[900];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    char *t = study_read_text(path, "eval summary", err, errlen);
    cJSON *s = t ? cJSON_Parse(t) : NULL;
    if (t && !cJSON_IsObject(s)) lethe_errf(err, errlen, "'%s': not a JSON object", path);
    free(t);
    if (!cJSON_IsObject(s)) cJSON_Delete(s), s = NULL;
    return s;
}

/* Candidate k's means over its evals. 0, or 2 with err set. */
static int read_candidate(select_job *J, int k)
{
    const cJSON *evals = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(J->cands, k), "evals");
    double mu = 0, fq = 0, gap = 0;
    int n = cJSON_GetArraySize(evals);
    if (!cJSON_IsArray(evals) || n == 0)
        return lethe_errf(J->err, sizeof J->err, "candidate %d has no evals", k), 2;
    for (int i = 0; i < n; i++) {
        const cJSON *d = cJSON_GetArrayItem(evals, i);
        cJSON *s = cJSON_IsString(d) ? read_summary(d->valuestring, J->err, sizeof J->err) : NULL;
        if (!s) return 2;
        mu += summary_num(s, "model_utility");
        fq += summary_num(s, "log10_forget_quality");
        gap += fabs(summary_num(s, "forget_prob_gap"));
        cJSON_Delete(s);
    }
    J->c[k] = (select_candidate){mu / n, fq / n, gap / n, 0};
    J->ns[k] = n;
    return 0;
}

/* The spec, the origin's utility and every candidate's means. 0, or 2 with err set. */
static int read_inputs(select_job *J, const char *file)
{
    char *t = study_read_text(file, "select job", J->err, sizeof J->err);
    if (!t) return 2;
    J->spec = cJSON_Parse(t);
    free(t);
    J->sel = cJSON_GetObjectItemCaseSensitive(J->spec, "select");
    J->cands = cJSON_GetObjectItemCaseSensitive(J->sel, "candidates");
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(J->sel, "origin_eval");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(J->sel, "output_dir");
    J->n = cJSON_GetArraySize(J->cands);
    if (!cJSON_IsArray(J->cands) || J->n < 1 || J->n > SELECT_MAX || !cJSON_IsString(eo) ||
        !cJSON_IsString(out) || !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(J->sel, "tau")))
        return lethe_errf(J->err, sizeof J->err,
                          "'%s' is not a select job's spec (select.candidates: 1 to %d, "
                          "origin_eval, output_dir, tau)",
                          file, SELECT_MAX),
               2;
    cJSON *s = read_summary(eo->valuestring, J->err, sizeof J->err);
    if (!s) return 2;
    J->mu_origin = summary_num(s, "model_utility");
    cJSON_Delete(s);
    for (int k = 0; k < J->n; k++)
        if (read_candidate(J, k)) return 2;
    return 0;
}

static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* Candidate i's setting name ("simnpo-p3"). */
static const char *setting_name(const select_job *J, int i)
{
    const char *v = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(J->cands, i), "setting"));
    return v ? v : "?";
}

static cJSON *dup_of(const cJSON *o, const char *key)
{
    return cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(o, key), 1);
}

/* selected.json's document for choice k. */
static cJSON *selection(const select_job *J, int k, int fallback, double tau)
{
    cJSON *d = cJSON_CreateObject();
    const cJSON *ck = cJSON_GetArrayItem(J->cands, k);
    cJSON_AddItemToObject(d, "method", dup_of(J->sel, "method"));
    cJSON_AddItemToObject(d, "forget", dup_of(J->sel, "forget"));
    cJSON_AddItemToObject(d, "setting", dup_of(ck, "setting"));
    cJSON_AddNumberToObject(d, "index", k);
    cJSON_AddItemToObject(d, "overrides", dup_of(ck, "overrides"));
    cJSON_AddItemToObject(d, "rule", dup_of(J->sel, "rule"));
    cJSON_AddNumberToObject(d, "tau", tau);
    cJSON_AddItemToObject(d, "mu_origin", num(J->mu_origin));
    cJSON_AddBoolToObject(d, "eligible", !fallback);
    cJSON *cs = cJSON_AddArrayToObject(d, "candidates");
    for (int i = 0; i < J->n; i++) {
        const cJSON *ci = cJSON_GetArrayItem(J->cands, i);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToObject(c, "setting", dup_of(ci, "setting"));
        cJSON_AddItemToObject(c, "overrides", dup_of(ci, "overrides"));
        cJSON_AddItemToObject(c, "mean_mu", num(J->c[i].mean_mu));
        cJSON_AddItemToObject(c, "mean_log10_fq", num(J->c[i].mean_log10_fq));
        cJSON_AddItemToObject(c, "forget_prob_gap", num(J->c[i].forget_prob_gap));
        cJSON_AddNumberToObject(c, "n_seeds", J->ns[i]);
        cJSON_AddBoolToObject(c, "eligible", J->c[i].eligible);
        cJSON_AddItemToArray(cs, c);
    }
    return d;
}

/* Rank 0's work. */
static int select_rank0(select_job *J, const char *file)
{
    int rc = read_inputs(J, file);
    if (rc) return rc;
    double tau = cJSON_GetObjectItemCaseSensitive(J->sel, "tau")->valuedouble;
    int fallback = 0, k = select_fq_at_mu(J->c, J->n, tau, J->mu_origin, &fallback);
    const char *method = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(J->sel, "method"));
    if (k < 0)
        return lethe_errf(J->err, sizeof J->err,
                          "no setting of method '%s' has a finite mean model utility: nothing "
                          "to select",
                          method ? method : "?"),
               2;
    for (int i = 0; i < J->n; i++)
        printf("lethe select: %-14s MU %.4f  log10 FQ %8.3f  |gap| %.4f  %s%s\n",
               setting_name(J, i), J->c[i].mean_mu, J->c[i].mean_log10_fq, J->c[i].forget_prob_gap,
               J->c[i].eligible ? "eligible" : "below tau x MU(origin)",
               i == k ? "  <- chosen" : "");
    cJSON *d = selection(J, k, fallback, tau);
    char path[900], *text = cJSON_Print(d);
    cJSON_Delete(d);
    snprintf(path, sizeof path, "%s/selected.json",
             cJSON_GetObjectItemCaseSensitive(J->sel, "output_dir")->valuestring);
    rc = text ? study_write_text(path, text, "\n", J->err, sizeof J->err) : 1;
    cJSON_free(text);
    if (!rc) rc = study_materialise(J->spec, k, J->err, sizeof J->err) ? 1 : 0;
    if (!rc)
        printf("lethe select: %s at %s: MU(origin) %.4f, tau %g: %s%s; %s\n", method,
               cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(J->sel, "forget")),
               J->mu_origin, tau, setting_name(J, k),
               fallback ? " (no setting eligible: the highest utility, flagged)" : "", path);
    return rc;
}

int job_select(int argc, char **argv)
{
    int rank, rc = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    const char *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) printf("%s\n", SELECT_USAGE);
            return 0;
        }
        if (!strcmp(argv[i], "--set") && i + 1 < argc)
            i++; /* the report-phase jobs' own (lethe slurm gives them to every job) */
        else if (argv[i][0] == '-' || file)
            rc = 2;
        else
            file = argv[i];
    }
    if (rank == 0 && (rc || !file)) fprintf(stderr, "lethe: select: %s\n", SELECT_USAGE);
    if (rc || !file) return 2;
    if (rank == 0) {
        select_job *J = calloc(1, sizeof *J);
        rc = J ? select_rank0(J, file) : 1;
        if (rc) fprintf(stderr, "lethe: select: %s\n", J ? J->err : "out of memory");
        if (J) cJSON_Delete(J->spec);
        free(J);
        fflush(stdout);
        fflush(stderr);
    }
    MPI_CHECK(MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return rc;
}
