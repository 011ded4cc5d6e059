# The lethe command's refusals of bad layouts and bad usage (tests/cli_layout.sh).
lethe_test(NAME cli.layout COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_layout.sh)
lethe_test(NAME cli.resume COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/resume.sh)
lethe_test(NAME study.e2e COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/study_e2e.sh TIMEOUT 900)
# `lethe unlearn` end to end: every method (and the KL retain term) lowers the forget
# log-likelihood under a 2-rank layout with the retain loss bounded; bad unlearning
# input is refused in one line with the output folder untouched (tests/unlearn_cli.sh).
lethe_test(NAME cli.unlearn COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unlearn_cli.sh TIMEOUT 600)
lethe_test(NAME cli.unlearn_pdu COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/unlearn_pdu.sh TIMEOUT 600)
