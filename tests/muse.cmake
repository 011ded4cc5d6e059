# MUSE as published: lethe prepare --muse on the schema-exact folder tests/data/muse against
# tests/muse_check.py's own reading of it, and the bad folders a user can give
# (tests/muse_prepare.sh); MUSE's metrics in lethe eval against muse_check.py's own
# computation from the original strings, at 1 rank and at 2 ranks under dp, tp and pp
# (tests/muse_eval.sh).
lethe_test(NAME dataset.muse COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/muse_prepare.sh
  LABELS "dataset;mpi" TIMEOUT 600)
lethe_test(NAME eval.muse COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/muse_eval.sh
  LABELS "eval;mpi" TIMEOUT 900)
