# tests/rmu.cmake — RMU (unlearn.method "rmu", model/rmu.c, jobs/unlearn_rmu.c).
#
#   rmu.cli   tests/rmu_cli.sh: `lethe unlearn` with rmu under every layout of the
#             8-rank matrix against one rank (10 steps, every logged term to 1e-5), the
#             2-rank run moving forget hidden states toward c u and the forget
#             log-likelihood down, only the chosen down_proj tensors moving, bitwise
#             resume after an abort (pp 2 and dp 2), bad values refused in one line.
lethe_test(NAME rmu.cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/rmu_cli.sh TIMEOUT 900
  LABELS "mpi;objectives")
