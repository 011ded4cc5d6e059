# Collective HDF5 checkpoints (io/checkpoint.c, tests/test_checkpoint*.c):
# checkpoint.reshard saves under every dp x pp x tp layout of the world and loads under
# others (and across world sizes), bitwise; plus every bad file a user can hand it
# (missing, not HDF5, truncated, missing dataset, wrong shape or dtype, corrupt data),
# each the same error on every rank. checkpoint.atomic (serial, no mpirun: it forks
# children before MPI_Init) shows that failed or killed saves leave the previous
# checkpoint untouched. WAGLE's mask (/wagle_mask, tests/test_checkpoint_mask.c) reshards
# with the weights, and a flipped byte of it fails the load and ckpt_verify.
lethe_test_exe(test_checkpoint test_checkpoint.c test_checkpoint_errors.c test_checkpoint_atomic.c
  test_checkpoint_mask.c)
lethe_mpi_test(NAME checkpoint.reshard COMMAND $<TARGET_FILE:test_checkpoint> RANKS 1 2 4 8
               TIMEOUT 450)
lethe_test(NAME checkpoint.atomic
  COMMAND $<TARGET_FILE:test_checkpoint> --atomic ${CMAKE_CURRENT_BINARY_DIR} TIMEOUT 120)

# Not a test: write/read bandwidth of a 256 MiB table against a plain sequential write,
#   mpirun -n 2 build/tests/bench_checkpoint [MiB] [dir]
lethe_test_exe(bench_checkpoint bench_checkpoint.c)
