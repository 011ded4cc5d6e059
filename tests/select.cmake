# The protocol of fair comparison (io/study.h "protocol", jobs/select.c):
#   select.unit      test_select: the rule fq_at_mu on hand-made settings (analysis/select.h)
#   study.protocol   tests/study_protocol.sh: the expansion of protocol studies (job counts,
#                    dependencies, labels, equal-budget refusal, each bad protocol key in one
#                    line), then a mini protocol study at 2 ranks end to end: selected.json,
#                    the report-phase evals, budget.json, resume and the changed-study check.
lethe_test_exe(test_select ${CMAKE_CURRENT_SOURCE_DIR}/test_select.c)
lethe_test(NAME select.unit COMMAND test_select LABELS "study")
lethe_test(NAME study.protocol COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/study_protocol.sh
  TIMEOUT 900 LABELS "study;nosan")
