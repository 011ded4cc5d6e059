# The markov study end to end (tests/markov_e2e.sh): a shortened jobs/studies/markov.json on
# 2 ranks — origin learns the forget chains, NPO and SimNPO move away from them, the report
# names both and draws markov_kl.png, eval agrees under tp 2 and pp 2, and the per-chain KL
# equals an independent PyTorch computation (tests/markov_kl_ref.py). About 25 lethe runs:
# release stage only.
lethe_test(NAME study.markov COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/markov_e2e.sh TIMEOUT 900
  LABELS "study;nosan")
