# `lethe --version` (tests/version.sh): lethe's version and commit, Open MPI, OpenBLAS
# (and the core in force), HDF5 (parallel) and cJSON, each compared with a source that
# does not go through lethe. The commit is `git describe` of the source, run by the test
# (the build records it at every build, so a built binary matches the source it was
# built from).
lethe_test(NAME cli.version
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/version.sh ${PROJECT_VERSION}
          "${HDF5_VERSION}" "${HDF5_IS_PARALLEL}"
  TIMEOUT 120 LABELS cli)
