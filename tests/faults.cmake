# Faults (tests/fault_*.sh): a rank killed at a random step, a rank killed in the middle
# of a checkpoint write, NaN gradients (stop / skip), a full disk, two jobs in one output
# folder, output modes and planted links; and determinism at the command line. The
# scripts take a trial count: CI runs a few, the figures quoted in the README come from
# 20 (bash tests/fault_kill.sh 20). Killing processes on a timer and filling a tmpfs are
# about processes and files, not memory errors, and are slow under the sanitizers: those
# are labelled nosan. fault_disk and fault_slurm need root; they exit 77 = skipped otherwise.
set(_faults ${CMAKE_CURRENT_SOURCE_DIR})
lethe_test(NAME faults.kill COMMAND bash ${_faults}/fault_kill.sh 2 LABELS "fault;nosan")
lethe_test(NAME faults.ckpt COMMAND bash ${_faults}/fault_ckpt.sh 1 LABELS "fault;nosan")
lethe_test(NAME faults.disk COMMAND bash ${_faults}/fault_disk.sh 1 LABELS "fault;nosan")
set_tests_properties(faults.disk PROPERTIES SKIP_RETURN_CODE 77)
lethe_test(NAME faults.nan COMMAND bash ${_faults}/fault_nan.sh LABELS fault)
lethe_test(NAME faults.lock COMMAND bash ${_faults}/fault_lock.sh LABELS fault)
lethe_test(NAME faults.perms COMMAND bash ${_faults}/fault_perms.sh LABELS fault)
lethe_test(NAME faults.determinism COMMAND bash ${_faults}/determinism.sh LABELS fault)
# the same rank death under the local Slurm (srun --mpi=pmix); root only, 77 = skipped
lethe_test(NAME faults.slurm COMMAND bash ${_faults}/fault_slurm.sh 1 LABELS "fault;nosan;slurm")
set_tests_properties(faults.slurm PROPERTIES SKIP_RETURN_CODE 77)
