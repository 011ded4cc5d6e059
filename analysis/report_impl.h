/* analysis/report_impl.h — what the parts of `lethe report` share (internal): the
 * result types, the context of one run, the arena and error helpers (report.c), the
 * label helpers (report.c) and the gnuplot drawing (report_plot.c). Not installed. */
#ifndef LETHE_REPORT_IMPL_H
#define LETHE_REPORT_IMPL_H

#include "report.h"
#include "stats.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <setjmp.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#if defined(__GNUC__)
#define RP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define RP_NORETURN __attribute__((noreturn))
#else
#define RP_PRINTF(a, b)
#define RP_NORETURN
#endif

/* Result files are kilobytes; the cap stops a wrong file (a checkpoint renamed by
 * mistake) from being read whole. */
#define MAX_INPUT_BYTES (256u << 20)
/* Deeper than any study layout; stops a pathological tree. */
#define MAX_DEPTH 64
#define ARENA_BLOCK (1u << 16)

/* ------------------------------------------------------------------------------------ */
/* Labels: scalar values of labels.json. */

typedef enum { LV_ABSENT = 0, LV_NULL, LV_BOOL, LV_NUM, LV_STR } lv_type;

typedef struct {
    lv_type t;
    double num; /* LV_NUM, LV_BOOL (0 or 1) */
    const char *str;
} lvalue;

typedef struct {
    const char *key;
    lvalue v;
} label;

typedef struct {
    label *v;
    int n;
} labels;

/* ------------------------------------------------------------------------------------ */
/* The metrics of a run, in table order. */

enum {
    M_FQ,
    M_LOG10_FQ,
    M_FQ_TW,
    M_MU,
    M_FPROB,
    M_GAP,
    M_RPROB,
    M_FROUGE,
    M_RROUGE,
    M_FTR,
    M_PRIVLEAK,
    M_RECOVERY,
    NMETRIC
};

/* Per-bucket forget metrics (summary.json splits.<forget>.buckets.{short,long}). */
enum { B_N, B_PROB, B_ROUGE, B_TR, NBMETRIC };
#define NBUCKET 2

typedef struct {
    const char *dir;
    labels lab;
    double m[NMETRIC]; /* NaN: no value (null or absent) */
    int has_markov;
    double kl[3];
    const char **errs;
    int nerr;
    int row;
    int phase;                        /* PHASE_REPORT (also: no phase label) or PHASE_SELECTION */
    const char *checkpoint;           /* summary.json "checkpoint", or NULL */
    double bucket[NBUCKET][NBMETRIC]; /* NaN: none */
    int budget;                       /* index into c->budgets, -1: none found */
} run_t;

enum { PHASE_REPORT = 0, PHASE_SELECTION = 1 };

typedef struct {
    const char *dir;
    labels lab;
    int n;
    double *step, *fprob; /* (n), sorted by step; fprob NaN where null */
    double recovery;      /* NaN unless both ends have a forget_prob */
    int row;              /* -1: no evaluated setting matches */
} curve_t;

typedef struct {
    const char *dir;
    labels lab;
    int line;
    int ranks, dp, pp, tp, mb, threads; /* mb, threads: 0 when absent */
    double params, batch, seq_len;      /* NaN when absent */
    const char *blas;                   /* "" when absent */
    double tps, ms, comm, bubble, gflops, pct_peak;
    double nodes; /* NaN: not in labels.json */
} bench_t;

typedef struct {
    int *runs, nruns, cap;
    const labels *lab; /* the first run's */
    double mean[NMETRIC], sd[NMETRIC];
    int cnt[NMETRIC];
    double kl_mean[3], kl_sd[3];
    int kl_cnt[3];
    int phase; /* every run of a row has its phase (phase is a label) */
    double bmean[NBUCKET][NBMETRIC];
    int bcnt[NBUCKET][NBMETRIC];
} row_t;

/* select-<level>-<method>/selected.json: the setting a method reports, and why. */
typedef struct {
    const char *dir, *method, *forget, *setting, *rule;
    double tau, mu_origin; /* mu_origin NaN when null */
    int eligible, ncand;
} selected_t;

/* An unlearn job's budget.json (the folder of an eval's checkpoint). */
typedef struct {
    const char *dir, *method;
    int phase;
    double tokens, steps, cpu_s, wall_s, ranks;
    dev_t dev; /* of budget.json: a job read once however many evals name it */
    ino_t ino;
} budget_t;

/* A job's provenance.json (report_cpu.c): its kind and cost. */
#define RP_MAX_PHASES 8
typedef struct {
    const char *dir, *job;
    double cpu_s, wall_s; /* NaN: no cost recorded */
    int nph;
    const char *phase[RP_MAX_PHASES];
    double phase_cpu[RP_MAX_PHASES];
} cost_t;

/* The setting a method reports on one forget split, and how it was chosen. */
typedef struct {
    const char *method, *split;
    int row;        /* report-phase row */
    int sel;        /* index into c->sel, -1: no selected.json */
    int same_seeds; /* 1: picked by the best rule on the seeds it reports */
} reported_t;

/* One paired comparison: methods a and b (reported_t indices) on one split. */
enum { CMP_FQ, CMP_GAP, CMP_REC, NCMP };
typedef struct {
    int a, b;
    int nseeds; /* seeds both have (each metric's own n leaves out its missing values) */
    stats_paired s[NCMP];
    double rec_k; /* relearn steps of the recovery; NaN: no curves */
} pair_t;

typedef struct { /* bench lines of one workload, layout and node count, averaged */
    int first;   /* a bench line of it */
    int n;
    double tps, ms, comm, bubble, gflops, pct_peak, eff, x;
    int mask; /* bit 0: dp > 1, bit 1: pp > 1, bit 2: tp > 1 */
} point_t;

typedef struct {
    int *pts, n, cap;
    int mask, workload; /* workload: index of the series' first workload */
} series_t;

typedef struct arena_blk {
    struct arena_blk *next;
    size_t used, cap;
    max_align_t data[];
} arena_blk;

typedef struct {
    const report_options *o;
    char *err;
    size_t errlen;
    jmp_buf jmp;
    arena_blk *arena;
    /* in-flight resources, released by report_run on any exit */
    char *text;
    cJSON *doc;
    FILE *f;
    char *tmp_path;
    DIR *dh;

    const char *dir, *out, *gnuplot;
    struct stat out_st;
    int have_out;
    struct {
        dev_t dev;
        ino_t ino;
    } * visited;
    int nvisited, capvisited;

    run_t *runs;
    int nruns, capruns;
    curve_t *curves;
    int ncurves, capcurves;
    bench_t *bench;
    int nbench, capbench;

    const char **hp; /* label columns other than method, split, seed (sorted) */
    int nhp, caphp;
    int *hp_const; /* (nhp) 1: one value shared by every run */
    row_t *rows;
    int nrows, caprows;
    int *order; /* rows in table order: the nrep report-phase rows, then the selection rows */
    int nrep;
    int *best; /* rows of the best-per-method table, in table order */
    int nbest;
    int nunmatched; /* curves with no evaluated setting */
    point_t *pts;
    int npts, cappts;
    series_t *series;
    int nseries, capseries;
    int x_nodes; /* scaling x axis: 1 nodes, 0 ranks */

    /* plots drawn, for results.md */
    const char **png;
    int npng, cappng;
    const char *no_fq_plot; /* why fq_vs_mu was not drawn, or NULL */

    /* honest comparisons (report_compare.c) */
    selected_t *sel;
    int nsel, capsel;
    budget_t *budgets;
    int nbudgets, capbudgets;
    cost_t *costs; /* every job folder's provenance.json */
    int ncosts, capcosts;
    reported_t *rep; /* per method and forget split, table order */
    int nrepm, caprepm;
    pair_t *pairs;
    int npairs, cappairs;
    int *on_front;   /* (nrows) 1 on its method's Pareto front (per split), 0 off, -1 not a front's
                        setting */
    double fq_floor; /* log10 FQ floor of fq_vs_mu; points below drawn at it */
    int nclipped;    /* runs drawn at the floor */
} ctx_t;

#define RESERVE(c, arr, n, cap)                                                                    \
    do {                                                                                           \
        if ((n) == (cap)) (arr) = rp_grow((c), (arr), &(cap), sizeof *(arr), (n));                 \
    } while (0)

/* The metric columns (CSV name, table title) and the Markov KL keys and titles. */
typedef struct {
    const char *csv, *md;
} rp_metric_name;
extern const rp_metric_name RP_METRIC[NMETRIC];
extern const char *const RP_KL_KEY[3];
extern const char *const RP_KL_TITLE[3];

/* Which label keys a comparison of two label sets leaves out. */
typedef int (*key_filter)(const char *key);

/* Shared by the parts (each defined in the file named below or in report.c). */

RP_NORETURN RP_PRINTF(3, 4) void rp_fail(ctx_t *c, int code, const char *fmt, ...);
void *rp_xalloc(ctx_t *c, size_t n);
void *rp_grow(ctx_t *c, void *arr, int *cap, size_t size, int n);
char *rp_xstrdup(ctx_t *c, const char *s);
RP_PRINTF(2, 3) char *rp_xsprintf(ctx_t *c, const char *fmt, ...);
char *rp_path_join(ctx_t *c, const char *dir, const char *name);
const lvalue *rp_lab_get(const labels *l, const char *key);
const char *rp_lab_str(const labels *l, const char *key);
int rp_lv_cmp(const lvalue *a, const lvalue *b);
void rp_lv_format(char *buf, size_t n, const lvalue *v);
void rp_sort_idx(ctx_t *c, int *idx, int n, int (*cmp)(ctx_t *, int, int));
double rp_efficiency(const ctx_t *c, const series_t *S, int j);
const char *rp_kind_name(int mask);
FILE *rp_out_open(ctx_t *c, const char *name);
void rp_note(ctx_t *c, const char *path);
void rp_out_close(ctx_t *c, const char *name);
int rp_run_gnuplot(ctx_t *c, const char *cwd, const char *log, const char *a1, const char *a2,
                   const char *a3);
void rp_plot_fq_vs_mu(ctx_t *c);
void rp_plot_relearn(ctx_t *c);
void rp_plot_markov(ctx_t *c);
void rp_write_scaling_plot(ctx_t *c);

/* report.c */
int rp_ign_none(const char *k);
int rp_ign_seed(const char *k);
int rp_ign_bench(const char *k);
int rp_labels_equal(const labels *a, key_filter fa, const labels *b, key_filter fb);
int rp_labels_within(const labels *a, key_filter fa, const labels *b);
char *rp_labels_text(ctx_t *c, const labels *l);
void rp_read_labels(ctx_t *c, const char *path, labels *out, int need_method);
/* report_read.c */
void rp_drop_doc(ctx_t *c);
const char *rp_describe(const cJSON *v);
cJSON *rp_load_json(ctx_t *c, const char *path);
const char *rp_get_str(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                       const char *key);
int rp_name_cmp(const void *a, const void *b);
int rp_visit(ctx_t *c, const struct stat *st);
void rp_walk(ctx_t *c, const char *dir, int depth);
/* report_read.c (shared readers) */
double rp_get_num(ctx_t *c, const char *where, const cJSON *obj, const char *pre, const char *key,
                  int required);
const cJSON *rp_get_obj(ctx_t *c, const char *where, const cJSON *obj, const char *pre,
                        const char *key, int required);
/* report_compare.c */
void rp_load_selected(ctx_t *c, const char *dir);
void rp_read_budgets(ctx_t *c);
void rp_compare(ctx_t *c);
double rp_log10_fq(const run_t *r);
double rp_row_log10_fq(const ctx_t *c, const row_t *w);
double rp_mu_threshold(const ctx_t *c, const char *split, double *tau);
double rp_origin_mu(const ctx_t *c, const char *split);
/* report_compare_md.c */
void rp_md_selection(ctx_t *c, FILE *f);
void rp_md_comparisons(ctx_t *c, FILE *f);
void rp_md_buckets(ctx_t *c, FILE *f);
/* report_cpu.c */
void rp_load_cost(ctx_t *c, const char *dir);
void rp_md_cpu(ctx_t *c, FILE *f);
/* report_compare_csv.c */
void rp_write_compare_csv(ctx_t *c);
/* report_write.c (shared by the Markdown writers) */
void rp_md_text(FILE *f, const char *s);
void rp_md_label_header(ctx_t *c, FILE *f, int *ncol);
void rp_md_label_cells(ctx_t *c, FILE *f, const row_t *w);
void rp_md_cell(FILE *f, double mean, double sd, int cnt, int nruns);
void rp_fmt_g(char *buf, size_t n, double v, int digits);
void rp_csv_field(FILE *f, const char *s, int first);
/* report_plot.c (shared by the plots) */
char *rp_gp_quote(ctx_t *c, const char *s);
void rp_dat_str(FILE *f, const char *s);
void rp_dat_num(FILE *f, double v);
void rp_gp_preamble(FILE *f, const char *name, const char *what, int w, int h);
void rp_draw(ctx_t *c, const char *name);
extern const int RP_POINT_TYPES[];
extern const int RP_NPT;
/* report_group.c */
void rp_group_runs(ctx_t *c);
void rp_pick_best(ctx_t *c);
void rp_group_bench(ctx_t *c);
/* report_write.c */
void rp_mkdirs(ctx_t *c, const char *path);
void rp_write_csv(ctx_t *c, const char *name, const int *rows, int n);
void rp_write_runs_csv(ctx_t *c);
void rp_write_results_md(ctx_t *c);
void rp_write_scaling_md(ctx_t *c);

#endif
