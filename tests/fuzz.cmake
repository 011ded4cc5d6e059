# libFuzzer harnesses of the parsers (tests/fuzz/: config, safetensors header, JSON lines,
# GPT-2 BPE tokenizer, study files), built with clang -fsanitize=fuzzer,address,undefined
# by tests/fuzz/run.sh, whatever compiler builds lethe. The short CI form: each harness
# runs 20 s over its seed corpus (the repository's real files); a crash, a sanitizer
# report, a leak or a broken harness invariant fails the test. Skipped (77) when clang
# cannot link -fsanitize=fuzzer (Debian: clang, libclang-rt-14-dev).
# The long form: tests/fuzz/run.sh run DIR NAME 600 (see tests/fuzz/run.sh).
set(LETHE_FUZZ_DIR ${CMAKE_CURRENT_BINARY_DIR}/fuzz)
lethe_test(NAME fuzz.build
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh build ${LETHE_FUZZ_DIR}
  TIMEOUT 900 LABELS fuzz)
set_tests_properties(fuzz.build PROPERTIES SKIP_RETURN_CODE 77 FIXTURES_SETUP lethe_fuzz)
foreach(h config safetensors jsonl tokenizer study)
  lethe_test(NAME fuzz.${h}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run.sh run ${LETHE_FUZZ_DIR} ${h} 20
    TIMEOUT 180 LABELS fuzz)
  set_tests_properties(fuzz.${h} PROPERTIES SKIP_RETURN_CODE 77 FIXTURES_REQUIRED lethe_fuzz)
endforeach()
