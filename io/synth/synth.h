/* io/synth/synth.h — lethe's built-in benchmark data, generated deterministically from a seed.
 *
 * Everything is a function of the `synth` config section (seed included): the same
 * config gives byte-identical token content on any machine with IEEE doubles. Serial,
 * no MPI: the `synth` job generates on one rank and writes with the dataset writer.
 *
 * kind "authors" (TOFU-shaped). N training authors (ids 0..N-1) and H holdout authors
 * (ids N..N+H-1), each with 12 attributes: birth place (city, country), birth year,
 * genre, father's job, mother's job, award, first book, second book, home (city,
 * country), language, publisher, pastime. Question template j (j < Q) asks for
 * attribute j; each fact has an answer, a paraphrase (the same value in other words)
 * and K perturbed answers (the answer template with K distinct wrong values of the same
 * type, from the other authors' values or the value tables). Two utility families are
 * never forgotten: A "in which city is the <landmark>?" and B "what does the word <w>
 * mean?" (U facts each). Rows are prompt "[INST] <question> [/INST]" + answer + EOS,
 * tokenised with a word tokenizer whose vocabulary counts every text of every row of
 * every split (so `lethe prepare` of the JSON lines written beside the file builds the
 * same vocabulary and the same ids). Splits:
 *   forget01/05/10     QA rows (answer phrasing, paraphrased_* and perturbed_* candidates)
 *                      of authors 0..ceil(p*N/100)-1 (at least one author)
 *   retain99/95/90     the same for the other training authors
 *   holdout            the same for the H holdout authors (never trained on)
 *   eval/utility_a, eval/utility_b   the utility facts, QA rows with candidates
 *   train_full         every training author and question in both phrasings (answer
 *                      and paraphrase), plus both utility families in both phrasings
 *   train_retain01/05/10   train_full without the forget01/05/10 authors
 * sample_id encoding (stable across splits; phrasing p = 0 answer, 1 paraphrase):
 *   author a, question q:  (a * 64 + q) * 2 + p          (< 2^40)
 *   utility A fact i:      2^40 + i * 2 + p
 *   utility B fact i:      2^41 + i * 2 + p
 *
 * kind "markov" (the SimNPO paper's mixture of chains). S = 10 states (token ids 0..9),
 * BOS = 10, EOS = pad = 11 (vocab 12). Chain c (0 retain, 1 forget1, 2 forget2) owns
 * states {3c, 3c+1, 3c+2}; row s of its transition matrix puts (1 - leak) on the owned
 * states with seeded random weights and leak / 7 on each of the 7 other states (state 9
 * is owned by no chain); the initial distribution is (1 - leak) / 3 on each owned state
 * and leak / 7 on the others. A row is BOS s_1 .. s_L (no EOS: the chain has no end, as
 * in the paper), answer_start 1, L = markov_len_long (retain, forget1) or
 * markov_len_short (forget2). Splits: retain, forget1, forget2 (markov_retain rows each),
 * eval/retain, eval/forget1, eval/forget2 (max(1, markov_retain / 4) held-out rows each),
 * train_full (retain + forget1 + forget2 rows, in that order), train_retain (= retain),
 * forget (forget1 + forget2 rows: the forget set of an unlearning run).
 * /chains/{retain,forget1,forget2} float64 (S, S) and /chains/initial_{...} float64 (S)
 * hold the true distributions. sample_id = (c * 2 + part) * 2^32 + i, part 0 for the
 * training splits and 1 for eval.
 *
 * Root attributes: tokenizer ("word" | "none"), vocab_size, pad_id, eos_id,
 * source_digest ("fnv1a64:<hex>" of the generated texts, or of the chains and token
 * rows), synth_kind, synth_seed (uint64) and every synth_<key> the kind uses. */
#ifndef LETHE_SYNTH_H
#define LETHE_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "../config.h"
#include "../text/tokenizer.h"

#define SYNTH_N_ATTRIBUTES 12 /* question templates of the authors study */
#define SYNTH_MARKOV_STATES 10
#define SYNTH_MARKOV_BOS 10
#define SYNTH_MARKOV_EOS 11 /* also pad */
#define SYNTH_MARKOV_VOCAB 12

#define SYNTH_SID_UTILITY_A ((int64_t)1 << 40)
#define SYNTH_SID_UTILITY_B ((int64_t)1 << 41)

typedef enum { SYNTH_AUTHOR = 0, SYNTH_UTILITY_A = 1, SYNTH_UTILITY_B = 2 } synth_family;

typedef struct synth_data synth_data;

/* One generated fact (authors kind); strings belong to the synth_data. */
typedef struct {
    int64_t sample_id; /* of the answer phrasing; the paraphrase row has sample_id + 1 */
    synth_family family;
    int64_t owner;       /* author id (authors) or fact index (utility) */
    int question;        /* template index (authors), 0 for utility facts */
    const char *subject; /* author name, landmark or invented word */
    const char *question_text, *answer, *paraphrase;
    const char *const *perturbed; /* (K) */
    const char *value[2];         /* the value as it appears in answer and paraphrase;
                                     value[1] is the country of a place, else NULL */
    int bucket;                   /* synth.difficulty: SYNTH_BUCKET_*, else -1 */
    const char *tail; /* synth.difficulty: the words ending every candidate, else NULL */
} synth_fact;

/* synth.difficulty (authors): author fact (a, q) is in bucket (a + q) mod 4, which sets
 * the tail added to its answer, paraphrase and perturbed answers (the same tail, so the
 * candidates still differ in the value only): synth.tail_short or synth.tail_long words
 * (then "."), common words from a table of 16 or rare words invented for this fact
 * alone. QA author splits (forgetXX, retainXX, holdout) hold int32 /<split>/bucket per
 * row and the split attribute bucket_names; the root attributes synth_difficulty,
 * synth_tail_short and synth_tail_long record the setting. Off, nothing changes. */
enum { SYNTH_SHORT_COMMON, SYNTH_SHORT_RARE, SYNTH_LONG_COMMON, SYNTH_LONG_RARE };
#define SYNTH_BUCKET_NAMES "short_common,short_rare,long_common,long_rare"
#define SYNTH_N_COMMON_WORDS 16
extern const char *const SYNTH_COMMON_WORDS[SYNTH_N_COMMON_WORDS];

/* What was generated (and, after synth_write, written). */
typedef struct {
    const char *kind;
    int n_splits;
    const char *split[16]; /* group names */
    int64_t rows[16];      /* rows per split */
    int64_t total_rows;
    int64_t vocab_size;
    int max_len; /* the longest row, tokens (prompt + answer + EOS) */
    int seq_len; /* T */
    char source_digest[32];
    double gen_seconds;   /* synth_generate */
    double write_seconds; /* synth_write (0 before) */
    int64_t file_bytes;   /* the .h5 written (0 before) */
    int jsonl_files;      /* JSON-lines files written */
} synth_summary;

/* Validates the config against the kind (question count, K against the value tables,
 * row length against seq_len, ...) and generates the data in memory. Returns 0, or -1
 * with one line in err naming the key, its value and what was expected. */
int synth_generate(synth_data **out, const lethe_synth_config *c, char *err, size_t errlen);

/* Writes the HDF5 dataset c->output (temporary name, then rename) and, with
 * write_jsonl (authors), one "<output without .h5>.<split, '/' -> '_'>.jsonl" per split
 * with records {question, answer, [paraphrased_answer, perturbed_answer], sample_id}
 * (train splits: one record per row, the answer being that row's phrasing). 0 or -1. */
int synth_write(synth_data *d, char *err, size_t errlen);

void synth_get_summary(const synth_data *d, synth_summary *s);
void synth_free(synth_data *d);

/* Authors kind: facts in generation order (training authors by id and question, then
 * holdout authors, then utility A, then utility B) and the tokenizer. */
int64_t synth_n_facts(const synth_data *d);
void synth_get_fact(const synth_data *d, int64_t i, synth_fact *f);
const tokenizer *synth_tokenizer(const synth_data *d);
/* The JSON-lines path of a split ("forget05" -> "data/authors.forget05.jsonl"). */
void synth_jsonl_path(const char *output, const char *split, char *buf, size_t len);

/* Markov kind: the true transition matrix (S, S) and initial distribution (S) of
 * chain c (0 retain, 1 forget1, 2 forget2); NULL for another kind or c. */
const double *synth_markov_matrix(const synth_data *d, int c);
const double *synth_markov_initial(const synth_data *d, int c);

/* KL(p || q) of one position: sum_j p[j] (log p[j] - logq[j]) over the S states, terms
 * with p[j] = 0 omitted. logq holds the model's log-probabilities of the token ids
 * 0..S-1 (any tokens after them, such as BOS or EOS, are not read): mass the model puts
 * on tokens that are not states is not renormalised away, so it counts as error (the
 * sum is still >= 0, since the q over states sums to <= 1). */
double markov_kl_row(const double *p, const float *logq, int S);

/* Mean per-token KL between the true next-state distributions and a model's:
 *   (1/n_pos) sum_t KL(P_true[states[t], :] || exp(logp[t, 0..S-1]))
 * P_true (S, S) row-stochastic; logp (n_pos, ld) the model's next-token log-probs at
 * position t, which has just read state states[t] (ld >= S, the model's vocabulary).
 * For a markov row BOS s_1 .. s_L the positions holding s_1 .. s_{L-1} are the ones
 * to pass (the position of BOS predicts s_1: compare it with the initial distribution
 * via markov_kl_row). Returns 0 for n_pos = 0. A state outside [0, S) returns NaN. */
double markov_kl_per_token(const double *P_true, const float *logp, int ld, const int32_t *states,
                           int64_t n_pos, int S);

#endif
