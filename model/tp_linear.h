/* model/tp_linear.h — tensor-parallel linear layers (Megatron's names).
 *
 * A column-parallel linear holds rows [r*OC/tp, (r+1)*OC/tp) of a weight (OC, C):
 * it reads the full (replicated) input and writes its slice of the output, so its
 * forward needs no communication; its input gradient is a partial sum over the tp
 * ranks and its backward all-reduces it over tp. A row-parallel linear holds
 * columns of a weight: it reads its slice of the input and writes a partial
 * output, so its forward all-reduces the output over tp; its input gradient is
 * already its own slice, so its backward needs no communication.
 *
 * The column-parallel layer takes several weights that share one input (q, k, v;
 * gate, up), as Megatron fuses them: their input gradients are summed before one
 * all-reduce. Weight gradients accumulate (+=) as in model/kernels.h. */
#ifndef LETHE_TP_LINEAR_H
#define LETHE_TP_LINEAR_H

#include <mpi.h>

#include "../mpi/comm.h"

#define TP_LINEAR_MAX_PARTS 3

/* Shape of a column-parallel layer: n weights (OC[i], C) over one input (N, C). */
typedef struct {
    int n;
    int OC[TP_LINEAR_MAX_PARTS];
} tp_column;

/* out[i] (N, OC[i]) = inp (N, C) @ weight[i]^T.  No communication. */
void column_parallel_forward(float *const *out, const float *inp, const float *const *weight,
                             const tp_column *L, int N, int C);
/* dinp (N, C) = sum over i and over the tp ranks of dout[i] @ weight[i] (overwritten,
 * then all-reduced over tp); dweight[i] += dout[i]^T @ inp. */
void column_parallel_backward(float *dinp, float *const *dweight, const float *const *dout,
                              const float *inp, const float *const *weight, const tp_column *L,
                              int N, int C, MPI_Comm tp, comm_stats *st);

/* out (N, OC) = sum over the tp ranks of inp (N, C_l) @ weight (OC, C_l)^T
 * (overwritten, then all-reduced over tp). */
void row_parallel_forward(float *out, const float *inp, const float *weight, int N, int C_l, int OC,
                          MPI_Comm tp, comm_stats *st);
/* dinp (N, C_l) += dout (N, OC) @ weight;  dweight += dout^T @ inp.  No communication. */
void row_parallel_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, int N, int C_l, int OC);

#endif
