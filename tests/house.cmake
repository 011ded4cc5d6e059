# The house rules on the tree as built (tests/house.sh): file and function lengths, no
# writable static storage outside the process set-up, and the floors' include check
# failing on a planted upward include.
lethe_test(NAME house.rules
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/house.sh ${CMAKE_SOURCE_DIR}
          $<TARGET_FILE_DIR:lethe_mpi> ${CMAKE_BINARY_DIR}/layers/check_includes.cmake
  TIMEOUT 120 LABELS "nosan") # a check of the tree: once, in the release stage
