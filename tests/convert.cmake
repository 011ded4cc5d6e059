# lethe convert (safetensors <-> checkpoint across layouts; tests/test_convert.sh) and the
# command line of lethe prepare (tests/prepare_cli.sh). Both drive the real binary under
# mpirun at several rank counts; see the scripts' headers for what they assert.
lethe_test(NAME convert.roundtrip COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_convert.sh
  LABELS "convert;mpi")
# skipped (exit 77) when /usr/bin/python3 lacks numpy or torch
set_tests_properties(convert.roundtrip PROPERTIES SKIP_RETURN_CODE 77)
lethe_test(NAME convert.prepare_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/prepare_cli.sh
  LABELS "convert;dataset;mpi")
# Hugging Face folders (tests/test_convert_hf.sh): import at four layouts with logits
# against tests/torch_hf.py's PyTorch Llama, export round trips, the model taken from a
# checkpoint, refused folders
lethe_test_exe(hf_logits ${CMAKE_CURRENT_SOURCE_DIR}/hf_logits.c)
lethe_test(NAME convert.hf COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/test_convert_hf.sh
  $<TARGET_FILE:hf_logits> TIMEOUT 900 LABELS "convert;mpi;parity")
set_tests_properties(convert.hf PROPERTIES SKIP_RETURN_CODE 77)
