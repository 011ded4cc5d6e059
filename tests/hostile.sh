#!/usr/bin/env bash
# tests/hostile.sh — bad and hostile inputs through the real `lethe` binary under mpirun.
#
# usage: hostile.sh N MAKE_H5 MAKE_CKPT
#        (N ranks; the tests/hostile/make_hostile_h5 and make_hostile_ckpt programs)
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR (tests/CMakeLists.txt sets them)
#
# Inputs: the configs of tests/hostile/configs/ (each with its .expect) and the cases of
# tests/hostile/cases.txt, whose files are tests/hostile/studies/ or are generated here
# (gen_inputs.py: safetensors, JSON lines with a single 100 MiB line, tokenizer files,
# the tiny model config; MAKE_H5: HDF5 token datasets; truncated.h5, the first 3000
# bytes of good.h5). A positive control first: good.h5 trains, so the dataset cases
# fail for their own reasons. Then the folders of the checkpoint cases (ck_*): an
# interrupted run (4 steps, a checkpoint every 2, aborted after step 3) copied once per
# case, its checkpoint.h5 given one planted value by MAKE_CKPT with the digests redone
# (ck_meta_edited alone keeps the stale metadata digest); st_nan_weight.safetensors, the
# control model exported with one weight made NaN; and rl_bad_k1/, a relearn point folder
# whose recorded k1.json is two JSON values on one line.
#
# Every case runs in a fresh folder whose out/ holds the sentinel files model.h5,
# data.h5 and SENTINEL, and asserts: a non-zero exit that is neither the 60 s timeout
# (180 s under the sanitizer build, where the 100 MiB line alone takes 40 s)
# (124, a hang) nor a signal; stderr of one line, or one line per rank, each starting
# "lethe: ", containing the expected text ("lethe: warning: " lines aside); the
# sentinels unchanged, byte for byte, and no new *.h5, *.safetensors, .done or results*
# file beside them (a job refused only when it meets a bad token id mid-run may have
# begun its folder: config.json, provenance.json, a .partial log). Configs go through
# tests/cli_bad_config.sh --one, which asserts exit 2, one "lethe: " line with the
# .expect text and nothing created at all.
# Each run is a case of tests/cases_lib.sh, under a 120 s limit (300 s under ASan): one verdict line per
# input, PASS only with exit status 0 and the case's own PASS line (a hang, a crash or a
# silent exit fails); the closing line "hostile npN: K passed, 0 failed of K cases".
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cases_lib.sh"

# One case: hostile.sh --one NAME N WORK EXPECT ARGS... (its verdict line last; exit 0
# when it passed).
if [ "${1:-}" = "--one" ]; then
    name=$2 n=$3 work=$4 want=$5
    shift 5
    mkdir -p "$work/out" || exit 1
    for f in model.h5 data.h5 SENTINEL; do
        printf 'sentinel %s %s\n' "$name" "$f" >"$work/out/$f"
    done
    sent="model.h5 data.h5 SENTINEL" victims="" aside=0 vlimit=0
    # the case's setup: +DIRECTIVE arguments before the command (see cases.txt)
    while [ $# -gt 0 ] && [ "${1:0:1}" = "+" ]; do
        d="${1:1}"
        shift
        case "$d" in
        link:*) # a symbolic link at a name lethe writes, to a victim outside the output
            p="$work/${d#link:}"
            mkdir -p "$(dirname "$p")" && rm -f "$p" || exit 1
            printf 'victim %s\n' "$name" >"$work.victim"
            ln -s "$work.victim" "$p" || exit 1
            victims="$victims $work.victim" ;;
        dirlink:*) # a symbolic link at a folder lethe writes into, to a victim folder outside
            p="$work/${d#dirlink:}"
            mkdir -p "$(dirname "$p")" "$work.victimd" && rm -f "$p" || exit 1
            printf 'victim %s\n' "$name" >"$work.victimd/kept"
            ln -s "$work.victimd" "$p" || exit 1
            victims="$victims $work.victimd/kept" ;;
        fifo:*) # a FIFO where lethe reads a file (nobody ever writes to it)
            p="$work/${d#fifo:}"
            mkdir -p "$(dirname "$p")" && rm -f "$p" && mkfifo "$p" || exit 1 ;;
        copy:*) # a copy of a file or folder, which must stay unchanged if it is a file
            IFS=: read -r from to <<<"${d#copy:}"
            mkdir -p "$(dirname "$work/$to")" && cp -r "$from" "$work/$to" || exit 1
            [ -f "$work/$to" ] && victims="$victims $work/$to" ;;
        prov:*) # out/ holds a job's record (and its config), which must stay unchanged
            IFS=: read -r job status <<<"${d#prov:}"
            printf '{"job": "%s", "status": "%s"}\n' "$job" "$status" >"$work/out/provenance.json"
            printf '{"sentinel": "%s"}\n' "$name" >"$work/out/config.json"
            sent="$sent provenance.json config.json" ;;
        aside) # a re-run of the completed job: its model.h5 is set aside, byte for byte
            sent="data.h5 SENTINEL"
            aside=1 ;;
        ulimit) vlimit=1 ;; # at most 4 GB of address space (not under ASan, which maps more)
        *) echo "$name: unknown setup +$d" && exit 1 ;;
        esac
    done
    # shellcheck disable=SC2086 # lists of names
    before="$(cd "$work/out" && md5sum -- $sent 2>&1; [ -z "$victims" ] || md5sum -- $victims)"
    [ $aside = 0 ] || aside_sum="$(md5sum <"$work/out/model.h5")"
    asan=${LETHE_HOSTILE_ASAN:-0}
    if [ $vlimit = 1 ] && [ "$asan" = 0 ]; then vlimit="ulimit -v 4000000"; else vlimit=:; fi
    limit=$((asan ? 180 : 60))
    source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh" # runs go four at a time
    (cd "$work" && $vlimit && lethe_mpirun timeout $limit "$MPIRUN" --oversubscribe -n "$n" \
        "$LETHE_BIN" "$@" >"$work.out" 2>"$work.err")
    rc=$?
    bad=0
    fail() {
        echo "$name np$n: $*"
        bad=1
    }
    # warnings (an environment variable that slows OpenBLAS, ...) are not error lines
    grep -av '^lethe: warning: ' "$work.err" >"$work.errl"
    mv "$work.errl" "$work.err"
    lines="$(wc -l <"$work.err")"
    [ "$rc" -ne 0 ] || fail "exit status 0 (the input was accepted)"
    [ "$rc" -ne 124 ] || fail "no exit within $limit s (a hang)"
    [ "$rc" -lt 128 ] || fail "killed by signal $((rc - 128))"
    if { [ "$lines" -ne 1 ] && [ "$lines" -ne "$n" ]; } || [ -n "$(tail -c 1 "$work.err")" ] ||
        grep -aqv '^lethe: ' "$work.err"; then
        fail "stderr is not one 'lethe: ' line (or one per rank), $lines lines:"
        head -n 5 "$work.err" | cut -c1-300 | sed 's/^/    | /'
    fi
    grep -aqF -- "$want" "$work.err" || fail "stderr lacks '$want': $(head -c 300 "$work.err")"
    # shellcheck disable=SC2086 # lists of names
    after="$(cd "$work/out" && md5sum -- $sent 2>&1; [ -z "$victims" ] || md5sum -- $victims)"
    [ "$before" = "$after" ] || fail "a sentinel in out/ or a victim outside it changed: $after"
    if [ -d "$work.victimd" ] && [ "$(ls -A "$work.victimd")" != kept ]; then
        fail "files were written into the victim folder through the link: $(ls -A "$work.victimd" | head -c 200)"
    fi
    if [ $aside = 1 ]; then
        [ ! -e "$work/out/model.h5" ] || fail "the completed run's model.h5 is still beside the new config.json"
        [ "$(md5sum <"$work/out/model.h5.previous" 2>&1)" = "$aside_sum" ] ||
            fail "the completed run's model.h5 is not kept as model.h5.previous"
    fi
    # a refused job may have begun its folder (config.json, a .partial log) but must not
    # leave an output that looks complete
    made="$(cd "$work/out" && ls -A | grep -v '^\(model.h5\|data.h5\|SENTINEL\)$' |
        grep '\.h5$\|\.safetensors$\|\.done$\|^results')"
    [ -z "$made" ] || fail "left outputs that look complete: $made"
    rm -rf "$work" "$work.out" "$work.err" "$work.victim" "$work.victimd"
    case_done "$name np$n" $bad
    exit
fi

n="${1:?usage: hostile.sh N MAKE_H5 MAKE_CKPT [ERE]}"
make_h5="${2:?usage: hostile.sh N MAKE_H5 MAKE_CKPT [ERE]}"
make_ckpt="${3:?usage: hostile.sh N MAKE_H5 MAKE_CKPT [ERE]}"
only="${4:-}" # only the cases.txt cases whose names match this ERE (no configs)
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
src="${LETHE_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
H="$src/tests/hostile"
LETHE_HOSTILE_ASAN=0 # a sanitizer build: more time per run, no address-space limit
grep -qa __asan_init "$LETHE_BIN" && LETHE_HOSTILE_ASAN=1
export MPIRUN LETHE_BIN OMPI_MCA_orte_execute_quiet=1 LETHE_HOSTILE_ASAN
scratch="$(mktemp -d "${TMPDIR:-/tmp}/lethe-hostile.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
G="$scratch/gen"

python3 "$H/gen_inputs.py" "$G" && "$make_h5" "$G" || {
    echo "hostile: cannot generate the inputs" >&2
    exit 1
}
head -c 3000 "$G/good.h5" >"$G/truncated.h5"

# positive control: the tiny config trains on good.h5 at this rank count
mkdir "$scratch/control"
if ! (cd "$scratch/control" && timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" train \
    "$G/tiny.json" --set data.path="$G/good.h5" --set layout.dp="$n" >out.txt 2>err.txt) ||
    [ ! -s "$scratch/control/out/model.h5" ]; then
    echo "FAIL control: training the tiny model on good.h5 failed:"
    cat "$scratch/control/err.txt"
    exit 1
fi

# the checkpoint cases' inputs (see the top)
ck_inputs() {
    (cd "$scratch/control" && LETHE_FAULT=abort-after-step:3 timeout 120 "$MPIRUN" --oversubscribe \
        -n "$n" "$LETHE_BIN" train "$G/tiny.json" --set data.path="$G/good.h5" \
        --set layout.dp="$n" --set train.steps=4 --set checkpoint.every=2 \
        --set output.dir="$G/ck_base" >ck.out 2>ck.err)
    [ -s "$G/ck_base/checkpoint.h5" ] || return 1
    plant() {
        cp -r "$G/ck_base" "$G/$1" && { [ $# -eq 1 ] || "$make_ckpt" "$G/$1/checkpoint.h5" "$2" "$3"; }
    }
    plant ck_step_2e31 step 2147483649 && plant ck_step_neg step -5 &&
        plant ck_step_999 step 999 && plant ck_meta_stale step-stale 1 &&
        plant ck_nan nan model.layers.0.mlp.up_proj.weight && plant ck_tie && plant ck_rope &&
        plant ck_lowered || return 1
    cp "$scratch/control/out/model.h5" "$G/model_control.h5" &&
        (cd "$scratch/control" && timeout 120 "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" \
            convert "$G/tiny.json" --from "$G/model_control.h5" --to "$G/control.safetensors" \
            --set layout.dp="$n" >st.out 2>st.err) || return 1
    python3 - "$G" <<'PY' || return 1
import json, struct, sys
d = sys.argv[1]
b = bytearray(open(d + "/control.safetensors", "rb").read())
n = struct.unpack("<Q", b[:8])[0]
at = json.loads(b[8:8 + n])["model.layers.0.mlp.up_proj.weight"]["data_offsets"][0] + 8 + n + 4 * 5
b[at:at + 4] = struct.pack("<f", float("nan"))  # element [0,5]
open(d + "/st_nan_weight.safetensors", "wb").write(b)
PY
    mkdir -p "$G/rl_bad_k1/n2_lr0.003_seed42" &&
        printf '{"step":1,"forget_prob":0.5}{"step":1}\n' >"$G/rl_bad_k1/n2_lr0.003_seed42/k1.json"
}
if ! ck_inputs; then
    echo "FAIL control: cannot make the checkpoint cases' inputs:"
    cat "$scratch/control/ck.err" "$scratch/control/st.err" 2>/dev/null | head -n 20
    exit 1
fi

# every run is a case; four run at a time (they spend their time waiting on MPI start-up
# and tear-down)
cases_init "$scratch/runs"
for cfg in "$H"/configs/*.json; do
    [ -z "$only" ] || break
    case_add "$(basename "$cfg" .json) np$n" \
        bash "$src/tests/cli_bad_config.sh" --one "$cfg" "$n" "$scratch"
done
while IFS=$'\t' read -r name want args; do
    case "$name" in "" | "#"*) continue ;; esac
    [ -z "$only" ] || [[ "$name" =~ $only ]] || continue
    want="${want//@N/$n}"
    args="${args//@G/$G}"
    args="${args//@C/$scratch/control}"
    args="${args//@S/$src}"
    args="${args//@H/$H}"
    args="${args//@D/$src/tests/data}"
    args="${args//@N/$n}"
    args="${args//@M/$((2 * n))}"
    args="${args//@L/$LETHE_BIN}"
    # shellcheck disable=SC2086 # the arguments are split at spaces on purpose
    case_add "$name np$n" bash "$0" --one "$name" "$n" "$scratch/$name.np$n" "$want" $args
done <"$H/cases.txt"
cases_xargs 4 $((LETHE_HOSTILE_ASAN ? 300 : 120))
cases_end "hostile${only:+ ($only)} np$n" "$([ -z "$only" ] && echo 60 || echo 10)"
