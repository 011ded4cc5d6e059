/* jobs/evaluate.h — distributed evaluation of one split, shared by `lethe eval`
 * and `lethe relearn`.
 *
 * Rows are spread over the dp replicas (loader slices, file order); each replica
 * runs them through its tp x pp model: answer NLL and per-token log-probs,
 * paraphrased and perturbed candidates, greedy generation (KV cache). The
 * per-sample values are gathered to world rank 0 in file order. */
#ifndef LETHE_EVALUATE_H
#define LETHE_EVALUATE_H

#include <cjson/cJSON.h>

#include "../io/results.h"
#include "../model/generate.h"
#include "jobs.h"

/* Per-sample values of one split (valid on world rank 0). */
typedef struct {
    char split[64];
    int64_t n;
    int has_cand, k, gen_cap;
    int64_t *sample_id;
    double *nll;                     /* token-mean NLL of the answer (+EOS) */
    double *prob;                    /* exp(-nll) */
    double *nll_para;                /* paraphrased answer (NAN without candidates) */
    double *nll_pert;                /* (n, k) perturbed answers */
    double *mink;                    /* Min-K% of the answer's per-token log-probs */
    double *rouge_recall, *rouge_f1; /* greedy answer vs reference (NAN if not generated) */
    int32_t *gen;                    /* (n, gen_cap) generated ids, gen_len valid */
    int32_t *gen_len;
} split_eval;

/* What eval_split does besides the NLLs: EVAL_GENERATE greedy generations and their
 * ROUGE-L; EVAL_MUSE_STOP that ROUGE-L on the generation cut at KnowMem's stop strings
 * (analysis/metrics_muse.h; with a tokenizer); EVAL_MUSE_MINK Min-K% as MUSE computes it
 * (the text's tokens without the closing EOS, m rounded down); EVAL_MUSE_VERB the
 * reference of the ROUGE-L cut to its first eval.max_new_tokens tokens (VerbMem). */
enum { EVAL_GENERATE = 1, EVAL_MUSE_STOP = 2, EVAL_MUSE_MINK = 4, EVAL_MUSE_VERB = 8 };

/* Evaluates `split` of data.path (at most max_rows rows; 0 = all). The model must
 * have been built for eval.batch_size x T of this dataset. tok may be NULL (then
 * ROUGE compares token ids). flags: EVAL_* above. Collective over the world. */
void eval_split(lethe_session *S, lethe_generator *gen, const void *tok, const char *split,
                int max_rows, int flags, split_eval *out);
void split_eval_free(split_eval *e);
/* The generator's batch for eval_split: eval.gen_batch, at most the rows a replica
 * evaluates at once (eval.batch_size / dp). */
int eval_gen_batch(const lethe_session *S);

/* Aggregates of a split (DESIGN §6). role: 0 forget, 1 retain, 2 utility, 3 other. */
typedef struct {
    double prob, rouge_recall, rouge_f1, truth_ratio, prob_norm;
} split_aggregate;
void eval_aggregate(const split_eval *e, int role, split_aggregate *a);
/* Truth ratios R_i = exp(mean_j nll_pert - nll_para) (trained = 0) or with the
 * answer's own NLL in place of the paraphrase (trained = 1), by metrics_truth_ratio
 * (analysis/metrics.h, the one implementation); NAN for a sample whose NLLs are not
 * all finite. r (n). The aggregates (eval_aggregate) are metrics_truth_ratio_forget
 * for role 0 and metrics_truth_ratio_other otherwise. */
void eval_truth_ratios(const split_eval *e, int trained, double *r);

/* Reads a 1-D float64 dataset of an eval.h5 (malloc'd, n in *n), or NULL + err. */
double *eval_read_ref(const char *path, const char *dset, int64_t *n, char *err, size_t errlen);
/* Two-sample KS p-value (NAN when a sample is empty); log10 of it in *log10p. */
double eval_ks_p(const double *a, int64_t na, const double *b, int64_t nb, double *log10p);

/* Difficulty buckets of a split (jobs/eval_buckets.c): the dataset's per-row
 * /<split>/bucket and its attribute bucket_names, read on rank 0 (b NULL when the split
 * has none; -1 + err when they are malformed); and summary.json's
 * splits.<split>.buckets.<name>.{n, prob, rouge_recall, rouge_f1, truth_ratio} for every
 * bucket name and every '_'-separated part of one (short_rare: short, rare). */
#define EVAL_MAX_BUCKETS 16
typedef struct {
    int32_t *b; /* (rows) index into names */
    int n_names;
    char names[EVAL_MAX_BUCKETS][48];
} split_buckets;
int eval_buckets_read(const char *path, const char *split, int64_t n, split_buckets *B, char *err,
                      size_t errlen);
void eval_buckets_free(split_buckets *B);
void eval_buckets_summary(cJSON *split_obj, const split_eval *e, int role, const split_buckets *B);

/* Markov-chain datasets (jobs/eval_markov.c): whether data.path is one (root
 * attribute synth_kind = "markov"), and the evaluation of a loaded model on it
 * (per-chain KL to the true transition matrices; writes eval.h5 and summary.json). */
int eval_is_markov(const char *path);
/* Whether data.path's root attribute attr is the string value (0 when unreadable). */
int eval_root_attr_is(const char *path, const char *attr, const char *value);
void eval_markov(lethe_session *S, const char *digest);

/* jobs/eval.c: one split's group of eval.h5 (its per-sample columns, truth ratios
 * included; B->b NULL: no buckets) through io/results.h; a column of split's group in a
 * reference eval.h5 (eval_read_ref), or NULL + err. */
void eval_write_split(results_writer *w, const split_eval *e, const split_buckets *B);
double *eval_read_ref_col(const char *rpath, const char *split, const char *col, int64_t *n,
                          char *err, size_t errlen);

/* eval.batch_size splits into dp replicas of whole micro-batches, or the job ends. */
void eval_check_batch(const lethe_session *S);

/* MUSE datasets (jobs/eval_muse.c): whether data.path is one (root attribute benchmark =
 * "muse", written by `prepare --muse`), and the whole evaluation of one: VerbMem, KnowMem
 * on forget and retain, the MIA AUC and PrivLeak against eval.reference (eval.h5 and
 * summary.json through io/results.h). */
int eval_is_muse(const char *path);
void eval_muse(lethe_session *S);

#endif
