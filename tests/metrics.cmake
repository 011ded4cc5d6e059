# tests/metrics.cmake — the pure metric functions of analysis/metrics.h.
#
#   metrics.unit    test_metrics: hand-computed ROUGE-L / AUC / means / truth ratio / Min-K%
#                   cases, KS D with ties, exact KS p-values against brute-force enumeration
#                   (n1, n2 <= 8) and closed forms (n1 = n2 = 3000, n1 = 1), the
#                   exact/asymptotic switch at 10000. C only, under a second.
#   metrics.python  `test_metrics --dump` writes random cases with its results; the
#                   independent implementation tests/metrics_ref.py (standard library +
#                   numpy, run by /usr/bin/python3) recomputes them: KS exact p by
#                   enumeration and big-integer path counting, Kolmogorov in 60-digit
#                   decimal, ROUGE-L as rouge_score tokenizes. Criteria in metrics_ref.py.
# A missing python3 or numpy is a failure, not a skip.
lethe_test_exe(test_metrics ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_metrics_ks.c)
lethe_test(NAME metrics.unit COMMAND test_metrics LABELS "metrics")
lethe_test(NAME metrics.python
  COMMAND ${LETHE_TORCH_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/metrics_ref.py
          $<TARGET_FILE:test_metrics> ${CMAKE_CURRENT_BINARY_DIR}/metrics
  TIMEOUT 120 LABELS "metrics")

#   metrics.markov_kl  test_markov_kl: analysis/markov_kl.h (the KL to the true chains of a
#                   Markov-chain mixture) against a brute-force sum_j p_j log(p_j / q_j),
#                   soft targets built shard by shard. C only.
lethe_test_exe(test_markov_kl ${CMAKE_CURRENT_SOURCE_DIR}/test_markov_kl.c)
lethe_test(NAME metrics.markov_kl COMMAND test_markov_kl LABELS "metrics")
