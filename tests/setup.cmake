# tests/setup.cmake — jobs/setup.sh's detection against fake system trees (a machine with
# only the reference BLAS, a serial HDF5, no gnuplot), its one-line reports, the demo's
# package list, and `lethe report` without gnuplot (tests/setup_fresh.sh). As root it
# also runs apt-get once (the install branch), so it may take a few seconds more.
lethe_test(NAME setup.fresh_machine COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/setup_fresh.sh
  TIMEOUT 300 LABELS "setup")
# LETHE_MARCH: a bad value refused in one line at configure time; the default and
# x86-64-v3 reach every compile command (tests/build_march.sh; configures only).
lethe_test(NAME setup.march COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/build_march.sh
  TIMEOUT 300 LABELS "setup")
