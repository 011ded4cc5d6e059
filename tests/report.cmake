# tests/report.cmake — `lethe report` on a fake study tree (tests/data/report_fixture/):
# every cell of results.csv and best.csv against an independent recomputation in Python
# (standard library only), the scaling table, the PNGs, re-runs at 1 and 2 ranks, and the
# one-line errors of bad inputs. Needs gnuplot (jobs/setup.sh --tests installs it).
lethe_test(NAME report.fixture COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_report.sh
  TIMEOUT 120 LABELS "report")

# stats.unit    test_stats: analysis/stats.h on hand-computed cases (a planted difference
#               shown, identical methods not, NaN pairs left out, one pair without an
#               interval, a Pareto front by hand). C only.
# stats.python  `test_stats --dump` and the independent tests/stats_ref.py: exact means,
#               wins and ties; the bootstrap interval from the same resamples (splitmix64
#               written again in Python) and against the exact bootstrap distribution
#               (n <= 5, all n^n resamples) and the normal approximation (n = 200); Pareto
#               fronts against a brute force. PASS lines counted against the cases.
lethe_test_exe(test_stats ${CMAKE_CURRENT_SOURCE_DIR}/test_stats.c)
lethe_test(NAME stats.unit COMMAND test_stats LABELS "report")
lethe_test(NAME stats.python
  COMMAND ${LETHE_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/stats_ref.py
          $<TARGET_FILE:test_stats> ${CMAKE_CURRENT_BINARY_DIR}/stats
  TIMEOUT 300 LABELS "report")

# report.stats  tests/test_report_stats.sh: a study with selection and report phases
#               (tests/report_study_fixture.py: a crippled method, a twin, seed noise, an
#               ineligible selection, budgets, relearn curves, buckets); its comparisons,
#               verdicts, Pareto fronts, budget sums and results.md's CPU-seconds per
#               job kind (from the fixture's provenance.json files) recomputed by
#               tests/report_stats_ref.py; the same comparisons on a second run, on 2
#               ranks and after the study moved; an old study without phases; the errors
#               of bad phase labels, selected.json and budget.json. PASS lines counted.
lethe_test(NAME report.stats COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_report_stats.sh
  TIMEOUT 300 LABELS "report")
