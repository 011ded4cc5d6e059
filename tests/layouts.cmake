# The parallel model's contract: every layout equals one rank (tests/test_layouts.c).
lethe_test_exe(test_layouts test_layouts.c test_layouts_unlearn.c test_layouts_extra.c)
lethe_mpi_test(NAME layouts.equivalence COMMAND $<TARGET_FILE:test_layouts> RANKS 1 2 4 8
               TIMEOUT 600)
lethe_test_exe(test_generate test_generate.c)
lethe_mpi_test(NAME layouts.generate COMMAND $<TARGET_FILE:test_generate> RANKS 1 2 4 8)
