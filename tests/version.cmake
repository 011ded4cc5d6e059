# `lethe --version` (tests/version.sh): lethe's version and commit, Open MPI, OpenBLAS
# (and the core in force), HDF5 (parallel) and cJSON, each compared with a source that
# does not go through lethe. The commit is `git describe` of the source, run here at
# configure time like the one the binary records.
execute_process(COMMAND git -C ${CMAKE_SOURCE_DIR} describe --always --dirty --abbrev=12
  OUTPUT_VARIABLE LETHE_TEST_GIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT LETHE_TEST_GIT)
  set(LETHE_TEST_GIT "unknown")
endif()
lethe_test(NAME cli.version
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/version.sh ${PROJECT_VERSION} ${LETHE_TEST_GIT}
          "${HDF5_VERSION}" "${HDF5_IS_PARALLEL}"
  TIMEOUT 120 LABELS cli)
