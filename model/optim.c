/* model/optim.c — AdamW and the learning-rate schedule. */
#include "optim.h"

#include <math.h>

float lr_at(const lethe_optim_config *o, int step, int total)
{
    if (o->warmup_steps > 0 && step < o->warmup_steps)
        return o->lr * (float)(step + 1) / (float)o->warmup_steps;
    if (o->schedule == SCHEDULE_CONSTANT) return o->lr;
    int span = total - o->warmup_steps - 1;
    float frac = span > 0 ? (float)(step - o->warmup_steps) / (float)span : 1.0f;
    if (frac > 1.0f) frac = 1.0f;
    if (frac < 0.0f) frac = 0.0f;
    float decay = o->schedule == SCHEDULE_COSINE ? 0.5f * (1.0f + cosf(3.14159265358979f * frac))
                                                 : 1.0f - frac;
    return o->min_lr + (o->lr - o->min_lr) * decay;
}

float clip_scale(const lethe_optim_config *o, double norm)
{
    if (o->grad_clip <= 0.0f || norm <= o->grad_clip || !(norm > 0.0)) return 1.0f;
    return (float)(o->grad_clip / norm);
}

void adamw_range(lethe_params *t, const lethe_optim_config *o, float lr, int step,
                 float grad_scale, size_t lo, size_t hi)
{
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    const float c1 = 1.0f - powf(b1, (float)step), c2 = 1.0f - powf(b2, (float)step);
    for (int i = 0; i < t->n; i++) {
        const lethe_param *p = &t->p[i];
        size_t a, b;
        if (!params_overlap(p, lo, hi, &a, &b)) continue;
        float *w = t->data + a, *g = t->grad + a, *m = t->m + a, *v = t->v + a;
        float wd = p->decay ? o->weight_decay : 0.0f;
        const unsigned char *mk = t->mask ? t->mask + a : NULL;
        for (size_t k = 0; k < b - a; k++) {
            if (mk && !mk[k]) continue; /* WAGLE: outside the mask nothing moves */
            float gr = g[k] * grad_scale;
            m[k] = b1 * m[k] + (1.0f - b1) * gr;
            v[k] = b2 * v[k] + (1.0f - b2) * gr * gr;
            float mh = m[k] / c1, vh = v[k] / c2;
            w[k] -= lr * (mh / (sqrtf(vh) + eps) + wd * w[k]);
        }
    }
}
