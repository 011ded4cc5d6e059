# Bad and hostile inputs through the real `lethe` binary (tests/hostile.sh): configs,
# HDF5 datasets, safetensors, JSON lines, GPT-2 tokenizer files and study files, each
# refused with one "lethe: " line, a non-zero exit and no hang, at 1 and 2 ranks, with
# the sentinel files of the output folder unchanged; one verdict per input, K/K passed.
# make_hostile_h5 writes the bad HDF5 datasets with the HDF5 library itself. Under the
# sanitizer build too (issue 21: every class under both builds): the whole corpus, every
# parser and writer reached through the real binary with ASan/UBSan watching; only the
# +ulimit cases run without their 4 GB address-space limit there (ASan maps more).
# make_hostile_ckpt plants one value (a step, a NaN) in a real checkpoint with its
# digests redone, so a load must refuse the value itself.
lethe_test_exe(make_hostile_h5 ${CMAKE_CURRENT_SOURCE_DIR}/hostile/make_hostile_h5.c)
lethe_test_exe(make_hostile_ckpt ${CMAKE_CURRENT_SOURCE_DIR}/hostile/make_hostile_ckpt.c)
foreach(n 1 2)
  lethe_test(NAME hostile.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile.sh ${n} $<TARGET_FILE:make_hostile_h5>
      $<TARGET_FILE:make_hostile_ckpt>
    TIMEOUT 1500 LABELS "hostile;mpi")
  # NaN weights under the sanitizer build too (no nosan): a planted NaN checkpoint
  # resumed, exported and evaluated, and a NaN safetensors imported, are refused in one
  # line naming the tensor and element, with no ASan/UBSan report
  lethe_test(NAME hostile.nan_weights.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/nan_weights.sh ${n}
      $<TARGET_FILE:make_hostile_ckpt>
    TIMEOUT 300 LABELS "hostile;mpi")
endforeach()
# `lethe slurm` quoting (tests/hostile/slurm_quoting.sh): scripts rendered with hostile
# job names, folders and overrides pass bash -n and, run with fake srun/mpirun, hand each
# value to the launcher as one argument, byte for byte; nothing injected. No Slurm needed.
lethe_test(NAME hostile.slurm_quoting
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/slurm_quoting.sh
  TIMEOUT 180 LABELS "hostile;slurm;nosan")
# An edited study does not relabel finished results (tests/hostile/study_changed.sh): study
# and slurm --dry-run refuse a finished job whose config changed, naming the key, with every
# job.json and labels.json unchanged; --rerun-changed moves it and its finished dependants
# aside to <job>.old-N; another layout keeps them. 13 checks per rank count.
foreach(n 1 2)
  lethe_test(NAME hostile.study_changed.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/study_changed.sh ${n}
    TIMEOUT 300 LABELS "hostile;mpi")
endforeach()
# What a train that ends early leaves (tests/hostile/ended_early.sh): SIGTERM and an error
# that exits remove .lock and mark provenance.json "terminated" / "failed"; after MPI_Abort
# or a SIGKILL of rank 0 the lock stays and the next run takes it over in one line.
foreach(n 1 2)
  lethe_test(NAME hostile.ended_early.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/ended_early.sh ${n}
    TIMEOUT 300 LABELS "hostile;mpi")
endforeach()
# `lethe slurm` keeps the files of jobs an earlier submission may still run
# (tests/hostile/slurm_queued.sh, stand-in sbatch and squeue): an edited study is refused
# naming the job, its Slurm id and the key (--rerun-changed and --dry-run too), never
# relabelled; submitted again once the queue no longer holds them. 9 checks per rank count.
foreach(n 1 2)
  lethe_test(NAME hostile.slurm_queued.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/slurm_queued.sh ${n}
    TIMEOUT 300 LABELS "hostile;mpi;slurm")
endforeach()
