#!/bin/bash
# A rank dies under the local Slurm: a batch job whose step is `srun --mpi=pmix -n2 lethe
# train` (the launcher `lethe slurm` writes) with LETHE_FAULT=kill-after-step:K:R at a
# random step and rank must end FAILED with a non-zero exit code within 30 s of the
# start of the job's death (no hang of the other rank), with no lethe process of it left;
# a second batch job in the same folder resumes and ends COMPLETED with weights and
# moments bitwise equal to an uninterrupted run's.
# Root only (the local cluster); exit 77 (skipped) when not root or Slurm cannot start.
#
# usage: fault_slurm.sh [TRIALS]   (default 2)
set -u
trials=${1:-2}
[ "$(id -u)" = 0 ] || { echo "SKIP: the local Slurm needs root"; exit 77; }
PATH="$PATH:/usr/sbin:/sbin"
for c in sbatch srun scontrol slurmctld slurmd munged; do
    command -v $c >/dev/null || { echo "SKIP: $c not installed"; exit 77; }
done
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
chmod 755 "$work"
cluster="$work/cluster"
trap 'bash "$LETHE_SOURCE_DIR/slurm/local-cluster.sh" down --dir "$cluster" >/dev/null 2>&1; rm -rf "$work"' EXIT
envlines=$(timeout 60 bash "$LETHE_SOURCE_DIR/slurm/local-cluster.sh" up --dir "$cluster" --nodes 2 2>"$work/up.err") ||
    { echo "SKIP: the local Slurm did not start: $(tail -2 "$work/up.err")"; exit 77; }
eval "$envlines"
steps=12
train_n 2 --set train.steps=$steps --set checkpoint.every=4 --set output.dir="$work/ref" >"$work/ref.log" 2>&1 ||
    { echo "FAIL: reference run"; cat "$work/ref.log"; exit 1; }
# job SCRIPT OUTDIR FAULT: a batch script running the step under srun
job() {
    cat >"$1" <<EOF
#!/bin/bash
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 LETHE_FAULT=$3
srun --mpi=pmix -n2 "$LETHE_BIN" train "$cfg" ${small[*]} --set train.steps=$steps --set checkpoint.every=4 --set output.dir="$2"
EOF
}
# wait_job ID SECONDS: prints the final JobState and exit code, or TIMEOUT
wait_job() {
    local s=$SECONDS st
    while [ $((SECONDS - s)) -le "$2" ]; do
        st=$(scontrol show job "$1" | grep -o "JobState=[A-Z_]*\|ExitCode=[0-9:]*" | tr '\n' ' ')
        case "$st" in *RUNNING* | *PENDING* | *CONFIGURING* | *COMPLETING*) sleep 0.5 ;; *) echo "$st"; return ;; esac
    done
    echo TIMEOUT
}
passed=0
for t in $(seq "$trials"); do
    k=$((2 + RANDOM % (steps - 3))) r=$((RANDOM % 2)) d="$work/t$t"
    msg="trial $t (rank $r, step $k)"
    job "$work/kill$t.sh" "$d" "kill-after-step:$k:$r"
    id=$(sbatch --parsable -N1 -n2 -o "$work/kill$t.out" "$work/kill$t.sh")
    # the death comes after k steps; the job must be over within 30 s of it
    for _ in $(seq 1200); do
        grep -q "fault injection: SIGKILL" "$work/kill$t.out" 2>/dev/null && break
        sleep 0.05
    done
    s0=$SECONDS
    st=$(wait_job "$id" 30)
    secs=$((SECONDS - s0))
    case "$st" in
    *JobState=FAILED*) ;;
    *) bad "$msg: job state '$st' 30 s after the death: $(cat "$work/kill$t.out")"; scancel "$id"; continue ;;
    esac
    case "$st" in *"ExitCode=0:0"*) bad "$msg: exit code 0"; continue ;; esac
    left=$(pgrep -f -- "output.dir=$d" | wc -l)
    [ "$left" -eq 0 ] || { bad "$msg: $left processes of the job left"; continue; }
    job "$work/resume$t.sh" "$d" ""
    id=$(sbatch --parsable -N1 -n2 -o "$work/resume$t.out" "$work/resume$t.sh")
    st2=$(wait_job "$id" 120)
    case "$st2" in *"JobState=COMPLETED"*"ExitCode=0:0"*) ;; *) bad "$msg: resume job '$st2': $(tail -5 "$work/resume$t.out")"; continue ;; esac
    from=$(grep -o "resuming from .* at step [0-9]*" "$work/resume$t.out" | grep -o "[0-9]*$")
    [ "${from:-0}" -eq $((k / 4 * 4)) ] || { bad "$msg: resumed at step '${from:-0}'"; continue; }
    same=1
    for g in /params /adam_m /adam_v; do
        h5diff -q "$work/ref/model.h5" "$d/model.h5" $g $g >/dev/null || same=0
    done
    [ $same -eq 1 ] || { bad "$msg: final weights differ"; continue; }
    echo "ok: $msg: job $st within ${secs} s of the death, resumed at step ${from:-0}, bitwise equal"
    passed=$((passed + 1))
done
echo "fault_slurm: $passed/$trials trials passed"
[ "$passed" -eq "$trials" ]
