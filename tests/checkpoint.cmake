# Collective HDF5 checkpoints (io/checkpoint.c, tests/test_checkpoint*.c):
# checkpoint.reshard saves under every dp x pp x tp layout of the world and loads under
# others (and across world sizes), bitwise; plus every bad file a user can hand it
# (missing, not HDF5, truncated, missing dataset, wrong shape or dtype, corrupt data),
# each the same error on every rank. checkpoint.atomic (serial, no mpirun: it forks
# children before MPI_Init) shows that failed or killed saves leave the previous
# checkpoint untouched. WAGLE's mask (/wagle_mask, tests/test_checkpoint_mask.c) reshards
# with the weights, and a flipped byte of it fails the load and ckpt_verify.
lethe_test_exe(test_checkpoint test_checkpoint.c test_checkpoint_errors.c test_checkpoint_atomic.c
  test_checkpoint_mask.c test_checkpoint_digest.c)
lethe_mpi_test(NAME checkpoint.reshard COMMAND $<TARGET_FILE:test_checkpoint> RANKS 1 2 4 8
               TIMEOUT 450)
lethe_test(NAME checkpoint.atomic
  COMMAND $<TARGET_FILE:test_checkpoint> --atomic ${CMAKE_CURRENT_BINARY_DIR} TIMEOUT 120)

# Not a test: write/read bandwidth of a 256 MiB table against a plain sequential write,
#   mpirun -n 2 build/tests/bench_checkpoint [MiB] [dir]
lethe_test_exe(bench_checkpoint bench_checkpoint.c)

# Formats 1 and 2 through the real binary (tests/ckpt_format.sh), read independently by
# tests/ckpt_digest_ref.py (h5py + numpy): the digests lethe writes, a format-1 file
# resuming to the same weights bit for bit, a flipped bit under either format and an
# unknown format_version each refused in one line. 6 checks per rank count.
foreach(n 1 2)
  lethe_test(NAME checkpoint.format.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/ckpt_format.sh ${n} TIMEOUT 300 LABELS "mpi")
endforeach()
