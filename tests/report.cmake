# tests/report.cmake — `lethe report` on a fake study tree (tests/data/report_fixture/):
# every cell of results.csv and best.csv against an independent recomputation in Python
# (standard library only), the scaling table, the PNGs, re-runs at 1 and 2 ranks, and the
# one-line errors of bad inputs. Needs gnuplot (jobs/setup.sh --tests installs it).
lethe_test(NAME report.fixture COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_report.sh
  TIMEOUT 120 LABELS "report")
