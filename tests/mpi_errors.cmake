# An MPI error reaches MPI_CHECK (tests/mpi_errors.sh + test_mpi_errors.c): on
# MPI_COMM_WORLD, every communicator of the grid and an MPI-IO file, a failing call prints
# rank 0's exact lethe line (coordinates, call, MPI_Error_string) and the job ends on every
# rank with a non-zero exit, no hang. The script runs mpirun itself (1 and 2 ranks) because
# it asserts mpirun's exit status and output together, which ctest cannot on one command.
lethe_test_exe(test_mpi_errors test_mpi_errors.c)
foreach(n 1 2)
  lethe_test(NAME mpi_errors.np${n}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi_errors.sh ${n} $<TARGET_FILE:test_mpi_errors>
    TIMEOUT 600 LABELS "mpi")
endforeach()
