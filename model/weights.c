/* model/weights.c — the model's tensors, registered from one static table.
 *
 * Each row of `tensors` names one tensor in the Hugging Face Llama layout, the stages
 * that hold it, the view of lethe_weights it fills, its global shape as dimensions of
 * the shape (C, heads x head width, MLP width, vocabulary), which dimension tensor
 * parallelism splits and whether AdamW decays it. The rows are registered in table
 * order, the per-layer rows once per layer of this stage, so the flat buffers, the
 * checkpoints and safetensors files see the tensors, their names and layouts as the
 * table lists them. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "../mpi/fatal.h"
#include "parts.h"

/* A dimension of a tensor, as a function of the shape (dim_of). */
typedef enum { D_ONE, D_C, D_Q, D_KV, D_FFN, D_V } tensor_dim;

/* Which ranks hold a tensor. */
typedef enum {
    ON_FIRST,     /* the first stage */
    ON_LAYER,     /* every layer of this stage ("%d" in the name: the global layer index) */
    ON_LAST,      /* the last stage */
    ON_UNTIED,    /* the last stage, embeddings not tied */
    ON_TIED_COPY, /* the last stage of pp > 1 with tied embeddings: a synchronized copy of
                     the first stage's embedding, not written by checkpoints (owner 0) */
} tensor_place;

typedef struct {
    const char *name;
    tensor_place on;
    size_t view;           /* offsetof the float * it fills: in lethe_layer_w for ON_LAYER,
                              in lethe_weights otherwise */
    tensor_dim rows, cols; /* cols D_ONE: a vector (ndim 1) */
    int split;             /* -1 replicated over tp, 0 rows split, 1 columns split */
    int decay;             /* AdamW weight decay applies */
} tensor_spec;

#define W(f) offsetof(lethe_weights, f)
#define LW(f) offsetof(lethe_layer_w, f)
static const tensor_spec tensors[] = {
    {"model.embed_tokens.weight", ON_FIRST, W(embed), D_V, D_C, 0, 1},
    {"model.layers.%d.input_layernorm.weight", ON_LAYER, LW(ln1), D_C, D_ONE, -1, 0},
    {"model.layers.%d.self_attn.q_proj.weight", ON_LAYER, LW(wq), D_Q, D_C, 0, 1},
    {"model.layers.%d.self_attn.k_proj.weight", ON_LAYER, LW(wk), D_KV, D_C, 0, 1},
    {"model.layers.%d.self_attn.v_proj.weight", ON_LAYER, LW(wv), D_KV, D_C, 0, 1},
    {"model.layers.%d.self_attn.o_proj.weight", ON_LAYER, LW(wo), D_C, D_Q, 1, 1},
    {"model.layers.%d.post_attention_layernorm.weight", ON_LAYER, LW(ln2), D_C, D_ONE, -1, 0},
    {"model.layers.%d.mlp.gate_proj.weight", ON_LAYER, LW(wg), D_FFN, D_C, 0, 1},
    {"model.layers.%d.mlp.up_proj.weight", ON_LAYER, LW(wu), D_FFN, D_C, 0, 1},
    {"model.layers.%d.mlp.down_proj.weight", ON_LAYER, LW(wd), D_C, D_FFN, 1, 1},
    {"model.norm.weight", ON_LAST, W(norm), D_C, D_ONE, -1, 0},
    {"lm_head.weight", ON_UNTIED, W(head), D_V, D_C, 0, 1},
    {"model.embed_tokens.weight", ON_TIED_COPY, W(head), D_V, D_C, 0, 1},
};
#undef W
#undef LW
#define NTENSORS (sizeof tensors / sizeof tensors[0])

static int64_t dim_of(const lethe_shape *s, tensor_dim d)
{
    switch (d) {
    case D_C: return s->C;
    case D_Q: return (int64_t)s->nh * s->hd;
    case D_KV: return (int64_t)s->nkv * s->hd;
    case D_FFN: return s->ffn;
    case D_V: return s->V;
    case D_ONE: break;
    }
    return 1;
}

static int held(const lethe_shape *s, tensor_place on)
{
    switch (on) {
    case ON_FIRST: return s->first;
    case ON_LAYER: return s->nl > 0;
    case ON_LAST: return s->last;
    case ON_UNTIED: return s->last && !s->cfg.tie_embeddings;
    case ON_TIED_COPY: return s->tied_copy;
    }
    return 0;
}

/* Registers row k of the table for global layer gl (ON_LAYER) and returns its index. */
static int add_tensor(lethe_params *t, const lethe_shape *s, const tensor_spec *ts, int gl)
{
    char nm[LETHE_NAME_MAX];
    snprintf(nm, sizeof nm, ts->name, gl);
    const lethe_grid *g = s->grid;
    int ndim = ts->cols == D_ONE ? 1 : 2;
    int pad_rows = ts->rows == D_V; /* the vocabulary is padded to a multiple of tp */
    return params_add(t, nm, ndim, dim_of(s, ts->rows), dim_of(s, ts->cols), ts->split, g->tp,
                      g->tp_rank, pad_rows, ts->decay, ts->on != ON_TIED_COPY);
}

static void set_view(void *views, size_t off, float *p)
{
    *(float **)((char *)views + off) = p;
}

/* One tensor this rank holds: table row k, for layer l of the stage (-1: not a layer's). */
typedef struct {
    int k, l, idx;
} held_tensor;

/* The tensors this rank holds, in registration order: the table's rows in turn, the
 * block of per-layer rows once per layer of the stage. Returns their count. */
static int held_tensors(const lethe_shape *s, held_tensor *out)
{
    int n = 0;
    for (int k = 0; k < (int)NTENSORS; k++) {
        if (tensors[k].on != ON_LAYER) {
            if (held(s, tensors[k].on)) out[n++] = (held_tensor){k, -1, -1};
            continue;
        }
        int k1 = k;
        while (k1 < (int)NTENSORS && tensors[k1].on == ON_LAYER) k1++;
        for (int l = 0; l < s->nl; l++)
            for (int j = k; j < k1; j++) out[n++] = (held_tensor){j, l, -1};
        k = k1 - 1;
    }
    return n;
}

void weights_create(lethe_weights *w, const lethe_shape *s)
{
    lethe_params *t = &w->params;
    params_init(t);
    held_tensor *h = lethe_malloc(sizeof(held_tensor) * NTENSORS * (size_t)(s->nl + 1), "tensors");
    int n = held_tensors(s, h);
    for (int i = 0; i < n; i++)
        h[i].idx = add_tensor(t, s, &tensors[h[i].k], s->layer0 + (h[i].l < 0 ? 0 : h[i].l));
    params_alloc(t);
    w->layer = lethe_calloc((size_t)(s->nl ? s->nl : 1), sizeof(lethe_layer_w), "layer views");
    for (int i = 0; i < n; i++) {
        float *p = t->data + t->p[h[i].idx].off;
        if (h[i].l >= 0)
            set_view(&w->layer[h[i].l], tensors[h[i].k].view, p);
        else
            set_view(w, tensors[h[i].k].view, p);
    }
    free(h);
    if (s->last && !w->head) w->head = w->embed; /* tied embeddings on one stage */
    w->embed_idx = params_find(t, "model.embed_tokens.weight"); /* once, not per step */
}

void weights_free(lethe_weights *w)
{
    free(w->layer);
    params_free(&w->params);
}

void model_init_weights(lethe_model *m)
{
    lethe_params *t = &m->w.params;
    for (int i = 0; i < t->n; i++) {
        if (t->p[i].ndim == 1)
            params_fill(t, i, 1.0f);
        else
            params_init_normal(t, i, m->shape.cfg.init_seed, m->shape.cfg.init_std);
    }
}
