/* tests/test_objectives.c — the objectives' scalar functions, and NPO's cached reference.
 *
 *   test_objectives unit
 *       forget_loss of every method: dl/ds against central finite differences of l
 *       (relative 1e-6, in double), the written formulas at chosen points, finite values
 *       far in the sigmoid's tails (|x| up to 1e4), and unlearn_objective_seq's weights
 *       and bookkeeping (forget: c_f/n_forget * dl/ds; retain: -c_r/retain_tokens, none
 *       for ga; loss_forget + loss_retain = the sum of the returned contributions).
 *
 *   mpirun -n 1 test_objectives npo-cache UNLEARN_DIR
 *       UNLEARN_DIR is the output folder of `lethe unlearn` with method npo. Its resolved
 *       config.json names the dataset, the forget split and init.checkpoint. This program
 *       reads the forget split with plain HDF5 (not the loader), builds the targets from
 *       the schema (ids[t+1] where answer_start <= t+1 < length), loads the initial
 *       checkpoint into a 1-rank model and runs model_forward over every row. Asserts:
 *       npo_reference.jsonl holds every sample id of the split exactly once, with
 *       tokens = the row's target count and |s_ref - s| <= 1e-5 |s| (float32 sums of a
 *       few dozen log-probabilities computed in different batch compositions agree to
 *       about 1e-7; the file prints 9 significant digits); and the job's first step,
 *       taken at the initial weights, saw s = s_ref for every forget row it drew by id:
 *       unlearn_log.jsonl step 1 has sigma = 0.5 and forget_loss = c_f (2/beta) log 2
 *       (to 1e-5: the log prints 6 decimals). */
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/checkpoint.h"
#include "../io/config.h"
#include "../io/dataset.h"
#include "../model/objectives.h"
#include "../model/transformer.h"
#include "../mpi/comm.h"
#include "../mpi/fatal.h"
#include "../mpi/grid.h"

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ---- unit ------------------------------------------------------------------------- */

static double log_sigmoid_ref(double z)
{
    return -log1p(exp(-z));
}

static void unit(void)
{
    const lethe_method ms[] = {METHOD_GA, METHOD_GRADDIFF, METHOD_NPO, METHOD_SIMNPO};
    const double betas[] = {0.1, 2.5, 4.5}, gammas[] = {0.0, 0.5, -0.3};
    const double ss[] = {-80.0, -12.5, -3.0, -0.4, -0.01}, ns[] = {1, 7, 23};
    double worst_fd = 0;
    for (int mi = 0; mi < 4; mi++)
        for (int bi = 0; bi < 3; bi++)
            for (int gi = 0; gi < 3; gi++)
                for (int si = 0; si < 5; si++)
                    for (int ni = 0; ni < 3; ni++) {
                        lethe_method m = ms[mi];
                        double beta = betas[bi], gamma = gammas[gi], s = ss[si], n = ns[ni];
                        double s_ref = s * 1.3 + 0.7; /* NPO: s - s_ref of either sign */
                        double dl, sig, dl2, sig2;
                        double l = forget_loss(m, beta, gamma, s, n, s_ref, &dl, &sig);
                        /* the written formula (DESIGN §3) */
                        double want, want_sig;
                        if (m == METHOD_GA || m == METHOD_GRADDIFF) {
                            want = s / n;
                            want_sig = 1.0;
                        } else if (m == METHOD_NPO) {
                            want = -(2.0 / beta) * log_sigmoid_ref(-beta * (s - s_ref));
                            want_sig = 1.0 / (1.0 + exp(-beta * (s - s_ref)));
                        } else {
                            want = -(2.0 / beta) * log_sigmoid_ref(-(beta / n) * s - gamma);
                            want_sig = 1.0 / (1.0 + exp(-((beta / n) * s + gamma)));
                        }
                        EXPECT(fabs(l - want) <= 1e-12 * fmax(1.0, fabs(want)),
                               "%s beta %g gamma %g s %g n %g: l = %.17g, formula %.17g",
                               method_name(m), beta, gamma, s, n, l, want);
                        EXPECT(fabs(sig - want_sig) <= 1e-12, "%s: sigma %.17g, expected %.17g",
                               method_name(m), sig, want_sig);
                        double h = 1e-5 * fmax(1.0, fabs(s));
                        double lp = forget_loss(m, beta, gamma, s + h, n, s_ref, &dl2, &sig2);
                        double lm = forget_loss(m, beta, gamma, s - h, n, s_ref, &dl2, &sig2);
                        double fd = (lp - lm) / (2 * h);
                        double e = fabs(dl - fd) / fmax(fabs(fd), 1e-12);
                        if (e > worst_fd) worst_fd = e;
                        EXPECT(e <= 1e-6,
                               "%s beta %g gamma %g s %g n %g: dl/ds %.12g, finite "
                               "difference %.12g",
                               method_name(m), beta, gamma, s, n, dl, fd);
                    }
    /* the sigmoid's tails: finite losses and weights, the right limits */
    for (int mi = 2; mi < 4; mi++)
        for (int sign = -1; sign <= 1; sign += 2) {
            double dl, sig;
            double s = sign * 5000.0, beta = 2.0;
            double l = forget_loss(ms[mi], beta, 0.0, s, 1.0, 0.0, &dl, &sig);
            EXPECT(isfinite(l) && isfinite(dl) && isfinite(sig),
                   "%s at beta s = %g: l %g dl/ds %g sigma %g", method_name(ms[mi]), beta * s, l,
                   dl, sig);
            /* x -> +inf: l ~ (2/beta) x, weight -> 2 (per token); x -> -inf: l, weight -> 0 */
            if (sign > 0)
                EXPECT(fabs(l - 2.0 * s) <= 1e-9 * fabs(2.0 * s) && fabs(dl - 2.0) < 1e-12,
                       "%s far tail: l %.17g (expected %.17g), dl/ds %.17g", method_name(ms[mi]), l,
                       2.0 * s, dl);
            else
                EXPECT(l >= 0 && l < 1e-300 && dl < 1e-300, "%s near tail: l %g dl/ds %g",
                       method_name(ms[mi]), l, dl);
        }
    /* the per-sequence callback, on a 3-forget + 2-retain batch */
    for (int mi = 0; mi < 4; mi++) {
        unsigned char isf[5] = {1, 1, 1, 0, 0};
        double s_ref[5] = {-3, -5, -2, 0, 0}, s[5] = {-2.5, -6.0, -1.0, -9.0, -4.0},
               n[5] = {3, 7, 2, 8, 5};
        unlearn_ctx c = {.method = ms[mi],
                         .beta = 2.5,
                         .gamma = 0.5,
                         .c_f = 0.3,
                         .c_r = 1.7,
                         .is_forget = isf,
                         .s_ref = s_ref,
                         .n_forget = 6,
                         .retain_tokens = 26};
        lethe_objective o = unlearn_objective(&c);
        double total = 0, sig_sum = 0;
        for (int b = 0; b < 5; b++) {
            double w = 123, dl, sig;
            double l = unlearn_objective_seq(&o, b, s[b], n[b], &w);
            total += l;
            if (isf[b]) {
                double lf = forget_loss(ms[mi], 2.5, 0.5, s[b], n[b], s_ref[b], &dl, &sig);
                sig_sum += sig;
                EXPECT(fabs(l - 0.3 / 6 * lf) <= 1e-15 && fabs(w - 0.3 / 6 * dl) <= 1e-15,
                       "%s forget row %d: l %g w %g, expected %g %g", method_name(ms[mi]), b, l, w,
                       0.3 / 6 * lf, 0.3 / 6 * dl);
            } else if (ms[mi] == METHOD_GA) {
                EXPECT(l == 0 && w == 0, "ga retain row %d: l %g w %g, expected 0 0", b, l, w);
            } else {
                EXPECT(fabs(l - (-1.7 / 26 * s[b])) <= 1e-15 && fabs(w + 1.7 / 26) <= 1e-15,
                       "%s retain row %d: l %g w %g, expected %g %g", method_name(ms[mi]), b, l, w,
                       -1.7 / 26 * s[b], -1.7 / 26);
            }
        }
        EXPECT(fabs(c.loss_forget + c.loss_retain - total) <= 1e-14,
               "%s: loss_forget %g + loss_retain %g != sum of contributions %g",
               method_name(ms[mi]), c.loss_forget, c.loss_retain, total);
        EXPECT(fabs(c.sigma_sum - sig_sum) <= 1e-14, "%s: sigma_sum %g, expected %g",
               method_name(ms[mi]), c.sigma_sum, sig_sum);
    }
    /* the name in messages is the one the config turns into the method */
    for (int mi = 0; mi < 4; mi++) {
        lethe_config cfg;
        char set[64], err[1024] = "", *o[] = {set};
        snprintf(set, sizeof set, "unlearn.method=%s", method_name(ms[mi]));
        EXPECT(config_parse(&cfg, "{}", "m.json", o, 1, err, sizeof err) == 0 &&
                   cfg.unlearn.method == ms[mi],
               "method name round trip %s: %s", set, err);
    }
    printf("test_objectives unit: forget_loss and unlearn_objective_seq, worst dl/ds vs finite "
           "differences %.3e (tolerance 1e-6)\n",
           worst_fd);
}

/* ---- npo-cache ------------------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) lethe_fatal("npo-cache: cannot open '%s'", path);
    if (fseek(f, 0, SEEK_END)) lethe_fatal("npo-cache: cannot seek '%s'", path);
    long len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET)) lethe_fatal("npo-cache: cannot size '%s'", path);
    char *buf = lethe_malloc((size_t)len + 1, "file");
    if (fread(buf, 1, (size_t)len, f) != (size_t)len)
        lethe_fatal("npo-cache: cannot read '%s'", path);
    buf[len] = 0;
    fclose(f);
    return buf;
}

static void read_ds(hid_t file, const char *split, const char *name, hid_t type, void *out,
                    const char *path)
{
    char dname[600];
    snprintf(dname, sizeof dname, "%s/%s", split, name);
    hid_t d = H5Dopen2(file, dname, H5P_DEFAULT);
    if (d < 0) lethe_fatal("npo-cache: '%s': cannot open dataset '%s'", path, dname);
    if (H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        lethe_fatal("npo-cache: '%s': cannot read dataset '%s'", path, dname);
    H5Dclose(d);
}

static double json_num(const cJSON *o, const char *key, const char *where)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) lethe_fatal("npo-cache: %s: no number '%s'", where, key);
    return v->valuedouble;
}

static void npo_cache(const char *dir)
{
    char err[1024], path[1200];
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, 1, 1, 1, err, sizeof err))
        lethe_fatal("npo-cache runs on 1 rank: %s", err);
    fatal_set_grid(&g);

    lethe_config cfg;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_load(&cfg, path, NULL, 0, err, sizeof err)) lethe_fatal("npo-cache: %s", err);
    if (cfg.unlearn.method != METHOD_NPO)
        lethe_fatal("npo-cache: '%s' is an unlearn run of method '%s', expected npo", path,
                    method_name(cfg.unlearn.method));
    if (!cfg.init.checkpoint[0])
        lethe_fatal("npo-cache: '%s' has no init.checkpoint (the test compares with one)", path);

    /* the forget split, read with plain HDF5 */
    dataset_info info;
    if (dataset_inspect(&info, cfg.data.path, cfg.data.forget_split, DATASET_CHECK_IDS, 0, err,
                        sizeof err))
        lethe_fatal("npo-cache: %s", err);
    int64_t N = info.n;
    int T = info.t;
    int32_t *ids = lethe_malloc(sizeof(int32_t) * (size_t)N * T, "ids");
    int32_t *len = lethe_malloc(sizeof(int32_t) * (size_t)N, "lengths");
    int32_t *ans = lethe_malloc(sizeof(int32_t) * (size_t)N, "answer starts");
    int64_t *sid = lethe_malloc(sizeof(int64_t) * (size_t)N, "sample ids");
    hid_t f = H5Fopen(cfg.data.path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) lethe_fatal("npo-cache: cannot open '%s'", cfg.data.path);
    read_ds(f, info.split, "input_ids", H5T_NATIVE_INT32, ids, cfg.data.path);
    read_ds(f, info.split, "lengths", H5T_NATIVE_INT32, len, cfg.data.path);
    read_ds(f, info.split, "answer_start", H5T_NATIVE_INT32, ans, cfg.data.path);
    read_ds(f, info.split, "sample_id", H5T_NATIVE_INT64, sid, cfg.data.path);
    H5Fclose(f);

    /* the initial model, on one rank */
    const int Bm = 4;
    lethe_model m;
    if (model_check_layout(&cfg.model, 1, 1, 1, Bm, 1, T, err, sizeof err))
        lethe_fatal("npo-cache: %s", err);
    model_create(&m, &cfg.model, &g, Bm, T, 1);
    model_init_weights(&m);
    if (ckpt_load(cfg.init.checkpoint, &m.w.params, &g, NULL, 0, err, sizeof err))
        lethe_fatal("npo-cache: %s", err);
    double *s = lethe_malloc(sizeof(double) * (size_t)N, "s"),
           *n = lethe_malloc(sizeof(double) * (size_t)N, "n");
    int *tok = lethe_malloc(sizeof(int) * (size_t)Bm * T, "tokens"),
        *tg = lethe_malloc(sizeof(int) * (size_t)Bm * T, "targets");
    double bs[4], bn[4];
    for (int64_t r0 = 0; r0 < N; r0 += Bm) {
        for (int i = 0; i < Bm; i++)
            for (int t = 0; t < T; t++) {
                int64_t r = r0 + i;
                size_t k = (size_t)i * T + t;
                tok[k] = r < N ? ids[(size_t)r * T + t] : 0;
                tg[k] =
                    r < N && t + 1 >= ans[r] && t + 1 < len[r] ? ids[(size_t)r * T + t + 1] : -1;
            }
        lethe_batch b = {Bm, T, tok, tg, NULL, NULL};
        model_forward(&m, &b, bs, bn, NULL);
        for (int i = 0; i < Bm && r0 + i < N; i++) {
            s[r0 + i] = bs[i];
            n[r0 + i] = bn[i];
        }
    }

    /* the job's cache */
    snprintf(path, sizeof path, "%s/npo_reference.jsonl", dir);
    char *text = read_text(path);
    int *seen = lethe_calloc((size_t)N, sizeof(int), "seen");
    int64_t lines = 0;
    double worst = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char where[1300];
        snprintf(where, sizeof where, "'%s' line %lld", path, (long long)lines + 1);
        cJSON *o = cJSON_Parse(line);
        if (!o) lethe_fatal("npo-cache: %s: not JSON", where);
        int64_t id = (int64_t)json_num(o, "sample_id", where);
        double s_ref = json_num(o, "s_ref", where), cnt = json_num(o, "tokens", where);
        cJSON_Delete(o);
        lines++;
        int64_t r = -1;
        for (int64_t i = 0; i < N; i++)
            if (sid[i] == id) r = i;
        EXPECT(r >= 0, "%s: sample_id %lld is not in split '%s'", where, (long long)id,
               cfg.data.forget_split);
        if (r < 0) continue;
        seen[r]++;
        double e = fabs(s_ref - s[r]) / fabs(s[r]);
        if (e > worst) worst = e;
        EXPECT(cnt == n[r], "%s: sample %lld: tokens %g, the row has %g targets", where,
               (long long)id, cnt, n[r]);
        EXPECT(e <= 1e-5,
               "%s: sample %lld: s_ref %.9g, fresh forward of the initial model %.9g "
               "(relative %.3e)",
               where, (long long)id, s_ref, s[r], e);
    }
    for (int64_t i = 0; i < N; i++)
        EXPECT(seen[i] == 1, "'%s': sample_id %lld (row %lld) appears %d times, expected once",
               path, (long long)sid[i], (long long)i, seen[i]);
    printf("npo-cache: %lld references of split '%s' (%lld rows) against a fresh forward of '%s': "
           "worst relative difference %.3e (tolerance 1e-5)\n",
           (long long)lines, cfg.data.forget_split, (long long)N, cfg.init.checkpoint, worst);

    /* the first step ran at the initial weights: every forget row it drew had s = s_ref */
    snprintf(path, sizeof path, "%s/unlearn_log.jsonl", dir);
    char *logtext = read_text(path);
    char *nl = strchr(logtext, '\n');
    if (nl) *nl = 0;
    cJSON *o = cJSON_Parse(logtext);
    if (!o) lethe_fatal("npo-cache: '%s': first line is not JSON", path);
    double step = json_num(o, "step", path), sigma = json_num(o, "sigma", path),
           lf = json_num(o, "forget_loss", path);
    cJSON_Delete(o);
    double want = cfg.unlearn.c_f * 2.0 / cfg.unlearn.beta * log(2.0);
    EXPECT(step == 1, "'%s': first line is step %g", path, step);
    EXPECT(fabs(sigma - 0.5) <= 1e-5, "'%s' step 1: sigma %.6f, expected 0.5 (s = s_ref)", path,
           sigma);
    EXPECT(fabs(lf - want) <= 1e-5 * want,
           "'%s' step 1: forget_loss %.6f, expected c_f (2/beta) "
           "log 2 = %.6f",
           path, lf, want);
    printf("npo-cache: step 1 of the job: sigma %.6f, forget loss %.6f (c_f (2/beta) log 2 = "
           "%.6f)\n",
           sigma, lf, want);

    free(logtext);
    free(text);
    free(seen);
    free(s);
    free(n);
    free(tok);
    free(tg);
    free(ids);
    free(len);
    free(ans);
    free(sid);
    model_free(&m);
    fatal_set_grid(NULL);
    grid_free(&g);
}

int main(int argc, char **argv)
{
    comm_init(&argc, &argv);
    if (argc == 2 && !strcmp(argv[1], "unit"))
        unit();
    else if (argc == 3 && !strcmp(argv[1], "npo-cache"))
        npo_cache(argv[2]);
    else
        lethe_fatal("usage: test_objectives unit | test_objectives npo-cache UNLEARN_DIR");
    if (failures)
        printf("test_objectives %s: %d failure(s)\n", argv[1], failures);
    else
        printf("test_objectives %s: PASS\n", argv[1]);
    MPI_Finalize();
    return failures ? 1 : 0;
}
