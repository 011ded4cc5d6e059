# Config schema: defaults, round trip, overrides and every bad config file
# (tests/test_config.c, serial); then the same bad files through `lethe train`
# under mpirun at 1 and 2 ranks (tests/cli_bad_config.sh: exit status 2, one
# "lethe: " line naming the problem, no output folder created).
lethe_test_exe(test_config test_config.c)
lethe_test(NAME config.unit
  COMMAND $<TARGET_FILE:test_config> ${CMAKE_CURRENT_SOURCE_DIR}/configs_bad
          ${CMAKE_CURRENT_BINARY_DIR}
  TIMEOUT 60)
lethe_test(NAME config.cli
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_bad_config.sh ${CMAKE_CURRENT_SOURCE_DIR}/configs_bad
  TIMEOUT 600 LABELS "mpi;nosan")
