# `lethe slurm` (jobs/slurm.c, slurm/plan.h), tests/slurm_study.sh:
# - slurm.submit: no Slurm needed: every bad command line's message, and the dry runs of
#   jobs/studies/tofu-slurm-ci.json and jobs/studies/scaling.json (the scripts' shape,
#   job arrays over task lists, the done-marker skip, the sweep's layouts and batches).
# - slurm.study: on a private single-host Slurm of 4 virtual nodes, the study submitted as
#   chained jobs and job arrays across 2 nodes (every job COMPLETED 0:0 after its
#   dependencies, .done markers, the report), a real `lethe train` job signalled,
#   requeued and resumed, and a node-count sweep of bench jobs feeding scaling.md. Needs
#   root and Debian's slurm-wlm and munge; about 2.5 minutes on 2 loaded cores.
lethe_test(NAME slurm.submit
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_study.sh --offline
  TIMEOUT 400 LABELS "slurm;nosan")  # ~25 lethe start-ups: minutes under ASan
lethe_test(NAME slurm.study
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/slurm_study.sh
  TIMEOUT 900 LABELS slurm)
