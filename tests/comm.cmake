# tests/comm.cmake — the ring collectives of mpi/comm.c.
#   comm.ring.np{1,2,3,4}  test_comm: the reduce-scatter's sums, exact, with and without
#                          its Inf/NaN check, and the lowest non-finite index it reports
#                          against a scalar scan of each rank's buffer (planted in every
#                          rank, some, only the share each sends first, only its own;
#                          lengths from 0 to more than one 4 MiB piece per share); 3 ranks
#                          for a ring whose steps pass partial sums on
lethe_test_exe(test_comm ${CMAKE_CURRENT_SOURCE_DIR}/test_comm.c)
lethe_mpi_test(NAME comm.ring COMMAND $<TARGET_FILE:test_comm> RANKS 1 2 3 4 LABELS "comm")
