# Kernel unit tests: every kernel of model/kernels.h against a double-precision
# reference (forward) and finite differences (backward). Serial, a few seconds.
lethe_test_exe(test_kernels test_kernels.c test_kernels_dense.c test_kernels_sequence.c
               test_kernels_nll.c)
lethe_test(NAME kernels.fd COMMAND test_kernels)
