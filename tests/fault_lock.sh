#!/bin/bash
# One job per output folder (output/.lock):
#  1. while `lethe train` runs in a folder, a second `lethe train` into it refuses to
#     start: non-zero exit, one line naming the first (host, its rank 0's pid, job,
#     start time), and it writes nothing there (config.json stays the first job's);
#     the first job, preempted by SIGUSR1, then ends (exit 0) and removes its lock;
#  2. a lock left by a dead process on this host (a pid that no longer runs) is taken
#     over with a warning naming it, and the job completes;
#  3. a job that fails (a bad data path after the folder is locked) releases the lock;
#  4. `lethe study` locks its folder: a second study into it is refused naming the first
#     (its jobs lock their own sub-folders: study.e2e runs a whole study under the locks).
# Needs MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
first=""
trap 'kill $first 2>/dev/null; rm -rf "$work"' EXIT

# 1. a running job holds the folder
d="$work/a"
# Far more steps than the test lasts (400 once finished on a quiet machine before the
# USR1 below): SIGUSR1 ends it with a checkpoint, so the count costs nothing.
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" "${small[@]}" --set train.steps=1000000 \
    --set output.dir="$d" >"$work/a1.log" 2>&1 &
first=$!
for _ in $(seq 600); do
    [ -s "$d/.lock" ] && [ -f "$d/train_log.jsonl.partial" ] && break
    sleep 0.05
done
[ -s "$d/.lock" ] || bad "no .lock in the folder of a running job"
pid0=$(sed -n 's/.* pid=\([0-9]*\) .*/\1/p' "$d/.lock")
kill -0 "$pid0" 2>/dev/null || bad "the lock names pid '$pid0', which is not running"
cp "$d/config.json" "$work/config.first"
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" "${small[@]}" --set train.steps=3 \
    --set model.dim=32 --set output.dir="$d" >"$work/a2.out" 2>"$work/a2.err"
rc=$?
[ $rc -ne 0 ] || bad "the second job into a busy folder exited 0"
n=$(grep -c "^lethe: rank " "$work/a2.err")
line=$(grep "^lethe: rank " "$work/a2.err")
[ "$n" -eq 1 ] || bad "the refusal printed $n lines: $(cat "$work/a2.err")"
host=$(hostname)
case "$line" in
*"is in use by lethe train (host $host, pid $pid0, started 20"*" UTC)"*) ;;
*) bad "the refusal does not name host $host, pid $pid0, job and start time: $line" ;;
esac
cmp -s "$d/config.json" "$work/config.first" || bad "the refused job changed config.json"
echo "refused: exit $rc: $line"
kill -0 $first 2>/dev/null || bad "the first job ended before its preemption: $(tail -3 "$work/a1.log")"
kill -USR1 $first # preemption: a checkpoint and a clean exit (exit 0)
wait $first
rc=$?
first=""
[ $rc -eq 0 ] || bad "the first job ended with $rc after USR1: $(tail -3 "$work/a1.log")"
[ -e "$d/.lock" ] && bad "the lock is still there after the job ended"

# 2. a stale lock of a dead pid on this host is taken over
sleep 0 &
dead=$!
wait $dead
d="$work/b"
mkdir -p "$d"
printf 'lethe-lock host=%s pid=%d job=train started=1700000000 slurm_job=-\n' "$host" $dead >"$d/.lock"
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" "${small[@]}" --set train.steps=3 \
    --set output.dir="$d" >"$work/b.out" 2>"$work/b.err" || bad "the job did not take over a stale lock: $(cat "$work/b.err")"
grep -q "^lethe: warning: output folder '$d': taking over the lock of lethe train (host $host, pid $dead, started 2023-11-14 22:13:20 UTC), which is no longer running" "$work/b.err" ||
    bad "no take-over warning naming the dead job: $(cat "$work/b.err")"
[ -f "$d/model.h5" ] || bad "the job after the take-over did not complete"
[ -e "$d/.lock" ] && bad "the lock is still there after the take-over job ended"

# 3. a job that fails after locking releases the lock
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" train "$cfg" "${small[@]}" --set data.source=hdf5 \
    --set data.path="$work/none.h5" --set output.dir="$work/c" >"$work/c.out" 2>&1
[ $? -ne 0 ] || bad "a job with a missing dataset exited 0"
[ -e "$work/c/.lock" ] && bad "a failed job left its lock"

# 4. a study locks its folder (a dry run too): held by a live process of this host with
# an OFD lock, as a running study holds it, a second study there is refused naming it
study="$LETHE_SOURCE_DIR/jobs/studies/tofu-tiny.json"
mkdir -p "$work/s"
sleep 300 &
holder=$!
printf 'lethe-lock host=%s pid=%d job=study started=1700000000 slurm_job=-\n' "$host" $holder >"$work/s/.lock"
/usr/bin/python3 - "$work/s/.lock" <<'PY' &
import fcntl, os, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
F_OFD_SETLK = 37  # Linux
fcntl.fcntl(fd, F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0))
time.sleep(300)
PY
pylock=$!
sleep 1
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$study" --dir "$work/s" --dry-run >"$work/s1.out" 2>"$work/s1.err"
rc=$?
kill $holder $pylock 2>/dev/null
wait $holder $pylock 2>/dev/null
[ $rc -ne 0 ] || bad "a second study into a locked study folder exited 0"
grep -q "^lethe: rank 0 *: output folder '$work/s' is in use by lethe study (host $host, pid $holder, started 2023-11-14 22:13:20 UTC)" "$work/s1.err" ||
    bad "the study refusal does not name the first study: $(cat "$work/s1.err")"
[ -e "$work/s/study.json" ] && bad "the refused study wrote into the folder"
rm -f "$work/s/.lock"
"$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$study" --dir "$work/s" --dry-run >"$work/s2.out" 2>&1 ||
    bad "a study dry run into the released folder failed: $(cat "$work/s2.out")"
[ -e "$work/s/.lock" ] && bad "the study left its lock"
[ $fail -eq 0 ] && echo "fault_lock: busy folder refused naming the first job; stale lock taken over; failed job released the lock; study folder locked"
exit $fail
