/* model/parts.h — internal: building the parts of lethe_model that model_create puts
 * together after it has worked out the shape: the weights (model/weights.c, from the
 * static tensor table) and the workspace (model/workspace.c, sized and carved in one
 * pass). Not for jobs. */
#ifndef LETHE_PARTS_H
#define LETHE_PARTS_H

#include "transformer.h"

/* Registers this rank's tensors, allocates the parameter buffers and points the views. */
void weights_create(lethe_weights *w, const lethe_shape *s);
void weights_free(lethe_weights *w);

/* Sizes every buffer of a step for the shape, allocates them as one block and carves it
 * (zeroed; requests null; RoPE tables filled). */
void workspace_create(lethe_workspace *ws, const lethe_shape *s);
void workspace_free(lethe_workspace *ws);

#endif
