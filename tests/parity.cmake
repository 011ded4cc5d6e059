# tests/parity.cmake — safetensors and parity with an independent PyTorch model.
#
# Included by tests/CMakeLists.txt, it registers
#   safetensors.unit   test_safetensors: round trip, F16/BF16 conversion, hostile files
#   parity.<case>      `mpirun -n 1 parity_dump DIR --case <case>` writes weights, batch,
#                      logits, loss, gradients and 10 optimizer steps as safetensors, then
#                      `$LETHE_PYTHON tests/torch_ref.py DIR` rebuilds the model in PyTorch
#                      and asserts agreement to 1e-4 relative (criterion in torch_ref.py).
# Cases: gqa_untied (4 heads over 2 kv heads, separate head), mha_tied (4/4, tied
# embeddings), gqa_tied_long (T 32, lengths 6..31), mqa_untied (4 heads over 1 kv head);
# every batch mixes lengths and masks a 3-token prompt.
#
# Run as a script (cmake -DCASE= -DDIR= -DDUMP= -DREF= -P tests/parity.cmake) it is the
# driver of one parity test. A missing mpirun or PyTorch is a failure, not a skip:
# tests/run.sh installs python3-torch, and parity must never pass without its reference.

if(CMAKE_SCRIPT_MODE_FILE)
  foreach(var CASE DIR DUMP REF)
    if(NOT DEFINED ${var})
      message(FATAL_ERROR "parity: -D${var}=... not given")
    endif()
  endforeach()
  set(mpirun "$ENV{MPIRUN}")
  set(python "$ENV{LETHE_PYTHON}")
  if(NOT mpirun OR mpirun MATCHES "NOTFOUND$" OR NOT EXISTS "${mpirun}")
    message(FATAL_ERROR "parity.${CASE}: MPIRUN='${mpirun}' is not an mpirun")
  endif()
  if(NOT python OR python MATCHES "NOTFOUND$" OR NOT EXISTS "${python}")
    message(FATAL_ERROR "parity.${CASE}: LETHE_PYTHON='${python}' is not a python3 "
                        "(parity needs /usr/bin/python3 with Debian's python3-torch)")
  endif()
  file(REMOVE_RECURSE "${DIR}")
  file(MAKE_DIRECTORY "${DIR}")
  execute_process(COMMAND "${mpirun}" -n 1 "${DUMP}" "${DIR}" --case "${CASE}"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "parity.${CASE}: parity_dump failed (${rc})")
  endif()
  execute_process(COMMAND "${python}" "${REF}" "${DIR}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "parity.${CASE}: torch_ref.py reports a mismatch or could not run (${rc})")
  endif()
  return()
endif()

lethe_test_exe(test_safetensors ${CMAKE_CURRENT_SOURCE_DIR}/test_safetensors.c)
lethe_test(NAME safetensors.unit
  COMMAND test_safetensors ${CMAKE_CURRENT_BINARY_DIR}/safetensors LABELS "safetensors")

lethe_test_exe(parity_dump ${CMAKE_CURRENT_SOURCE_DIR}/parity_dump.c)
foreach(case gqa_untied mha_tied gqa_tied_long mqa_untied)
  lethe_test(NAME parity.${case}
    COMMAND ${CMAKE_COMMAND} -DCASE=${case} -DDIR=${CMAKE_CURRENT_BINARY_DIR}/parity/${case}
            -DDUMP=$<TARGET_FILE:parity_dump> -DREF=${CMAKE_CURRENT_SOURCE_DIR}/torch_ref.py
            -P ${CMAKE_CURRENT_LIST_FILE}
    TIMEOUT 180 LABELS "parity")
endforeach()
