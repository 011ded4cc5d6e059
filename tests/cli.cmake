# The lethe command's refusals of bad layouts and bad usage (tests/cli_layout.sh).
lethe_test(NAME cli.layout COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_layout.sh)
lethe_test(NAME cli.resume COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/resume.sh)
lethe_test(NAME study.e2e COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/study_e2e.sh TIMEOUT 900)
