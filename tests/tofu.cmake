# lethe prepare --tofu: the TOFU benchmark's files as published (tests/tofu_fixture.py
# writes a schema-exact folder) against tests/tofu_check.py's own reading of them, and
# the bad folders a user can give (tests/tofu_prepare.sh).
lethe_test(NAME dataset.tofu COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tofu_prepare.sh
  LABELS "dataset;mpi" TIMEOUT 600)
