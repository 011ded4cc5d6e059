/* model/tp_linear.c — column- and row-parallel linear layers; see tp_linear.h. */
#include "tp_linear.h"

#include <string.h>

#include "../mpi/comm.h"
#include "kernels.h"

void column_parallel_forward(float *const *out, const float *inp, const float *const *weight,
                             const tp_column *L, int N, int C)
{
    for (int i = 0; i < L->n; i++) matmul_forward(out[i], inp, weight[i], N, C, L->OC[i]);
}

void column_parallel_backward(float *dinp, float *const *dweight, const float *const *dout,
                              const float *inp, const float *const *weight, const tp_column *L,
                              int N, int C, MPI_Comm tp, comm_stats *st)
{
    memset(dinp, 0, sizeof(float) * (size_t)N * C);
    for (int i = 0; i < L->n; i++)
        matmul_backward(dinp, dweight[i], dout[i], inp, weight[i], N, C, L->OC[i]);
    comm_allreduce_sum(dinp, (size_t)N * C, tp, st);
}

void row_parallel_forward(float *out, const float *inp, const float *weight, int N, int C_l, int OC,
                          MPI_Comm tp, comm_stats *st)
{
    matmul_forward(out, inp, weight, N, C_l, OC);
    comm_allreduce_sum(out, (size_t)N * OC, tp, st);
}

void row_parallel_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, int N, int C_l, int OC)
{
    matmul_backward(dinp, dweight, dout, inp, weight, N, C_l, OC);
}
