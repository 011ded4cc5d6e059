#!/bin/bash
# `lethe slurm` end to end.
#
# slurm_study.sh --offline (no Slurm needed): every bad command line gives its one-line
# message and exit 2; the dry run of jobs/studies/tofu-slurm-ci.json writes 12 scripts
# that pass `bash -n` and hold no dependency, with the right shape: the 2-rank jobs on 2
# nodes of 1 rank messaging through Open MPI's UCX layer (virtual nodes of one host),
# the signal (half of a 3-minute limit) and requeue on train/unlearn/relearn only, job arrays over a task list with the throttle,
# the report on DIR; the scripts skip a job marked done and pick their array task's
# folder; the dry run of jobs/studies/scaling.json --nodes-list 1,2,4 --serial writes
# one exclusive bench job per node count and kind with layout.dp = 2 x nodes, the strong
# batch fixed and the weak one growing with the nodes, labels.json naming the nodes,
# each job waiting for the one before.
#
# slurm_study.sh (needs Slurm): bring up a private single-host cluster of 4
# virtual nodes (slurm/local-cluster.sh, in a folder of its own), then
#   1. submit the study jobs/studies/tofu-slurm-ci.json (synth, origin, retrain, their
#      evals, 2 methods x 2 seeds of unlearn -> eval -> relearn as 6 job arrays of 2
#      tasks, report) with every MPI job on 2 nodes of 1 rank each (layout dp=2, UCX
#      messaging). Every job and array task must end COMPLETED 0:0, the 2-rank jobs on 2
#      nodes; no job may start before the jobs it waited for (afterok) ended; every job
#      folder must hold .done; the report's results.md must have a row per method (ga,
#      simnpo, origin, retrain). Submitting the finished study again submits nothing.
#   2. the preemption path with a real job: `lethe slurm --job train` of the study's
#      origin config for 100 steps; once its train_log.jsonl.partial has 3 lines, SIGUSR1
#      to its batch shell (what --signal=B:USR1@S does near the time limit). The script
#      forwards it to the ranks, which write checkpoint.h5 and exit; the job requeues
#      itself and resumes: Restarts=1, COMPLETED 0:0, its output says "preempted after
#      step" and then "resuming from", model.h5 and .done exist, no checkpoint.h5 is left,
#      and train_log.jsonl holds steps 1..100 exactly once each.
#   3. while that job waits to be requeued: a node-count sweep of bench jobs (a tiny
#      model, 1, 2 and 4 nodes of 2 ranks, strong and weak scaling): 7 jobs COMPLETED 0:0
#      on their node counts, each bench-<kind>-n<N>/labels.json naming its nodes, and the
#      report's scaling.md with the strong series on 1, 2 and 4 nodes.
# Completion is read from `scontrol show job` (no accounting), every wait bounded; the
# cluster is always torn down. Needs Debian's slurm-wlm and munge (jobs/setup.sh --tests
# installs them), root, LETHE_BIN and LETHE_SOURCE_DIR (set by the ctest harness).
set -u
# Every wait ends by this time (seconds since the start), so the script tears the
# cluster down itself before ctest's 900 s timeout would kill it.
deadline=840

src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
bin="${LETHE_BIN:-$src/build/lethe}"
PATH="$PATH:/usr/sbin:/sbin"

fail() {
    echo "FAIL: $*"
    exit 1
}

nfail=0
check() { # condition-result message
    if [ "$1" = 0 ]; then
        echo "ok   $2"
    else
        echo "FAIL $2"
        nfail=$((nfail + 1))
        return 1
    fi
}

# ---- offline: command-line errors and dry runs (no Slurm) --------------------------------
offline() {
    [ -x "$bin" ] || fail "lethe binary '$bin' not found (set LETHE_BIN)"
    local w ci sc
    w="$(mktemp -d /tmp/lethe-slurm-submit.XXXXXX)" || fail "mktemp failed"
    # shellcheck disable=SC2064 # expand now
    trap "rm -rf '$w'" EXIT
    ci="$src/jobs/studies/tofu-slurm-ci.json"
    sc="$src/jobs/studies/scaling.json"
    printf '{"study": "bad", "bench": {"train": {"batch_size": 10}}, "ntasks_per_node": 2}\n' \
        >"$w/bad-sweep.json"
    # args (one word per line) | expected stderr, exactly
    local cases=(
        "|lethe: slurm: no study file given (see lethe slurm --help)"
        "$ci
--frobnicate|lethe: slurm: unknown option '--frobnicate' (see lethe slurm --help)"
        "$ci
--time|lethe: slurm: --time needs a value (see lethe slurm --help)"
        "$ci
--time
1:99:00|lethe: slurm: --time '1:99:00' is not a Slurm time above zero (expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
        "$ci
--time
3
--signal-seconds
180|lethe: slurm: --signal-seconds 180 is not less than --time '3' (180 s)"
        "$ci
--launcher
pbs|lethe: slurm: --launcher 'pbs' is not srun or mpirun"
        "$ci
--nodes
0|lethe: slurm: --nodes '0' is not an integer in 1..100000"
        "$ci
--nodes
2
--ntasks-per-node
1|lethe: slurm: give --nodes or --ntasks-per-node, not both"
        "$ci
--nodes-list
1,2|lethe: slurm: --nodes-list applies to a sweep of bench jobs (a file with \"bench\"), and '$ci' is a study"
        "$sc
--nodes-list
1,x|lethe: slurm: --nodes-list '1,x': 'x' is not a node count in 1..100000 (at most 64 counts, comma-separated)"
        "$sc
--nodes-list
2,2|lethe: slurm: --nodes-list '2,2' names 2 twice"
        "$sc
--nodes
2|lethe: slurm: --nodes does not apply to a sweep (use --nodes-list)"
        "$w/bad-sweep.json
--nodes-list
1,4|lethe: slurm: sweep '$w/bad-sweep.json': strong scaling on 4 nodes: batch 10 is not divisible by layout.dp = 8"
        "$w/missing.json|lethe: slurm: cannot open study '$w/missing.json': No such file or directory"
        "--job
bogus
$ci|lethe: slurm: --job 'bogus' is not one of synth, train, unlearn, eval, relearn, bench"
        "--job
train
$src/jobs/configs/demo.json
--set
output.dir=x|lethe: slurm: --set output.dir=x: the job's output folder is DIR/NAME (use --dir, --name)"
    )
    local c a want got rc
    for c in "${cases[@]}"; do
        a="${c%%|*}"
        want="${c#*|}"
        local args=()
        [ -n "$a" ] && mapfile -t args <<<"$a"
        got="$(cd "$w" && "$bin" slurm "${args[@]}" 2>&1 >/dev/null)"
        rc=$?
        [ $rc = 2 ] && [ "$got" = "$want" ]
        check $? "lethe slurm ${args[*]}: exit $rc, [$got]"
        [ "$got" = "$want" ] || echo "     expected [$want]"
    done
    [ "$(find "$w" -mindepth 1 ! -name bad-sweep.json | wc -l)" = 0 ]
    check $? "refused command lines leave nothing behind"

    # the study, dry run: 2 nodes, loopback, a 3-minute limit, throttle 1
    local d="$w/dry" out
    out="$("$bin" slurm "$ci" --dir "$d" --nodes 2 --loopback --time 3 --throttle 1 --dry-run)"
    rc=$?
    echo "$out"
    [ $rc = 0 ] && [[ "$out" == *"18 to submit (dry run) as 12 submissions"* ]]
    check $? "dry run of the study: exit $rc, 18 jobs in 12 submissions"
    local scripts n
    mapfile -t scripts < <(find "$d" -name '*.sbatch' | sort)
    [ ${#scripts[@]} = 12 ]
    check $? "${#scripts[@]} scripts (expected 12: 6 jobs, 6 arrays)"
    n=0
    for f in "${scripts[@]}"; do bash -n "$f" || n=$((n + 1)); done
    [ $n = 0 ]
    check $? "every script passes bash -n ($n do not)"
    ! grep -l -- '--dependency' "${scripts[@]}" >/dev/null
    check $? "a dry run renders no dependencies (the ids are not known)"
    has() { grep -qF -- "$2" "$1"; }
    local o="$d/origin/job.sbatch"
    has "$o" "#SBATCH --job-name=tofu-slurm-ci:origin" && has "$o" "#SBATCH --nodes=2" &&
        has "$o" "#SBATCH --ntasks=2" && has "$o" "#SBATCH --ntasks-per-node=1" &&
        has "$o" "#SBATCH --time=3" && has "$o" "#SBATCH --output=$d/origin/slurm-%j.out" &&
        has "$o" "#SBATCH --open-mode=append"
    check $? "origin: job name, 2 nodes x 1 rank, time, output in its folder (appended)"
    has "$o" "#SBATCH --signal=B:USR1@90" && has "$o" "#SBATCH --requeue" &&
        has "$o" 'scontrol requeue'
    check $? "origin (train): USR1 90 s before the 3-minute limit, requeue"
    has "$o" "export OMPI_MCA_pml=ucx" && has "$o" "export OMPI_MCA_btl=self"
    check $? "origin: 2 nodes with --loopback: Open MPI's UCX messaging"
    has "$o" "srun --mpi=pmix $bin train $d/origin/job.json"
    check $? "origin: srun --mpi=pmix lethe train <dir>/origin/job.json"
    local e="$d/eval-origin-05/job.sbatch"
    ! has "$e" "--signal" && ! has "$e" "--requeue"
    check $? "eval: no signal, no requeue"
    local s1="$d/synth/job.sbatch"
    has "$s1" "#SBATCH --nodes=1" && has "$s1" "#SBATCH --ntasks=1" && ! has "$s1" OMPI_MCA_pml
    check $? "synth: 1 rank on 1 node, no loopback transport"
    has "$d/report/job.sbatch" "$bin report $d" && has "$d/report/job.sbatch" "--ntasks=1"
    check $? "report: lethe report <dir> on 1 rank"
    local u="$d/unlearn-05-ga-g0.sbatch"
    has "$u" "#SBATCH --array=0-1%1" && has "$u" "#SBATCH --signal=B:USR1@90" &&
        has "$u" "#SBATCH --output=$d/unlearn-05-ga-g0.logs/%A_%a.out" &&
        has "$u" "$bin unlearn \"\$job_dir\"/job.json"
    check $? "unlearn-05-ga-g0: one array of 2 tasks, throttle 1, its task's config"
    [ "$(cat "$d/unlearn-05-ga-g0.tasks")" = "$(printf '%s\n' "$d/unlearn-05-ga-g0-s1" "$d/unlearn-05-ga-g0-s2")" ]
    check $? "unlearn-05-ga-g0.tasks lists the 2 seeds' folders"
    [[ "$out" == *"report "*"eval-origin-05 eval-05-ga-g0 relearn-05-ga-g0 eval-05-simnpo-g0 relearn-05-simnpo-g0"* ]]
    check $? "the report waits for every submission no other one waits for"
    "$bin" slurm "$ci" --dir "$w/dry-mpirun" --launcher mpirun --nodes 2 --dry-run >/dev/null &&
        has "$w/dry-mpirun/origin/job.sbatch" "mpirun -n 2 $bin train" &&
        ! has "$w/dry-mpirun/origin/job.sbatch" OMPI_MCA_pml
    check $? "--launcher mpirun: mpirun -n 2 inside the allocation; no loopback without --loopback"
    # the scripts' own logic, run by bash: a job marked done does not run again, and an
    # array task runs the folder on its line of the task list
    touch "$d/synth/.done" "$d/unlearn-05-ga-g0-s2/.done"
    out="$(bash "$s1" 2>&1)"
    rc=$?
    [ $rc = 0 ] && [ "$out" = "lethe slurm: $d/synth is done (.done); nothing to run" ]
    check $? "synth marked done: its script exits 0 at once [$out]"
    out="$(SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_JOB_ID=7 bash "$u" 2>&1)"
    rc=$?
    [ $rc = 0 ] && [ "$out" = "lethe slurm: array task 1 runs $d/unlearn-05-ga-g0-s2; output in $d/unlearn-05-ga-g0-s2/slurm-7_1.out" ] &&
        [ "$(cat "$d/unlearn-05-ga-g0-s2/slurm-7_1.out")" = "lethe slurm: $d/unlearn-05-ga-g0-s2 is done (.done); nothing to run" ]
    check $? "array task 1 picks the second folder, finds it done, exits 0"
    out="$(SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_JOB_ID=7 bash "$u" 2>&1)"
    rc=$?
    [ $rc = 1 ] && [ "$out" = "lethe slurm: $d/unlearn-05-ga-g0.tasks has no line 6 for array task 5" ]
    check $? "array task 5 of 2: exit $rc [$out]"
    out="$("$bin" slurm "$ci" --dir "$d" --nodes 2 --dry-run)"
    [[ "$out" == *"16 to submit (dry run) as 11 submissions, 2 done"* ]] &&
        grep -qx -- "#SBATCH --array=0" "$u"
    check $? "synth and one array task marked done: 16 jobs left, the array keeps task 0 only"

    # the sweep, dry run
    local sw="$w/sweep"
    out="$("$bin" slurm "$sc" --nodes-list 1,2,4 --ntasks-per-node 2 --serial --dir "$sw" --dry-run)"
    rc=$?
    echo "$out"
    [ $rc = 0 ] && [[ "$out" == *"7 to submit (dry run) as 7 submissions"* ]]
    check $? "dry run of the sweep: exit $rc, 7 jobs"
    local kind nn dp batch j
    for kind in strong weak; do
        for nn in 1 2 4; do
            j="$sw/bench-$kind-n$nn"
            dp=$((2 * nn))
            batch=32
            [ $kind = weak ] && batch=$((32 * nn))
            grep -qE "\"dp\":[[:space:]]+$dp,?\$" "$j/job.json" &&
                grep -qE "\"batch_size\":[[:space:]]+$batch,?\$" "$j/job.json" &&
                has "$j/job.sbatch" "#SBATCH --nodes=$nn" &&
                has "$j/job.sbatch" "#SBATCH --ntasks=$dp" &&
                has "$j/job.sbatch" "#SBATCH --exclusive" &&
                has "$j/job.sbatch" "$bin bench $j/job.json" &&
                grep -qE "\"nodes\":[[:space:]]+$nn,?\$" "$j/labels.json" &&
                grep -qE "\"scaling\":[[:space:]]+\"$kind\",?\$" "$j/labels.json"
            check $? "bench-$kind-n$nn: $nn exclusive nodes, layout.dp $dp, batch $batch, labels"
        done
    done
    [[ "$out" == *"bench-strong-n2  -         bench-strong-n1"* ]] &&
        [[ "$out" == *"bench-weak-n1    -         bench-strong-n4"* ]]
    check $? "--serial: each bench job waits for the one before"
    echo "$nfail failed"
    [ $nfail = 0 ]
    exit
}
[ "${1:-}" = --offline ] && offline

missing=""
for c in sbatch srun scontrol squeue scancel slurmctld slurmd munged mungekey; do
    command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
[ -z "$missing" ] || fail "Slurm is not installed (missing:$missing); install the Debian" \
    "packages slurm-wlm munge (bash jobs/setup.sh --tests does)"
[ "$(id -u)" = 0 ] || fail "the local Slurm cluster must be brought up as root"
[ -x "$bin" ] || fail "lethe binary '$bin' not found (set LETHE_BIN)"

work="$(mktemp -d /tmp/lethe-slurm-study.XXXXXX)" || fail "mktemp failed"
chmod 755 "$work"
cluster="$work/cluster"
teardown() {
    bash "$src/slurm/local-cluster.sh" down --dir "$cluster" >/dev/null 2>&1 ||
        echo "warning: local-cluster.sh down --dir $cluster failed"
    rm -rf "$work"
}
trap teardown EXIT
trap 'exit 130' INT TERM HUP

envlines="$(bash "$src/slurm/local-cluster.sh" up --dir "$cluster" --nodes 4)" ||
    fail "local-cluster.sh up failed (message above)"
eval "$envlines"
[ -f "${SLURM_CONF:-}" ] || fail "local-cluster.sh up printed no SLURM_CONF"
echo "cluster up: SLURM_CONF=$SLURM_CONF"


# The value of FIELD in one `scontrol show job -o` record.
field() { # record field
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
}

# waits (bounded by SECONDS and the deadline) until squeue lists none of the job ids
# (array ids cover their tasks); returns 1 on timeout.
wait_gone() { # seconds id...
    local stop=$((SECONDS + $1)) left id
    shift
    [ $stop -le $deadline ] || stop=$deadline
    while :; do
        left=""
        for id in "$@"; do
            [ -n "$(squeue -h -j "$id" 2>/dev/null)" ] && left="$left $id"
        done
        [ -z "$left" ] && return 0
        [ $SECONDS -ge $stop ] && {
            echo "still queued or running:$left"
            squeue
            return 1
        }
        sleep 1
    done
}

show_log() { # file
    echo "---- $1 (last 20 lines)"
    tail -n 20 "$1" 2>/dev/null
}

# --- 1. a study ------------------------------------------------------------------------
study="$work/study"
t0=$SECONDS
"$bin" slurm "$src/jobs/studies/tofu-slurm-ci.json" --dir "$study" --nodes 2 --loopback \
    --time 15 --throttle 2 >"$work/submit.out" 2>&1
rc=$?
cat "$work/submit.out"
[ $rc = 0 ] || fail "lethe slurm of the study failed (exit $rc)"
tsv="$study/slurm_jobs.tsv"
[ -f "$tsv" ] || fail "lethe slurm wrote no $tsv"
mapfile -t rows < <(grep -v '^#' "$tsv")
[ ${#rows[@]} = 18 ]
check $? "slurm_jobs.tsv records ${#rows[@]} jobs (expected 18)"
narray="$(printf '%s\n' "${rows[@]}" | awk -F'\t' '$3 != "-"' | wc -l)"
[ "$narray" = 12 ]
check $? "$narray jobs run as array tasks (expected 12: unlearn, eval, relearn x 2 methods x 2 seeds)"
ids="$(printf '%s\n' "${rows[@]}" | cut -f2 | sed 's/_.*//' | sort -un | tr '\n' ' ')"
# shellcheck disable=SC2086 # one id per word
wait_gone 600 $ids || {
    for f in "$study"/*/slurm-*.out; do [ -f "$f" ] && show_log "$f"; done
    fail "the study's jobs did not finish within 600 s"
}
echo "study finished $((SECONDS - t0)) s after submission"

# Every job: COMPLETED 0:0, on 2 nodes when it has 2 ranks, started after its dependencies.
for row in "${rows[@]}"; do
    IFS=$'\t' read -r name id _ dep _ <<<"$row"
    rec="$(scontrol show job -o "$id" 2>/dev/null | head -n1)"
    state="$(field "$rec" JobState)"
    code="$(field "$rec" ExitCode)"
    [ "$state" = COMPLETED ] && [ "$code" = 0:0 ]
    ok=$?
    check $ok "$name ($id): ${state:-no record} ${code:-}"
    if [ $ok != 0 ]; then
        for f in "$study/$name"/slurm-*.out; do [ -f "$f" ] && show_log "$f"; done
    fi
    nodes="$(field "$rec" NumNodes)"
    case "$name" in synth | report) want=1 ;; *) want=2 ;; esac
    [ "$nodes" = "$want" ]
    check $? "$name ran on ${nodes:-?} node(s) (expected $want)"
    start="$(field "$rec" StartTime)"
    for d in $(echo "${dep#afterok:}" | tr ':' ' '); do
        [ "$d" = - ] && continue
        late="$(scontrol show job -o "$d" | while read -r r; do
            e="$(field "$r" EndTime)"
            [[ "$e" > "$start" ]] && echo "$e"
        done)"
        [ -z "$late" ]
        check $? "$name started at $start, after job $d ended${late:+ (it ended at $late)}"
    done
    [ -e "$study/$name/.done" ]
    check $? "$name/.done exists"
done
md="$study/report/results.md"
[ -s "$md" ]
check $? "report/results.md exists"
for m in origin retrain ga simnpo; do
    grep -q "^| $m | forget05 |" "$md"
    check $? "results.md has a row for $m"
done

# A finished study submits nothing again.
"$bin" slurm "$src/jobs/studies/tofu-slurm-ci.json" --dir "$study" --nodes 2 --loopback \
    --time 15 >"$work/resubmit.out" 2>&1
rc=$?
n2="$(grep -vc '^#' "$tsv")"
[ $rc = 0 ] && [ "$n2" = 18 ] && grep -q ": 0 submitted as 0 submissions, 18 done" "$work/resubmit.out"
check $? "submitting the finished study again submits nothing (exit $rc, $n2 records)"

# --- 2. preemption: signal, checkpoint, requeue, resume ------------------------------------
pre="$work/preempt"
"$bin" slurm --job train "$study/origin/job.json" --dir "$pre" --name train \
    --set train.steps=100 --nodes 2 --loopback --time 15 >"$work/preempt.out" 2>&1
rc=$?
cat "$work/preempt.out"
[ $rc = 0 ] || fail "lethe slurm --job train failed (exit $rc)"
pid="$(grep -v '^#' "$pre/slurm_jobs.tsv" | cut -f2)"
partial="$pre/train/train_log.jsonl.partial"
stop=$((SECONDS + 120))
while [ "$(wc -l 2>/dev/null <"$partial" || echo 0)" -lt 3 ]; do
    if [ $SECONDS -ge $stop ] || [ $SECONDS -ge $deadline ]; then
        show_log "$pre/train/slurm-$pid.out"
        fail "train job $pid: no 3 steps in $partial within 120 s"
    fi
    sleep 0.1
done
scancel --signal=USR1 --batch "$pid" || fail "scancel --signal=USR1 --batch $pid failed"
echo "signalled train job $pid after $(wc -l <"$partial") steps"

# --- 3. a node-count sweep, while the train job waits to start again -------------------------
cat >"$work/sweep.json" <<'EOF'
{"study": "sweep-ci",
 "bench": {"model": {"vocab_size": 512, "dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
                     "mlp_dim": 172, "max_seq_len": 32},
           "layout": {"pp": 1, "tp": 1, "micro_batches": 1},
           "data": {"source": "synthetic-markov", "seed": 7, "branching": 4, "min_len": 16},
           "train": {"batch_size": 16, "seq_len": 32},
           "bench": {"warmup": 1, "steps": 3}},
 "ntasks_per_node": 2, "scaling": ["strong", "weak"]}
EOF
sweep="$work/sweep"
"$bin" slurm "$work/sweep.json" --nodes-list 1,2,4 --dir "$sweep" --loopback --time 10 \
    >"$work/sweep.out" 2>&1
rc=$?
cat "$work/sweep.out"
[ $rc = 0 ] || fail "lethe slurm of the sweep failed (exit $rc)"

if ! wait_gone 300 "$pid"; then
    show_log "$pre/train/slurm-$pid.out"
    fail "train job $pid not finished within 300 s of the signal"
fi
rec="$(scontrol show job -o "$pid")"
state="$(field "$rec" JobState)"
code="$(field "$rec" ExitCode)"
restarts="$(field "$rec" Restarts)"
[ "$state" = COMPLETED ] && [ "$code" = 0:0 ]
check $? "train job $pid: $state $code (expected COMPLETED 0:0)"
[ "$restarts" = 1 ]
check $? "train job $pid requeued itself $restarts time(s) (expected 1)"
out="$pre/train/slurm-$pid.out"
grep -q "preempted after step" "$out"
check $? "its first run wrote a checkpoint when signalled (\"preempted after step\")"
grep -q "resuming from $pre/train/checkpoint.h5" "$out"
check $? "its requeued run resumed from it ($(grep -o 'resuming from .*' "$out"))"
[ -s "$pre/train/model.h5" ] && [ ! -e "$pre/train/checkpoint.h5" ] && [ -e "$pre/train/.done" ]
check $? "model.h5 and .done exist, checkpoint.h5 is gone"
steps="$(sed -n 's/^{"step":\([0-9]*\),.*/\1/p' "$pre/train/train_log.jsonl" 2>/dev/null |
    tr '\n' ' ')"
[ "$steps" = "$(seq -s ' ' 1 100) " ]
check $? "train_log.jsonl holds steps 1..100 once each ($(echo "$steps" | wc -w) lines)"
[ $nfail = 0 ] || show_log "$out"

mapfile -t srows < <(grep -v '^#' "$sweep/slurm_jobs.tsv" 2>/dev/null)
[ ${#srows[@]} = 7 ]
check $? "the sweep submitted ${#srows[@]} jobs (expected 7: 2 kinds x 3 node counts, report)"
# shellcheck disable=SC2046 # one id per word
wait_gone 300 $(printf '%s\n' "${srows[@]}" | cut -f2) || fail "the sweep did not finish within 300 s"
for row in "${srows[@]}"; do
    IFS=$'\t' read -r name id _ dep _ <<<"$row"
    rec="$(scontrol show job -o "$id" 2>/dev/null | head -n1)"
    state="$(field "$rec" JobState)"
    code="$(field "$rec" ExitCode)"
    nodes="$(field "$rec" NumNodes)"
    want="${name##*-n}"
    [ "$name" = report ] && want=1
    [ "$state" = COMPLETED ] && [ "$code" = 0:0 ] && [ "$nodes" = "$want" ]
    if ! check $? "$name ($id): ${state:-no record} ${code:-} on ${nodes:-?} node(s) (expected $want)"; then
        for f in "$sweep/$name"/slurm-*.out; do [ -f "$f" ] && show_log "$f"; done
    fi
    if [ "$name" != report ]; then
        grep -q "\"nodes\":[[:space:]]*$want," "$sweep/$name/labels.json"
        check $? "$name/labels.json names $want nodes"
    fi
done
smd="$sweep/report/scaling.md"
strong="$(sed -n '/scaling = strong/,/^## /p' "$smd" 2>/dev/null | grep -E '^\| [0-9]+ \|' |
    cut -d'|' -f2,3 | tr -d ' ' | tr '\n' ' ')"
[ "$strong" = "1|2 2|4 4|8 " ]
check $? "scaling.md: strong scaling on nodes|ranks ${strong:-none} (expected 1|2 2|4 4|8)"
[ -s "$sweep/report/scaling.png" ] || [ -z "$(command -v gnuplot)" ]
check $? "scaling.png exists (when gnuplot is installed)"

echo "total $SECONDS s; $nfail failed"
[ $nfail = 0 ]
