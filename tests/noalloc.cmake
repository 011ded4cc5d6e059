# tests/noalloc.cmake — no heap allocation inside a training step.
#
# Included by tests/CMakeLists.txt, it registers
#   model.noalloc.np<N>  mpirun -n N env LD_PRELOAD=liblethe_alloc_count.so test_noalloc:
#                        every layout of N ranks the model admits (1: one rank; 2: dp2,
#                        pp2, tp2; 4: dp4, dp2 x pp2, pp4, dp2 x tp2, pp2 x tp2, tp4 ...)
#                        runs a warm-up step and 10 counted steps; an allocation from
#                        lethe's code fails it, those of MPI/OpenBLAS/libc are printed.
# Not under LETHE_SANITIZE: AddressSanitizer's runtime must come first in the process,
# before any preloaded allocator, and it replaces malloc itself.
if(LETHE_SANITIZE)
  return()
endif()
add_library(lethe_alloc_count SHARED ${CMAKE_CURRENT_SOURCE_DIR}/alloc_count.c)
target_link_libraries(lethe_alloc_count PRIVATE ${CMAKE_DL_LIBS})
lethe_test_exe(test_noalloc ${CMAKE_CURRENT_SOURCE_DIR}/test_noalloc.c)
target_link_libraries(test_noalloc PRIVATE ${CMAKE_DL_LIBS})
lethe_mpi_test(NAME model.noalloc RANKS 1 2 4
  COMMAND env LD_PRELOAD=$<TARGET_FILE:lethe_alloc_count> $<TARGET_FILE:test_noalloc>)
