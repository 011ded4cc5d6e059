# Token datasets: tokenizers, prepare (JSONL -> HDF5), the streaming loader, bad inputs.
lethe_test_exe(test_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer.c)

lethe_test(NAME dataset.tokenizer COMMAND test_tokenizer LABELS dataset)

lethe_test_exe(test_dataset ${CMAKE_CURRENT_SOURCE_DIR}/test_dataset.c)
lethe_test(NAME dataset.prepare COMMAND test_dataset ${CMAKE_CURRENT_SOURCE_DIR}/data LABELS dataset)

# GPT-2 BPE against the reference encoder fetched with npm at test time (skipped, with
# a message, when the registry cannot be reached).
lethe_test(NAME dataset.tokenizer_gpt2
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/gpt2_fixture.sh $<TARGET_FILE:test_tokenizer>
          ${CMAKE_CURRENT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/data/gpt2_strings.json
  LABELS dataset)
set_tests_properties(dataset.tokenizer_gpt2 PROPERTIES SKIP_RETURN_CODE 77)

lethe_test_exe(test_loader ${CMAKE_CURRENT_SOURCE_DIR}/test_loader.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_loader_order.c ${CMAKE_CURRENT_SOURCE_DIR}/test_loader_files.c)
lethe_mpi_test(NAME dataset.loader COMMAND $<TARGET_FILE:test_loader> RANKS 1 2 4 8 LABELS dataset)

# The h5py example of io/DATASETS.md, run as written, read back by the loader (skipped
# when the python has no h5py).
if(LETHE_TORCH_PYTHON)
  set(LETHE_DATASET_PYTHON ${LETHE_TORCH_PYTHON})
else()
  set(LETHE_DATASET_PYTHON python3)
endif()
lethe_test(NAME dataset.h5py_example
  COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/data/h5py_example.sh ${LETHE_DATASET_PYTHON}
          ${CMAKE_SOURCE_DIR}/io/DATASETS.md $<TARGET_FILE:test_loader> ${MPIEXEC_EXE}
          ${CMAKE_CURRENT_BINARY_DIR}
  LABELS dataset)
set_tests_properties(dataset.h5py_example PROPERTIES SKIP_RETURN_CODE 77)

# lethe prepare --template (llama2-chat, llama3-chat, question-answer, a template file)
# against tests/template_ref.py's own rendering, on the GPT-2 fixture with the
# templates' special tokens appended (skipped like dataset.tokenizer_gpt2 without the
# registry).
lethe_test(NAME dataset.prepare_template
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/prepare_template.sh ${CMAKE_CURRENT_BINARY_DIR}
  LABELS "dataset;mpi")
set_tests_properties(dataset.prepare_template PROPERTIES SKIP_RETURN_CODE 77)
