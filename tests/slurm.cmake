# Slurm: the sbatch script renderer (tests/test_sbatch*.c, no Slurm needed), then end to
# end on a private single-host Slurm of 4 virtual nodes (tests/slurm_local.sh: a 2-node
# `srun --mpi=pmix lethe train` job, a 3-task job array, and a rendered script whose
# batch-shell signal is forwarded to the ranks and requeues the job). slurm.local needs
# root and Debian's slurm-wlm and munge (jobs/setup.sh --tests installs them); without
# them it fails with a message saying so.
lethe_test_exe(test_sbatch ${CMAKE_CURRENT_SOURCE_DIR}/test_sbatch.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_sbatch_words.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_sbatch_validation.c)
lethe_test(NAME slurm.sbatch COMMAND $<TARGET_FILE:test_sbatch> TIMEOUT 60 LABELS slurm)
lethe_test(NAME slurm.local
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_local.sh $<TARGET_FILE:test_sbatch>
  TIMEOUT 300 LABELS "slurm;nosan")
