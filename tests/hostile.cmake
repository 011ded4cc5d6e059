# Bad and hostile inputs through the real `lethe` binary (tests/hostile.sh): configs,
# HDF5 datasets, safetensors, JSON lines, GPT-2 tokenizer files and study files, each
# refused with one "lethe: " line, a non-zero exit and no hang, at 1 and 2 ranks, with
# the sentinel files of the output folder unchanged; one verdict per input, K/K passed.
# make_hostile_h5 writes the bad HDF5 datasets with the HDF5 library itself. nosan: ~90
# lethe start-ups per rank count take minutes under AddressSanitizer (the parsers run
# under ASan/UBSan in the fuzz tests instead).
# make_hostile_ckpt plants one value (a step, a NaN) in a real checkpoint with its
# digests redone, so a load must refuse the value itself.
lethe_test_exe(make_hostile_h5 ${CMAKE_CURRENT_SOURCE_DIR}/hostile/make_hostile_h5.c)
lethe_test_exe(make_hostile_ckpt ${CMAKE_CURRENT_SOURCE_DIR}/hostile/make_hostile_ckpt.c)
foreach(n 1 2)
  lethe_test(NAME hostile.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile.sh ${n} $<TARGET_FILE:make_hostile_h5>
      $<TARGET_FILE:make_hostile_ckpt>
    TIMEOUT 600 LABELS "hostile;mpi;nosan")
  # NaN weights under the sanitizer build too (no nosan): a planted NaN checkpoint
  # resumed, exported and evaluated, and a NaN safetensors imported, are refused in one
  # line naming the tensor and element, with no ASan/UBSan report
  lethe_test(NAME hostile.nan_weights.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile/nan_weights.sh ${n}
      $<TARGET_FILE:make_hostile_ckpt>
    TIMEOUT 300 LABELS "hostile;mpi")
endforeach()
# The classes of issue 21 alone (cases named link_, fifo_, zero_, own_ in cases.txt):
# links planted at the names lethe writes, FIFOs and devices as inputs, outputs that
# would replace another job's results or the job's own inputs. Few enough to run under
# the sanitizer build too (no nosan label).
foreach(n 1 2)
  lethe_test(NAME hostile.links.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hostile.sh ${n} $<TARGET_FILE:make_hostile_h5>
            $<TARGET_FILE:make_hostile_ckpt> "^(link|fifo|zero|own)_"
    TIMEOUT 600 LABELS "hostile;mpi")
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
