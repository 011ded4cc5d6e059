# The PyTorch peer benchmark (tests/bench_peer.sh), smoke-run: one round of a very
# small model must print a lethe line and positive lethe/PyTorch ratios, against the
# peer and against PyTorch's best settings of the --torch-best scan (no timing is
# asserted; a benchmark is never a test). Needs PyTorch like the parity tests.
# PASS_REGULAR_EXPRESSION alone ignores the exit status: a bench script that fails prints
# "NAME: FAILED (exit N)" last (bench_work, tests/bench_lib.sh), which fails the smoke test.
set(LETHE_PEER_SMOKE --rounds 1 --set model.vocab_size=512 --set model.dim=64
  --set model.n_layers=1 --set model.n_heads=2 --set model.n_kv_heads=2 --set model.mlp_dim=128
  --set model.max_seq_len=32 --set train.batch_size=2 --set train.seq_len=32
  --set data.min_len=16 --set bench.warmup=1 --set bench.steps=2)
lethe_test(NAME perf.bench_peer_smoke
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_peer.sh
          ${CMAKE_SOURCE_DIR}/jobs/configs/bench-tiny.json ${LETHE_PEER_SMOKE} --torch-best
  TIMEOUT 600 LABELS slow)
set_tests_properties(perf.bench_peer_smoke PROPERTIES
  FAIL_REGULAR_EXPRESSION "FAILED \\(exit" PASS_REGULAR_EXPRESSION
  "median lethe: [0-9.]+ tokens/s.*ratio lethe/PyTorch \\(median tokens/s\\): [0-9.]*[1-9][0-9.]*\n.*ratio lethe/PyTorch-best \\(median tokens/s\\): [0-9.]*[1-9]")

# The scaling and streaming benchmarks (tests/bench_scaling.sh, tests/bench_stream.sh),
# smoke-run on the very small model: every layout prints a speed-up over one rank,
# and every job states its data-stream wait as a share of step time (no timing is
# asserted).
set(LETHE_BENCH_SMALL --set model.vocab_size=512 --set model.dim=64
  --set model.n_layers=2 --set model.n_heads=2 --set model.n_kv_heads=2 --set model.mlp_dim=128
  --set model.max_seq_len=32 --set train.batch_size=8 --set train.seq_len=32
  --set data.min_len=16)
lethe_test(NAME perf.bench_scaling_smoke
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_scaling.sh
          ${CMAKE_SOURCE_DIR}/jobs/configs/bench-tiny.json --rounds 1 --micro-batches 4
          ${LETHE_BENCH_SMALL} --set bench.warmup=1 --set bench.steps=2
  TIMEOUT 120 LABELS slow)
set_tests_properties(perf.bench_scaling_smoke PROPERTIES
  FAIL_REGULAR_EXPRESSION "FAILED \\(exit" PASS_REGULAR_EXPRESSION
  "pp=2 m=4 +[0-9.]+ +[0-9]+\\.[0-9][0-9] +[0-9]+\\.[0-9][0-9] ")
lethe_test(NAME perf.bench_stream_smoke
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_stream.sh
          ${CMAKE_SOURCE_DIR}/jobs/configs/bench-tiny.json --steps 4 --rows 200 ${LETHE_BENCH_SMALL}
  TIMEOUT 120 LABELS slow)
set_tests_properties(perf.bench_stream_smoke PROPERTIES
  FAIL_REGULAR_EXPRESSION "FAILED \\(exit" PASS_REGULAR_EXPRESSION
  "train, no read-ahead\nlethe train: data stream: [0-9.]+ s waiting for batches in 4 steps, [0-9]+\\.[0-9][0-9]% of step time.*no read-ahead: prefetch is off.*lethe unlearn: data stream: [0-9.]+ s waiting for batches in 4 steps, [0-9]+\\.[0-9][0-9]% of step time \\(rank [01], the most\\); the next batch is read ahead in a thread")

# The batched-generation benchmark (tests/bench_generate.sh: lethe's gen_greedy_batch at
# 1 rank and tp 2 against a PyTorch KV-cache peer), smoke-run on a very small model: one
# round must print both ratios (no timing is asserted). Needs PyTorch like the parity tests.
lethe_test_exe(bench_generate bench_generate.c)
lethe_test(NAME perf.bench_generate_smoke
  COMMAND env LETHE_GEN_BENCH=$<TARGET_FILE:bench_generate>
          bash ${CMAKE_CURRENT_SOURCE_DIR}/bench_generate.sh --rounds 1 --vocab 512 --dim 64
          --layers 2 --heads 2 --kv-heads 2 --mlp 128 --batch 4 --prompts 4 --new 8
  TIMEOUT 180 LABELS slow)
set_tests_properties(perf.bench_generate_smoke PROPERTIES
  FAIL_REGULAR_EXPRESSION "FAILED \\(exit" PASS_REGULAR_EXPRESSION
  "ratio lethe/PyTorch, 1 rank vs 1 thread: [0-9]+\\.[0-9]+.*ratio lethe/PyTorch, tp 2 vs 2 threads: [0-9]+\\.[0-9]+")
