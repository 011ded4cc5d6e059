# io/safefile.c, the one writer and the one reader (tests/test_safefile.c): links, FIFOs,
# folders and hard links at the temporary name refused with the target untouched, a
# leftover temporary replaced, a link at the final name replaced and never followed,
# appends only to regular files, reads of regular files only and within their bound
# (a FIFO never blocks, /dev/zero refused), the per-line bound. Serial.
lethe_test_exe(test_safefile ${CMAKE_CURRENT_SOURCE_DIR}/test_safefile.c)
lethe_test(NAME safefile.unit COMMAND $<TARGET_FILE:test_safefile> ${CMAKE_CURRENT_BINARY_DIR}
  TIMEOUT 60 LABELS "safefile")
