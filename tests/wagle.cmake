# tests/wagle.cmake — WAGLE's weight attribution (model/wagle.c, jobs/unlearn_wagle.c).
#   wagle.select.np{1,2,4,8}  test_wagle: the score formula; the GLOBAL top-p threshold
#                             over shards whose score distributions differ, against a
#                             gather-and-sort reference, and unlike a per-rank selection
#   cli.unlearn_wagle         tests/unlearn_wagle.sh: the real job (mask identical under
#                             every layout of the 8-rank matrix, only masked weights move,
#                             the forget log-likelihood falls for graddiff/npo/simnpo,
#                             kill + resume bitwise, bad values, --help)
#   cli.wagle_resume          tests/wagle_resume.sh: the mask is part of the checkpoint
#                             (/wagle_mask): saved under one layout and resumed under
#                             another at 1 and 2 ranks, bitwise equal to an uninterrupted
#                             run; a checkpoint without a mask is scored as before; a
#                             mask refused in one line when the settings differ, a byte
#                             flipped or the group removed
lethe_test_exe(test_wagle ${CMAKE_CURRENT_SOURCE_DIR}/test_wagle.c)
lethe_mpi_test(NAME wagle.select COMMAND $<TARGET_FILE:test_wagle> RANKS 1 2 4 8 LABELS "wagle")
lethe_test(NAME cli.unlearn_wagle COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unlearn_wagle.sh
  TIMEOUT 900 LABELS "wagle")
lethe_test(NAME cli.wagle_resume COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/wagle_resume.sh
  TIMEOUT 900 LABELS "wagle")
