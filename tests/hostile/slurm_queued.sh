#!/usr/bin/env bash
# tests/hostile/slurm_queued.sh — `lethe slurm` never relabels a job an earlier submission may
# still run (slurm/plan.c prepare, io/study.c check_held), at N ranks. No Slurm needed:
# sbatch and squeue are stand-ins on PATH (sbatch prints the next id from 100; squeue
# prints the ids listed in a file, as Slurm's queue).
#   - the mini study is submitted (every job recorded in slurm_jobs.tsv), then all its jobs
#     are queued; the study edited (GA's optim.lr 0.001 -> 0.002) is refused by `lethe
#     slurm`, with --rerun-changed and with --dry-run too (a dry run does not ask squeue:
#     every job submitted and not finished counts): non-zero exit, one "lethe: " line
#     naming the submitted job, its id and the key with both values; no job.json or
#     labels.json changed, nothing moved aside, nothing submitted;
#   - the unedited study is accepted while they are queued: files unchanged, nothing
#     submitted again;
#   - once the queue no longer holds them (they ended unfinished), the edited study is
#     submitted with the new config.
# One PASS/FAIL line per check; the closing line "slurm_queued npN: K passed, 0 failed".
set -u
n="${1:?usage: slurm_queued.sh N}"
: "${MPIRUN:?}" "${LETHE_BIN:?}"
src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
export OMPI_MCA_orte_execute_quiet=1
work="$(mktemp -d "${TMPDIR:-/tmp}/lethe-slurm-queued.XXXXXX")"
trap 'rm -rf "$work"' EXIT
D="$work/mini" Q="$work/queue" pass=0 fail=0
mkdir -p "$work/bin" "$Q"
cat >"$work/bin/sbatch" <<'SH'
#!/bin/sh
n=$(cat "$LETHE_FAKE_Q/count" 2>/dev/null || echo 99)
n=$((n + 1))
echo $n >"$LETHE_FAKE_Q/count"
echo $n
SH
cat >"$work/bin/squeue" <<'SH'
#!/bin/sh
cat "$LETHE_FAKE_Q/queued" 2>/dev/null
exit 0
SH
chmod +x "$work/bin/sbatch" "$work/bin/squeue"
export PATH="$work/bin:$PATH" LETHE_FAKE_Q="$Q"
check() { # NAME STATUS [detail]
    if [ "$2" = 0 ]; then
        echo "PASS $1"
        pass=$((pass + 1))
    else
        echo "FAIL $1 ${3:-}"
        fail=$((fail + 1))
        return 1
    fi
}
# --noprefix: an mpirun started by its full path puts its own bin folder (Slurm's real
# sbatch and squeue beside it) before PATH
lethe() { timeout 120 "$MPIRUN" --noprefix --oversubscribe -n "$n" "$LETHE_BIN" "$@" >"$work/out" 2>"$work/err"; }
sums() { (cd "$D" && md5sum -- */job.json */labels.json); }
mini="$src/tests/data/mini-study.json" changed="$src/tests/hostile/studies/changed_lr.json"

lethe slurm "$mini" --dir "$D"
rc=$?
[ $rc = 0 ] && [ -s "$D/slurm_jobs.tsv" ]
check "submit the mini study (exit $rc)" $? "$(head -c 600 "$work/err")" || exit 1
grep -v '^#' "$D/slurm_jobs.tsv" | cut -f2 | sort -u >"$Q/queued"
submitted="$(cat "$Q/count")"
before="$(sums)"
want="job '[^']*' was submitted (Slurm job [0-9_]*) and may still be queued or running, but job.json key 'optim.lr' was 0.001, now 0.002"
for extra in "" --rerun-changed --dry-run; do
    lethe slurm "$changed" --dir "$D" $extra
    rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -lt 128 ] && [ "$(grep -c . "$work/err")" = 1 ] &&
        grep -q "^lethe: .*$want" "$work/err"
    check "edited study ${extra:-(submit)}: refused in one line naming the job, its id and the key (exit $rc)" \
        $? "$(head -c 600 "$work/err")"
    [ "$(sums)" = "$before" ] && ! ls -d "$D"/*.old-* >/dev/null 2>&1 &&
        [ "$(cat "$Q/count")" = "$submitted" ]
    check "edited study ${extra:-(submit)}: no job.json or labels.json changed, nothing moved or submitted" $?
done
lethe slurm "$mini" --dir "$D"
rc=$?
[ $rc = 0 ] && [ "$(sums)" = "$before" ] && [ "$(cat "$Q/count")" = "$submitted" ]
check "the unedited study while queued: exit $rc, files unchanged, nothing submitted again" $? \
    "$(head -c 600 "$work/err")"
: >"$Q/queued"
lethe slurm "$changed" --dir "$D"
rc=$?
[ $rc = 0 ] && grep -q '"lr":[[:space:]]*0.002' "$D/unlearn-10-ga-g0-s1/job.json" &&
    [ "$(cat "$Q/count")" -gt "$submitted" ]
check "no longer queued: the edited study is submitted with the new config (exit $rc)" $? \
    "$(head -c 600 "$work/err")"

echo "slurm_queued np$n: $pass passed, $fail failed of $((pass + fail)) checks"
[ $fail -eq 0 ] && [ $pass -eq 9 ]
