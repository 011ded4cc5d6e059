# tests/rmu.cmake — RMU (unlearn.method "rmu", model/rmu.c, jobs/unlearn_rmu.c).
#
#   rmu.cli   tests/rmu_cli.sh: `lethe unlearn` with rmu under every layout of the
#             8-rank matrix against one rank (10 steps, every logged term to 1e-5), the
#             2-rank run moving forget hidden states toward c u and the forget
#             log-likelihood down, only the chosen down_proj tensors moving, bitwise
#             resume after an abort (pp 2 and dp 2), bad values refused in one line.
# (nosan: its layouts run up to 8 oversubscribed ranks, which the sanitizer stage leaves
# out as for every MPI test; rmu.torch_* and manual pp2/dp2/tp2/pp4 runs were clean
# under ASan)
lethe_test(NAME rmu.cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/rmu_cli.sh TIMEOUT 1800
  LABELS "mpi;objectives;nosan")

#   rmu.torch_<case>  `mpirun -n 1 rmu_dump DIR --case <case>` then tests/torch_rmu.py DIR:
#             loss, its terms and the trained tensors' gradients (one and two
#             micro-batches) against PyTorch autograd of the formula (1e-5), the steering
#             vector's norm, only the trained tensors moved by the step, downhill.
lethe_test_exe(rmu_dump ${CMAKE_CURRENT_SOURCE_DIR}/rmu_dump.c)
foreach(case rmu rmu_span1)
  lethe_test(NAME rmu.torch_${case}
    COMMAND sh -c "rm -rf \"$1\" && mkdir -p \"$1\" && \"$2\" -n 1 \"$3\" \"$1\" --case ${case} && \"$4\" \"$5\" \"$1\""
            rmu ${CMAKE_CURRENT_BINARY_DIR}/rmu/${case} ${MPIEXEC_EXE}
            $<TARGET_FILE:rmu_dump> ${LETHE_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/torch_rmu.py
    TIMEOUT 180 LABELS "objectives;parity")
endforeach()
