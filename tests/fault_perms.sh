#!/bin/bash
# Outputs and links:
#  1. every folder and file `lethe train` creates (nested output folders, config,
#     provenance, log, checkpoint, model) has the mode the user's umask gives, minus
#     write for others: umask 002 -> 775/664, 077 -> 700/600, 000 -> 775/664 (never
#     world-writable);
#  2. symbolic links planted in the output folder and pointing outside it -- at the
#     checkpoint name (removed at the end of the job), at the temporary names the job
#     writes through (checkpoint.h5.tmp, model.h5.tmp, provenance.json.tmp,
#     train_log.jsonl.partial) and at a final name (model.h5) -- are never followed:
#     every target keeps its bytes, the job completes, and its outputs are regular files.
# Needs MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/fault_lib.sh"
run() { train_n 2 "$@"; }

# 1. modes
for case in 002:775:664 077:700:600 000:775:664; do
    IFS=: read -r um dmode fmode <<<"$case"
    top="$work/u$um"
    d="$top/x/y"
    (umask "$um" && run --set train.steps=4 --set checkpoint.every=2 --set output.dir="$d/done" \
        >"$work/u$um.log" 2>&1) || bad "umask $um: run failed: $(cat "$work/u$um.log")"
    # a kept checkpoint too (the job aborted after it)
    (umask "$um" && LETHE_FAULT=abort-after-step:3 run --set train.steps=4 --set checkpoint.every=2 \
        --set output.dir="$d/aborted" >"$work/u$um.b.log" 2>&1)
    [ -f "$d/aborted/checkpoint.h5" ] || bad "umask $um: no checkpoint.h5 after the abort"
    nd=0 nf=0
    while read -r m t p; do
        want=$fmode
        [ "$t" = directory ] && want=$dmode nd=$((nd + 1)) || nf=$((nf + 1))
        [ "$m" = "$want" ] || bad "umask $um: $t $p has mode $m, expected $want"
    done < <(find "$top" -mindepth 1 \( -type d -o -type f \) -printf '%m %y %p\n' |
        sed 's/ d / directory /; s/ f / file /')
    [ $nf -ge 7 ] || bad "umask $um: only $nf files found"
    ww=$(find "$top" -perm -o+w | wc -l)
    [ "$ww" -eq 0 ] || bad "umask $um: $ww world-writable paths"
    echo "umask $um: $nd folders mode $dmode, $nf files mode $fmode"
done

# 2. planted links
d="$work/links"
out="$work/outside"
mkdir -p "$d" "$out"
names="checkpoint.h5 checkpoint.h5.tmp model.h5.tmp provenance.json.tmp train_log.jsonl.partial model.h5"
for n in $names; do
    echo "precious $n" >"$out/$n"
    ln -s "$out/$n" "$d/$n"
done
run --set train.steps=4 --set checkpoint.every=2 --set checkpoint.resume=false \
    --set output.dir="$d" >"$work/links.log" 2>&1 || bad "the run with planted links failed: $(cat "$work/links.log")"
for n in $names; do
    [ "$(cat "$out/$n")" = "precious $n" ] || bad "the target of the planted link $n was changed"
done
[ -e "$d/checkpoint.h5" ] || [ -L "$d/checkpoint.h5" ] && bad "checkpoint.h5 (a planted link) was not removed"
for f in model.h5 train_log.jsonl provenance.json config.json; do
    [ -f "$d/$f" ] && [ ! -L "$d/$f" ] || bad "$f is not a regular file"
done
[ "$(find "$d" -type l | wc -l)" -eq 0 ] || bad "links left in the output folder: $(find "$d" -type l)"
# and the cleanup of the checkpoint name alone: a link there, no checkpoint written
d2="$work/links2"
mkdir -p "$d2"
ln -s "$out/checkpoint.h5" "$d2/checkpoint.h5"
run --set train.steps=2 --set checkpoint.every=0 --set checkpoint.resume=false \
    --set output.dir="$d2" >"$work/links2.log" 2>&1 || bad "the run with a planted checkpoint link failed"
[ "$(cat "$out/checkpoint.h5")" = "precious checkpoint.h5" ] || bad "the checkpoint link's target was changed"
[ -L "$d2/checkpoint.h5" ] && bad "the planted checkpoint link was left"
[ $fail -eq 0 ] && echo "fault_perms: modes follow the umask minus o+w; $(echo $names | wc -w) planted links never followed"
exit $fail
