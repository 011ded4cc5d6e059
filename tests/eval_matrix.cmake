# lethe eval's layout contract: one checkpoint evaluated under every layout of the
# world gives the one-rank per-sample values (tests/test_eval_matrix.c).
lethe_test_exe(test_eval_matrix ${CMAKE_CURRENT_SOURCE_DIR}/test_eval_matrix.c)
lethe_mpi_test(NAME eval.layout_matrix COMMAND $<TARGET_FILE:test_eval_matrix> RANKS 1 2 4 8
               LABELS eval)
