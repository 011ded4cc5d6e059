# lethe prepare --tokenizer-dir DIR --template T on the real Llama tokenizers (Llama-3:
# llama3-chat, question-answer; Llama-2: llama2-chat, question-answer) against
# tests/template_ref.py's rendering encoded by independent npm encoders, every row
# compared (tests/template_llama.sh; skipped when the npm registry cannot be reached).
foreach(kind llama3 llama2)
  lethe_test(NAME dataset.template_${kind}
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/template_llama.sh ${kind} $<TARGET_FILE:lethe>
            ${CMAKE_CURRENT_BINARY_DIR}
    LABELS dataset TIMEOUT 900)
  set_tests_properties(dataset.template_${kind} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()
