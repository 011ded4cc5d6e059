/* tests/hf_logits.c — the log-softmax of a lethe checkpoint's model over a token batch, at
 * any layout, for tests/torch_hf.py to compare with its own Llama.
 *
 *   mpirun -n N hf_logits CKPT.h5 TOKENS.safetensors OUT.safetensors [--set key=value ...]
 *
 * The model (and everything else) is the checkpoint's stored config (/meta/config), with
 * the --set overrides applied (layout.pp=2 layout.tp=2 ...); the weights are loaded with
 * ckpt_load, as a job loads init.checkpoint. TOKENS holds "tokens" (B, T) I32. The last
 * pipeline stage's ranks of the first replica compute log-softmax (model_forward_logsoftmax)
 * over their vocabulary shards and send them to world rank 0, which writes "logp"
 * (B*T, V) F32 to OUT. Exit 1 with one line on any error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "mpi/fatal.h"
#include "mpi/grid.h"

static int *read_tokens(const char *path, int *B, int *T)
{
    char err[1024];
    st_file *st = st_open(path, err, sizeof err);
    if (!st) lethe_fatal("hf_logits: %s", err);
    int i = st_find(st, "tokens");
    if (i < 0 || st->t[i].ndim != 2 || st->t[i].dtype != ST_I32)
        lethe_fatal("hf_logits: '%s' has no (B, T) I32 tensor 'tokens'", path);
    *B = (int)st->t[i].shape[0];
    *T = (int)st->t[i].shape[1];
    int *tok = lethe_malloc(sizeof(int) * (size_t)(*B * *T), "tokens");
    if (st_read_i32(st, i, tok, (size_t)(*B * *T), err, sizeof err))
        lethe_fatal("hf_logits: %s", err);
    st_close(st);
    return tok;
}

/* The last stage's shards (first replica) to world rank 0, rows (B*T) of V columns. */
static float *gather_logp(const lethe_model *m, const float *mine, int N)
{
    const lethe_grid *g = m->shape.grid;
    const lethe_shape *s = &m->shape;
    int send = s->last && g->dp_rank == 0;
    int hdr[3] = {s->v0, s->v_valid, s->v_l}, n_senders = 0;
    MPI_CHECK(MPI_Allreduce(&send, &n_senders, 1, MPI_INT, MPI_SUM, g->world));
    float *all = NULL;
    MPI_Request rq[2];
    if (send) {
        MPI_CHECK(MPI_Isend(hdr, 3, MPI_INT, 0, 1, g->world, &rq[0]));
        MPI_CHECK(MPI_Isend(mine, N * s->v_l, MPI_FLOAT, 0, 2, g->world, &rq[1]));
    }
    if (g->rank == 0) {
        all = lethe_calloc((size_t)N * (size_t)s->V, sizeof(float), "logp");
        for (int k = 0; k < n_senders; k++) {
            MPI_Status st;
            int h[3];
            MPI_CHECK(MPI_Recv(h, 3, MPI_INT, MPI_ANY_SOURCE, 1, g->world, &st));
            float *buf = lethe_malloc(sizeof(float) * (size_t)N * (size_t)h[2], "logp shard");
            MPI_CHECK(MPI_Recv(buf, N * h[2], MPI_FLOAT, st.MPI_SOURCE, 2, g->world,
                               MPI_STATUS_IGNORE));
            for (int r = 0; r < N; r++)
                memcpy(all + (size_t)r * s->V + h[0], buf + (size_t)r * h[2],
                       sizeof(float) * (size_t)h[1]);
            free(buf);
        }
    }
    if (send) MPI_CHECK(MPI_Waitall(2, rq, MPI_STATUSES_IGNORE));
    return all;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (argc < 4) lethe_fatal("usage: hf_logits CKPT TOKENS OUT [--set key=value ...]");
    char err[1024] = "", *stored = NULL, *over[16];
    int nover = 0;
    for (int i = 4; i + 1 < argc && nover < 16; i += 2) over[nover++] = argv[i + 1];
    if (ckpt_read_config(argv[1], MPI_COMM_WORLD, &stored, err, sizeof err))
        lethe_fatal("hf_logits: %s", err);
    lethe_config cfg;
    if (config_parse(&cfg, stored, argv[1], over, nover, err, sizeof err))
        lethe_fatal("hf_logits: %s", err);
    lethe_grid g;
    if (grid_create(&g, MPI_COMM_WORLD, cfg.layout.dp, cfg.layout.pp, cfg.layout.tp, err,
                    sizeof err))
        lethe_fatal("hf_logits: %s", err);
    int B, T;
    int *tok = read_tokens(argv[2], &B, &T);
    int *tgt = lethe_malloc(sizeof(int) * (size_t)(B * T), "targets");
    for (int i = 0; i < B * T; i++) tgt[i] = (i + 1) % T ? tok[i + 1] : -1;
    lethe_model m;
    model_create(&m, &cfg.model, &g, B, T, 1);
    lethe_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    char *expect = config_to_json(&cfg);
    meta.expect_config = expect;
    if (ckpt_load(argv[1], &m.w.params, &g, &meta, 0, err, sizeof err))
        lethe_fatal("hf_logits: %s", err);
    free(expect);
    ckpt_meta_free(&meta);
    lethe_batch b = {.B = B, .T = T, .tokens = tok, .targets = tgt};
    float *mine = lethe_calloc((size_t)(B * T) * (size_t)m.shape.v_l, sizeof(float), "logp");
    double *negent = lethe_calloc((size_t)B, sizeof(double), "negent");
    model_forward_logsoftmax(&m, &b, mine, negent, NULL);
    float *all = gather_logp(&m, mine, B * T);
    if (g.rank == 0) {
        const char *names[1] = {"logp"};
        int nd[1] = {2};
        int64_t shp[2] = {B * T, m.shape.V};
        const int64_t *shapes[1] = {shp};
        const float *datas[1] = {all};
        if (st_write(argv[3], 1, names, nd, shapes, datas, NULL, err, sizeof err))
            lethe_fatal("hf_logits: %s", err);
    }
    free(all);
    free(mine);
    free(negent);
    free(tok);
    free(tgt);
    free(stored);
    model_free(&m);
    grid_free(&g);
    MPI_Finalize();
    return 0;
}
