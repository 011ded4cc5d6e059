# Stress (tests/stress_mpirun.sh): 200 short `mpirun -n 2 lethe train BAD.json`, 8 at
# once, each with an Open MPI session folder of its own (jobs/mpienv.sh). Every launch
# must exit 2 with exactly one `lethe: ` line on stderr: no ORTE_ERROR_LOG from
# session_dir.c, which is what concurrent mpiruns sharing <tmp>/ompi.<host>.<uid>/ hit
# (one job removes it, empty, as another starts). About 1 minute on 2 idle cores, 6 on
# 2 loaded ones; MPI start-ups under ASan take seconds each (nosan).
lethe_test(NAME stress.mpirun
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/stress_mpirun.sh 200 8
  TIMEOUT 900 LABELS "stress;mpi;nosan")
