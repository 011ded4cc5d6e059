#!/bin/bash
# End to end on a real Slurm: bring up a private single-host cluster of 4 virtual nodes
# (slurm/local-cluster.sh, in a folder of its own), then
#   1. sbatch a 2-node job whose step is `srun --mpi=pmix -N2 -n2 lethe train` (demo
#      config, 5 steps): the job must end COMPLETED with ExitCode 0:0 and leave
#      config.json and a train_log.jsonl of exactly 5 lines;
#   2. sbatch a job array --array=0-2 whose tasks each write SLURM_ARRAY_TASK_ID to a
#      file: all 3 tasks COMPLETED 0:0, each file holding its own id;
#   3. sbatch a script rendered by slurm/sbatch.c (--signal=B:USR1, --requeue, srun),
#      signal its batch shell: the ranks get the signal, the job requeues itself once,
#      the second run finds their checkpoints, the job ends COMPLETED 0:0; the ranks
#      received their awkward arguments verbatim and the script's BLAS variables.
# Completion is read from `scontrol show job` (no accounting), bounded in time; the
# cluster is always torn down. Needs Debian's slurm-wlm and munge (jobs/setup.sh --tests
# installs them), root, LETHE_BIN and LETHE_SOURCE_DIR (set by the ctest harness).
#
# usage: slurm_local.sh TEST_SBATCH   (the test_sbatch program, which renders part 3)
set -u
# Every wait ends by this time (seconds since the start), so the script tears the
# cluster down itself before ctest's 300 s timeout would kill it (a killed script
# would leave its daemons running).
deadline=250

src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
bin="${LETHE_BIN:-$src/build/lethe}"
PATH="$PATH:/usr/sbin:/sbin"

fail() {
    echo "FAIL: $*"
    exit 1
}

missing=""
for c in sbatch srun scontrol sinfo squeue slurmctld slurmd munged mungekey; do
    command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
[ -z "$missing" ] || fail "Slurm is not installed (missing:$missing); install the Debian" \
    "packages slurm-wlm munge (bash jobs/setup.sh --tests does)"
[ "$(id -u)" = 0 ] || fail "the local Slurm cluster must be brought up as root"
[ -x "$bin" ] || fail "lethe binary '$bin' not found (set LETHE_BIN)"
render="${1:-}"
[ -x "$render" ] || fail "the script renderer (test_sbatch, argument 1) '$render' not found"

work="$(mktemp -d /tmp/lethe-slurm-test.XXXXXX)" || fail "mktemp failed"
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

# Prints the value of FIELD in one `scontrol show job -o` record.
field() { # record field
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
}

is_final() {
    case "$1" in
    COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | \
        DEADLINE | PREEMPTED)
        return 0
        ;;
    esac
    return 1
}

# wait_job ID SECONDS COUNT: waits (at most SECONDS, and never past the deadline) until
# the `scontrol show job -o ID` records (one per array task once the array is split)
# number COUNT and all are in a final state. Prints the records. Returns 1 on timeout.
wait_job() {
    local id="$1" count="$3" recs n done_n
    local stop=$((SECONDS + $2))
    [ $stop -le $deadline ] || stop=$deadline
    while [ $SECONDS -lt $stop ]; do
        recs="$(scontrol show job -o "$id" 2>/dev/null)"
        n="$(printf '%s\n' "$recs" | grep -c 'JobId=')"
        done_n=0
        while read -r r; do
            [ -n "$r" ] || continue
            is_final "$(field "$r" JobState)" && done_n=$((done_n + 1))
        done <<<"$recs"
        if [ "$n" -eq "$count" ] && [ "$done_n" -eq "$count" ]; then
            printf '%s\n' "$recs"
            return 0
        fi
        sleep 0.2
    done
    printf '%s\n' "$recs"
    return 1
}

show_logs() { # job output file
    [ -f "$1" ] && {
        echo "--- $1"
        tail -n 20 "$1"
    }
    echo "--- slurmctld log (last lines)"
    tail -n 10 "$cluster/log/slurmctld.log" 2>/dev/null
}

nfail=0
check() { # condition-result message
    if [ "$1" = 0 ]; then
        echo "ok   $2"
    else
        echo "FAIL $2"
        nfail=$((nfail + 1))
    fi
}

# --- 1. a 2-node MPI training job --------------------------------------------------
out="$work/train-out"
cat >"$work/train.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=lethe-train-test
#SBATCH --nodes=2
#SBATCH --ntasks=2
#SBATCH --ntasks-per-node=1
#SBATCH --time=5
#SBATCH --output=$work/train-%j.out
set -eu
# Root may start MPI ranks only with these; virtual nodes of one host message through
# Open MPI's UCX layer (ob1's /dev/shm segments would collide between them).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_pml=ucx OMPI_MCA_pml_ucx_tls=any OMPI_MCA_pml_ucx_devices=any OMPI_MCA_btl=self
export OPENBLAS_NUM_THREADS=1
echo "nodes: \$SLURM_JOB_NODELIST"
srun --mpi=pmix -N2 -n2 '$bin' train '$src/jobs/configs/demo.json' \\
    --set train.steps=5 --set optim.warmup_steps=1 --set output.dir='$out'
EOF
jid="$(sbatch --parsable --chdir="$work" "$work/train.sbatch")" ||
    fail "sbatch of the training job failed"
jid="${jid%%;*}"
echo "submitted training job $jid"
if ! rec="$(wait_job "$jid" 180 1)"; then
    show_logs "$work/train-$jid.out"
    scancel "$jid" 2>/dev/null
    fail "training job $jid not finished within 180 s: $(field "$rec" JobState)"
fi
state="$(field "$rec" JobState)"
code="$(field "$rec" ExitCode)"
[ "$state" = COMPLETED ]
check $? "training job $jid state $state (expected COMPLETED)"
[ "$code" = 0:0 ]
check $? "training job $jid exit code $code (expected 0:0)"
nodes="$(field "$rec" NumNodes)"
[ "$nodes" = 2 ]
check $? "training job $jid ran on $nodes nodes (expected 2): $(field "$rec" NodeList)"
[ -s "$out/config.json" ]
check $? "$out/config.json exists"
lines="$(wc -l <"$out/train_log.jsonl" 2>/dev/null || echo 0)"
[ "$lines" = 5 ]
check $? "train_log.jsonl has $lines lines (expected 5)"
[ $nfail = 0 ] || show_logs "$work/train-$jid.out"

# --- 2. a job array of 3 tasks ------------------------------------------------------
mkdir -p "$work/array"
aid="$(sbatch --parsable --chdir="$work" --job-name=lethe-array-test --array=0-2 --ntasks=1 \
    --time=2 --output="$work/array/task-%A_%a.out" \
    --wrap "echo \"\$SLURM_ARRAY_TASK_ID\" > '$work/array/id-'\"\$SLURM_ARRAY_TASK_ID\"")" ||
    fail "sbatch of the job array failed"
aid="${aid%%;*}"
echo "submitted job array $aid"
if ! recs="$(wait_job "$aid" 60 3)"; then
    printf '%s\n' "$recs"
    scancel "$aid" 2>/dev/null
    fail "job array $aid: 3 tasks not finished within 60 s"
fi
for t in 0 1 2; do
    r="$(printf '%s\n' "$recs" | grep " ArrayTaskId=$t ")"
    state="$(field "$r" JobState)"
    code="$(field "$r" ExitCode)"
    [ "$state" = COMPLETED ] && [ "$code" = 0:0 ]
    check $? "array task $t: state ${state:-missing} exit code ${code:-missing}" \
        "(expected COMPLETED 0:0)"
    got="$(cat "$work/array/id-$t" 2>/dev/null)"
    [ "$got" = "$t" ]
    check $? "array task $t wrote '$got' (expected '$t')"
done

# --- 3. a script rendered by slurm/sbatch.c: signal to the batch shell, requeue -------
# The rendered script traps USR1 (sent to the batch shell only, as --signal=B:USR1@60
# does near the time limit; here at once, with scancel --signal --batch), forwards it
# through srun to the ranks and requeues the job once they have exited. The ranks are
# a stand-in for lethe's checkpoint contract: on USR1 write a checkpoint and exit 0; on
# a start that finds the checkpoint, resume (here: record it and exit 0). Each rank also
# records its arguments and BLAS variables, which checks the script's quoting and
# exports on a real Slurm, and the Open MPI session folder the script makes for each
# of its runs, inside the OMPI_MCA_orte_tmpdir_base it was submitted with, and removes.
rec="$work/ranks"
mkdir -p "$rec"
cat >"$work/stand-in" <<STANDIN
#!/bin/bash
d='$rec'
run=\${SLURM_RESTART_COUNT:-0}
rank=\$SLURM_PROCID
printf '%s\\0' "\$@" >"\$d/args.\$rank.\$run"
echo "OPENBLAS_NUM_THREADS=\${OPENBLAS_NUM_THREADS-unset}" \\
    "OPENBLAS_CORETYPE=\${OPENBLAS_CORETYPE-unset}" >"\$d/env.\$rank.\$run"
s="\${OMPI_MCA_orte_tmpdir_base-unset}"
[ -d "\$s" ] && s="\$s (a folder)"
echo "\$s" >"\$d/session.\$rank.\$run"
if [ -f "\$d/ckpt.\$rank" ]; then
    echo "\$run" >"\$d/resumed.\$rank"
    exit 0
fi
trap 'echo "\$run" >"\$d/ckpt.\$rank"; exit 0' USR1
touch "\$d/ready.\$rank"
for i in \$(seq 1 1200); do sleep 0.1; done
exit 3
STANDIN
chmod 755 "$work/stand-in"
args=(train "it's \$HOME \`date\` \"q\"" --set 'x=a b' --set 'p=back\slash' "" $'two\nlines')
printf '%s\0' "${args[@]}" >"$work/args.expected"
ompi_base="$work/ompi"
mkdir -p "$ompi_base"
"$render" --render "$work/stand-in" "$work/requeue-%j.out" -- "${args[@]}" \
    >"$work/requeue.sbatch" || fail "test_sbatch --render failed"
# The submitter's BLAS variables must not reach the ranks (the script sets its own).
rid="$(OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=4 OMPI_MCA_orte_tmpdir_base="$ompi_base" \
    sbatch --parsable --chdir="$work" \
    "$work/requeue.sbatch")" || fail "sbatch of the rendered script failed"
rid="${rid%%;*}"
echo "submitted rendered job $rid"
stop=$((SECONDS + 60))
while [ $SECONDS -lt $stop ] && [ $SECONDS -lt $deadline ]; do
    [ -f "$rec/ready.0" ] && [ -f "$rec/ready.1" ] && break
    sleep 0.2
done
if ! [ -f "$rec/ready.0" ] || ! [ -f "$rec/ready.1" ]; then
    show_logs "$work/requeue-$rid.out"
    scancel "$rid" 2>/dev/null
    fail "rendered job $rid: its 2 ranks did not start within 60 s"
fi
scancel --signal=USR1 --batch "$rid" || fail "scancel --signal=USR1 --batch $rid failed"
# A requeued job may start again once the credential lifetime has passed (20 s here).
if ! rrec="$(wait_job "$rid" 120 1)"; then
    show_logs "$work/requeue-$rid.out"
    scancel "$rid" 2>/dev/null
    fail "rendered job $rid not finished within 120 s of the signal: $(field "$rrec" JobState)"
fi
state="$(field "$rrec" JobState)"
code="$(field "$rrec" ExitCode)"
restarts="$(field "$rrec" Restarts)"
# The name holds spaces: cut it between its neighbours rather than at spaces.
name="$(echo "$rrec" | sed -n 's/.*JobName=\(.*\) UserId=.*/\1/p')"
[ "$state" = COMPLETED ] && [ "$code" = 0:0 ]
check $? "rendered job $rid: state $state exit code $code (expected COMPLETED 0:0)"
[ "$restarts" = 1 ]
check $? "rendered job $rid requeued itself $restarts time(s) (expected 1)"
[ "$name" = 'lethe requeue "test" #2' ]
check $? "rendered job $rid is named [$name] (expected [lethe requeue \"test\" #2])"
for r in 0 1; do
    [ "$(cat "$rec/ckpt.$r" 2>/dev/null)" = 0 ]
    check $? "rank $r got USR1 in the first run and wrote its checkpoint"
    [ "$(cat "$rec/resumed.$r" 2>/dev/null)" = 1 ]
    check $? "rank $r found it in the requeued run"
    for run in 0 1; do
        cmp -s "$work/args.expected" "$rec/args.$r.$run"
        check $? "rank $r run $run received its ${#args[@]} arguments verbatim"
    done
    envl="$(cat "$rec/env.$r.0" 2>/dev/null)"
    [ "$envl" = "OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=unset" ]
    check $? "rank $r: ${envl:-no environment recorded} (expected 1 BLAS thread, no forced core)"
    for run in 0 1; do
        sess="$(cat "$rec/session.$r.$run" 2>/dev/null)"
        [[ "$sess" == "$ompi_base"/lethe-ompi.*" (a folder)" ]]
        check $? "rank $r run $run: Open MPI session base ${sess:-not recorded}" \
            "(expected a folder $ompi_base/lethe-ompi.*)"
    done
done
# each run of the batch script had a folder of its own, and removed it
[ "$(cat "$rec/session.0.0" 2>/dev/null)" != "$(cat "$rec/session.0.1" 2>/dev/null)" ]
check $? "the requeued run had a session folder of its own"
left="$(ls -d "$ompi_base"/lethe-ompi.* 2>/dev/null)"
[ -z "$left" ]
check $? "the job's session folders are removed at its end (left: ${left:-none})"
[ $nfail = 0 ] || show_logs "$work/requeue-$rid.out"

echo "$nfail failed"
[ $nfail = 0 ]
