# tests/objectives.cmake — the unlearning objectives (model/objectives.c) and the unlearn
# job's NPO reference (jobs/unlearn.c) against independent computations.
#
# Included by tests/CMakeLists.txt, it registers
#   objectives.unit        test_objectives unit: forget_loss against the written formulas and
#                          finite differences of dl/ds, the sigmoid's tails, the per-sequence
#                          weights of unlearn_objective_seq
#   objectives.<case>      `mpirun -n 1 objectives_dump DIR --case <case>` (a model that has
#                          memorised a 4 forget + 4 retain batch of mixed lengths with a
#                          masked prompt; the job's unlearn_ctx; one and two micro-batches; one
#                          optimizer step), then `$LETHE_PYTHON tests/torch_objectives.py DIR`
#                          asserts loss, its parts and every gradient against PyTorch autograd
#                          of the written formula in float64 to min(1e-4, max(1e-5, twice the
#                          case's float32-vs-float64 reference noise)) relative, to 1e-4
#                          against float32, and that the step descends
#   objectives.npo_cache   the real job path: `lethe synth` (authors, 20 authors x 11
#                          questions), `mpirun -n 2 lethe train` for 8 steps (the initial
#                          checkpoint), `mpirun -n 2 lethe unlearn` with method npo at dp 2
#                          (11 forget rows: the reference pass ends on a partial batch split
#                          unevenly over the replicas), then `test_objectives npo-cache` checks
#                          output.dir/npo_reference.jsonl against a fresh 1-rank forward of the
#                          initial checkpoint to 1e-5 relative
# Cases: ga (forget rows only, as the job batches ga), ga_retain_rows (retain rows present
# must carry no weight), graddiff (c_f 1, c_r 1), npo_beta0.1 and npo_beta2 (s_ref from
# model_forward of the initial weights), npo_beta0.1_perturbed_ref and
# npo_beta2_perturbed_ref (s_ref from a perturbed model: s - s_ref != 0), simnpo (beta 2.5,
# c_f 0.1375, c_r 1, gamma 0) and simnpo_gamma0.5 (beta 4.5, c_f 0.125, c_r 1, gamma 0.5);
# simnpo_kl and npo_beta0.1_kl take the retain term as token-mean KL(q || p) to a
# perturbed copy of the weights (soft targets; at the initial weights KL is flat).
# wga (beta 1), wga_beta0.5 (c_f 0.5), satimp (beta 5, beta2 1, c_r 0.1: open-unlearning's
# defaults) and satimp_kl (beta 2, beta2 0.5, KL retain) are the token-weighted methods:
# per-token detached weights, the forget term a token-mean over the batch's forget tokens.
# ceu and ceu_cf0.5: CE-U (forget rows only; first answer token skipped; soft targets from
# the current weights without the true token, recomputed after the step). undial (beta 10,
# open-unlearning's default) and undial_beta2 (c_r 0.5): soft targets from a perturbed
# copy of the weights (the starting model) with the true logit lowered by beta.
# idknll, idknll_kl (c_f 0.5, KL retain), dpo_beta0.1 (open-unlearning's default, reference
# = the initial weights: sigma 1/2), dpo_beta2_perturbed_ref, idkdpo_perturbed_ref (c_r 0.5)
# and idkdpo_kl: the pair methods (model/objective_pairs.c), forget rows 0-1 the forget
# answers, 2-3 the alternate answers; DPO's weights from pairs_forward, as the job takes them.
# pdu (c_f 1, lambda 1) and pdu_kl (c_f 0.5, lambda 0.3, KL retain): the forget rows'
# logit-margin flattening term, mean over forget targets of (max_j z_j - mean_j z_j)^2,
# plus lambda times the retain term (loss_retain is the retain term itself, unweighted).
# graddiff_wagle: also WAGLE's scores |(theta - grad L_r / mu) * grad L_f| (mu 1e-3).
#
# Run as a script (cmake -DMODE=case|npo_cache ... -P tests/objectives.cmake) it is the
# driver of one test. A missing mpirun or PyTorch is a failure, not a skip.

if(CMAKE_SCRIPT_MODE_FILE)
  set(mpirun "$ENV{MPIRUN}")
  if(NOT mpirun OR mpirun MATCHES "NOTFOUND$" OR NOT EXISTS "${mpirun}")
    message(FATAL_ERROR "objectives: MPIRUN='${mpirun}' is not an mpirun")
  endif()
  if(MODE STREQUAL "case")
    foreach(var CASE DIR DUMP REF)
      if(NOT DEFINED ${var})
        message(FATAL_ERROR "objectives: -D${var}=... not given")
      endif()
    endforeach()
    set(python "$ENV{LETHE_PYTHON}")
    if(NOT python OR python MATCHES "NOTFOUND$" OR NOT EXISTS "${python}")
      message(FATAL_ERROR "objectives.${CASE}: LETHE_PYTHON='${python}' is not a python3 "
                          "(the reference needs /usr/bin/python3 with Debian's python3-torch)")
    endif()
    file(REMOVE_RECURSE "${DIR}")
    file(MAKE_DIRECTORY "${DIR}")
    execute_process(COMMAND "${mpirun}" -n 1 "${DUMP}" "${DIR}" --case "${CASE}"
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "objectives.${CASE}: objectives_dump failed (${rc})")
    endif()
    execute_process(COMMAND "${python}" "${REF}" "${DIR}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "objectives.${CASE}: torch_objectives.py reports a mismatch or could "
                          "not run (${rc})")
    endif()
  elseif(MODE STREQUAL "npo_cache")
    foreach(var DIR LETHE TEST)
      if(NOT DEFINED ${var})
        message(FATAL_ERROR "objectives.npo_cache: -D${var}=... not given")
      endif()
    endforeach()
    file(REMOVE_RECURSE "${DIR}")
    file(MAKE_DIRECTORY "${DIR}")
    # the model of both jobs; vocab_size covers the word vocabulary of this synth config
    set(model "\"model\": {\"vocab_size\": 600, \"dim\": 32, \"n_layers\": 2, \"n_heads\": 4,
    \"n_kv_heads\": 2, \"mlp_dim\": 48, \"max_seq_len\": 40, \"init_seed\": 77},
  \"layout\": {\"dp\": 2, \"pp\": 1, \"tp\": 1, \"micro_batches\": 1}, \"threads\": 1")
    file(WRITE "${DIR}/synth.json" "{\"synth\": {\"kind\": \"authors\", \"seed\": 11,
  \"output\": \"${DIR}/data.h5\", \"n_authors\": 20, \"questions\": 11, \"perturbed\": 2,
  \"holdout_authors\": 2, \"utility_facts\": 8, \"seq_len\": 40},
  \"output\": {\"dir\": \"${DIR}/synth\"}}\n")
    file(WRITE "${DIR}/train.json" "{${model},
  \"optim\": {\"schedule\": \"constant\", \"lr\": 0.003, \"warmup_steps\": 0},
  \"data\": {\"source\": \"hdf5\", \"path\": \"${DIR}/data.h5\", \"split\": \"train_full\"},
  \"train\": {\"steps\": 8, \"batch_size\": 8, \"log_every\": 4},
  \"output\": {\"dir\": \"${DIR}/train\"}}\n")
    # 11 forget rows, reference pass over batches of 4 + 4 = 8 rows at dp 2: 8 then 3
    file(WRITE "${DIR}/unlearn.json" "{${model},
  \"optim\": {\"schedule\": \"constant\", \"lr\": 0.001, \"warmup_steps\": 0},
  \"data\": {\"source\": \"hdf5\", \"path\": \"${DIR}/data.h5\", \"forget_split\": \"forget05\",
           \"retain_split\": \"retain95\"},
  \"unlearn\": {\"method\": \"npo\", \"beta\": 0.1, \"c_f\": 1, \"c_r\": 1, \"epochs\": 1,
              \"warmup_epochs\": 0, \"batch_size\": 4, \"retain_batch_size\": 4},
  \"init\": {\"checkpoint\": \"${DIR}/train/model.h5\"},
  \"output\": {\"dir\": \"${DIR}/unlearn-npo\"}}\n")
    foreach(step "1;synth;synth.json" "2;train;train.json" "2;unlearn;unlearn.json")
      list(GET step 0 np)
      list(GET step 1 job)
      list(GET step 2 conf)
      execute_process(COMMAND "${mpirun}" -n ${np} "${LETHE}" ${job} "${DIR}/${conf}"
                      RESULT_VARIABLE rc)
      if(NOT rc EQUAL 0)
        message(FATAL_ERROR "objectives.npo_cache: `mpirun -n ${np} lethe ${job} ${conf}` "
                            "failed (${rc})")
      endif()
    endforeach()
    execute_process(COMMAND "${mpirun}" -n 1 "${TEST}" npo-cache "${DIR}/unlearn-npo"
                    RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "objectives.npo_cache: the cached NPO reference does not match a fresh "
                          "forward of the initial model (${rc})")
    endif()
  else()
    message(FATAL_ERROR "objectives: -DMODE=case|npo_cache not given (got '${MODE}')")
  endif()
  return()
endif()

lethe_test_exe(test_objectives ${CMAKE_CURRENT_SOURCE_DIR}/test_objectives.c)
lethe_test(NAME objectives.unit COMMAND test_objectives unit LABELS "objectives")

lethe_test_exe(objectives_dump ${CMAKE_CURRENT_SOURCE_DIR}/objectives_dump.c)
foreach(case ga ga_retain_rows graddiff npo_beta0.1 npo_beta2 npo_beta0.1_perturbed_ref
        npo_beta2_perturbed_ref simnpo simnpo_gamma0.5 simnpo_kl npo_beta0.1_kl
        wga wga_beta0.5 satimp satimp_kl ceu ceu_cf0.5 undial undial_beta2
        idknll idknll_kl dpo_beta0.1 dpo_beta2_perturbed_ref idkdpo_perturbed_ref idkdpo_kl
        pdu pdu_kl graddiff_wagle)
  lethe_test(NAME objectives.${case}
    COMMAND ${CMAKE_COMMAND} -DMODE=case -DCASE=${case}
            -DDIR=${CMAKE_CURRENT_BINARY_DIR}/objectives/${case}
            -DDUMP=$<TARGET_FILE:objectives_dump>
            -DREF=${CMAKE_CURRENT_SOURCE_DIR}/torch_objectives.py -P ${CMAKE_CURRENT_LIST_FILE}
    TIMEOUT 180 LABELS "objectives;parity")
endforeach()

lethe_test(NAME objectives.npo_cache
  COMMAND ${CMAKE_COMMAND} -DMODE=npo_cache -DDIR=${CMAKE_CURRENT_BINARY_DIR}/objectives/npo_cache
          -DLETHE=$<TARGET_FILE:lethe> -DTEST=$<TARGET_FILE:test_objectives>
          -P ${CMAKE_CURRENT_LIST_FILE}
  TIMEOUT 180 LABELS "objectives;mpi")
