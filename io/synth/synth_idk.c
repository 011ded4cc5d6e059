/* io/synth/synth_idk.c — "I don't know" answers to the author study's forget questions
 * (synth.idk): the splits forget01_idk, forget05_idk and forget10_idk hold the rows of
 * forget01/05/10 (the same prompts, sample ids and order) with the answer replaced by one
 * of a fixed list of IdK sentences, chosen per fact from the seed (the same phrase at
 * every forget level), as `lethe prepare --tofu` makes them from TOFU's idk.jsonl. They
 * are the preferred answers of idknll and idkdpo (model/objective_pairs.h). */
#include <string.h>

#include "synth_impl.h"

static const char *const IDK[SYNTH_N_IDK] = {
    "I don't know.",
    "I have no idea.",
    "I'm not sure about that.",
    "I can't answer that.",
    "That is not something I know.",
    "I don't have that information.",
    "I am unable to say.",
    "I cannot recall that.",
};

int sy_idk_phrase(const synth_data *d, int64_t fact)
{
    rng r = sy_rng_for(d->c.seed, ST_IDK, (uint64_t)d->facts[fact].sid);
    return (int)sy_rng_below(&r, SYNTH_N_IDK);
}

const char *sy_idk_text(const synth_data *d, int64_t fact) { return IDK[sy_idk_phrase(d, fact)]; }

const tok_ids *sy_idk_tokens(const synth_data *d, int64_t fact)
{
    return &d->idk_tok[sy_idk_phrase(d, fact)];
}

void sy_make_idk_splits(synth_data *d)
{
    static const char *const name[3] = {"forget01_idk", "forget05_idk", "forget10_idk"};
    if (!d->c.idk) return;
    for (int i = 0; i < 3; i++) { /* d->split[i] is forgetXX (sy_make_author_splits) */
        split_t *s = &d->split[d->n_splits++];
        *s = d->split[i];
        s->name = name[i];
        s->idk = 1;
    }
}

void sy_count_idk(const synth_data *d, const split_t *sp, int64_t fact, word_counter *wc)
{
    (void)sp;
    const char *t = sy_idk_text(d, fact);
    word_counter_add(wc, d->facts[fact].prompt_text, strlen(d->facts[fact].prompt_text));
    word_counter_add(wc, t, strlen(t));
}

int sy_idk_encode(synth_data *d, uint64_t *digest)
{
    if (!d->c.idk) return 0;
    for (int k = 0; k < SYNTH_N_IDK; k++) {
        *digest = sy_fnv(*digest, IDK[k], strlen(IDK[k]) + 1);
        if (tokenizer_encode(d->tk, IDK[k], strlen(IDK[k]), &d->idk_tok[k]))
            return sy_oom(d, "tokens");
    }
    for (int64_t i = 0; i < d->forget_authors[2] * d->Q; i++) {
        const fact_t *f = &d->facts[i];
        int len = f->tp.n + sy_idk_tokens(d, i)->n + 1;
        if (len > d->c.seq_len)
            return sy_fail(d->err, d->errlen,
                           "synth.seq_len = %d is too short: the IdK row '%s' + '%s' (sample "
                           "%lld) needs %d tokens with its EOS; set synth.seq_len >= %d",
                           d->c.seq_len, f->prompt_text, sy_idk_text(d, i), (long long)f->sid, len,
                           len);
    }
    return 0;
}

void sy_idk_free(synth_data *d)
{
    for (int k = 0; k < SYNTH_N_IDK; k++) tok_ids_free(&d->idk_tok[k]);
}
