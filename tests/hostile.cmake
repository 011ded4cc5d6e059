# Bad and hostile inputs through the real `lethe` binary (tests/hostile.sh): configs,
# HDF5 datasets, safetensors, JSON lines, GPT-2 tokenizer files and study files, each
# refused with one "lethe: " line, a non-zero exit and no hang, at 1 and 2 ranks, with
# the sentinel files of the output folder unchanged; one verdict per input, K/K passed.
# make_hostile_h5 writes the bad HDF5 datasets with the HDF5 library itself. nosan: ~90
# lethe start-ups per rank count take minutes under AddressSanitizer (the parsers run
# under ASan/UBSan in the fuzz tests instead).
lethe_test_exe(make_hostile_h5 ${CMAKE_CURRENT_SOURCE_DIR}/hostile/make_hostile_h5.c)
foreach(n 1 2)
  lethe_test(NAME hostile.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile.sh ${n} $<TARGET_FILE:make_hostile_h5>
    TIMEOUT 600 LABELS "hostile;mpi;nosan")
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
