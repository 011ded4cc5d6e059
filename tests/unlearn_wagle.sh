#!/usr/bin/env bash
# tests/unlearn_wagle.sh — WAGLE (unlearn.wagle.*) through the real command line.
#
# 1. Data and an origin model as tests/unlearn_cli.sh makes them.
# 2. graddiff + WAGLE (p 0.9) on 1 rank, 10 steps: the mask model.h5 carries (/wagle_mask,
#    uint8 0/1, and its counts in /job) keeps ceil(0.9 N) of the N weights (or, when more than
#    10% of the scores are exactly 0, every positive score: the threshold is then the
#    smallest positive float); after unlearning,
#    every weight outside the mask equals the origin's bitwise and the forget rows' mean
#    token log-likelihood falls by at least 0.2 nats.
# 3. The mask under every layout of the 8-rank matrix (dp x pp x tp: 2x1x1, 1x2x1,
#    1x1x2, 2x2x1, 2x1x2, 1x2x2, 4x1x1, 2x2x2): model.h5 /wagle_mask equals the 1-rank
#    run's (h5diff, exact).
# 4. npo and simnpo with WAGLE (p 0.8) on 2 ranks lower the forget log-likelihood by 0.2.
# 5. Killed after step 7 (checkpoint every 4) and resumed at dp 2: the resumed run reads
#    the mask back from checkpoint.h5 instead of scoring again, and its final weights,
#    moments and mask equal the uninterrupted run's bitwise (other layouts, a checkpoint
#    without a mask, a corrupted one: tests/wagle_resume.sh).
# 6. Bad input (p >= 1, p < 0, mu <= 0, batches 0, WAGLE with ga or pdu) ends with a
#    non-zero exit on 1 and 2 ranks and one "lethe: " line; --help lists the keys.
#
# Env: MPIRUN, LETHE_BIN (set by ctest).
WORK_PREFIX=lethe-wagle LETHE_TIMEOUT=400
# shellcheck source=tests/unlearn_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/unlearn_lib.sh"
wagle_json "$work/wagle.json"
run() { # NP OUT [--set ...]
    local np="$1" out="$2"
    shift 2
    lethe "$np" unlearn "$work/wagle.json" --set output.dir="\"$work/$out\"" "$@" \
        >"$work/$out.log" 2>&1 || { cat "$work/$out.log"; say_fail "$out: lethe unlearn failed"; return 1; }
}
falls() { # OUT DROP: forget_logp of the first and last logged step
    /usr/bin/python3 - "$work/$1/unlearn_log.jsonl" "$2" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
f0, f1 = rows[0]["forget_logp"], rows[-1]["forget_logp"]
print(f"{sys.argv[1].split('/')[-2]}: forget_logp {f0:.4f} -> {f1:.4f} over {len(rows)} steps")
sys.exit(0 if f1 <= f0 - float(sys.argv[2]) else 1)
EOF
}
# the mask file: p, kept, total; kept = ceil(p total); the 0/1 tensors agree; frozen weights
check_mask() { # OUT
    /usr/bin/python3 - "$work/$1" "$work/origin/model.h5" <<'EOF'
import math, sys
import h5py, numpy as np
out, origin = sys.argv[1], sys.argv[2]
bad = []
with h5py.File(f"{out}/model.h5", "r") as m, h5py.File(origin, "r") as o:
    p, kept, total, thr = (float(m["/job"].attrs[k]) for k in
                           ("wagle_p", "wagle_kept", "wagle_total", "wagle_threshold"))
    mg = m["/wagle_mask"]
    if set(mg) != set(m["/params"]) or any(mg[k].dtype != np.uint8 for k in mg):
        bad.append("/wagle_mask does not hold one uint8 tensor per /params tensor")
    ones = sum(int(np.count_nonzero(mg[k][()])) for k in mg)
    size = sum(mg[k].size for k in mg)
    if total != size:
        bad.append(f"total {total:g} != the tensors' {size} elements")
    if kept != ones:
        bad.append(f"kept {kept:g} != the mask's {ones} ones")
    want = math.ceil(p * total)
    if not (want <= kept <= want + 16 or (kept < want and 0 < thr < 1e-44)):
        bad.append(f"kept {kept:g} of {total:g}, p {p}, threshold {thr:g}: neither ceil(p N) "
                   "(+ ties) nor every positive score")
    moved_out = moved_in = 0
    for k in mg:
        mk = mg[k][()] != 0
        d = m["/params"][k][()] != o["/params"][k][()]
        moved_out += int(np.count_nonzero(d & ~mk))
        moved_in += int(np.count_nonzero(d & mk))
    if moved_out:
        bad.append(f"{moved_out} weights outside the mask moved")
    if moved_in < 0.5 * kept:
        bad.append(f"only {moved_in} of {kept:g} masked weights moved")
    print(f"{out.split('/')[-1]}: mask keeps {kept:g} of {total:g} ({100 * kept / total:.2f}%, "
          f"threshold {thr:.4g}); "
          f"{moved_in} masked weights moved, {moved_out} outside")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
EOF
}
if run 1 w1; then
    check_mask w1 || say_fail "w1: the mask"
    falls w1 0.2 || say_fail "w1: graddiff+wagle did not lower the forget log-likelihood by 0.2"
    grep -q "WAGLE mask keeps" "$work/w1.log" || say_fail "w1: no mask line"
fi

# ---- the mask under every layout of the 8-rank matrix ----
same=0 layouts=0
for l in "2 2 1 1" "2 1 2 1" "2 1 1 2" "4 2 2 1" "4 2 1 2" "4 1 2 2" "4 4 1 1" "8 2 2 2"; do
    read -r np dp pp tp <<<"$l"
    layouts=$((layouts + 1))
    out="m$dp$pp$tp"
    run "$np" "$out" --set layout.dp="$dp" --set layout.pp="$pp" --set layout.tp="$tp" \
        --set layout.micro_batches="$pp" --set unlearn.epochs=1 || continue
    if h5diff -q "$work/w1/model.h5" "$work/$out/model.h5" /wagle_mask /wagle_mask; then
        same=$((same + 1))
    else
        say_fail "layout dp$dp pp$pp tp$tp: model.h5 /wagle_mask differs from 1 rank's"
        h5diff -r "$work/w1/model.h5" "$work/$out/model.h5" /wagle_mask /wagle_mask | head -5
    fi
done
echo "wagle mask: identical to 1 rank's under $same of $layouts layouts"

# ---- npo and simnpo ----
for m in npo simnpo; do
    extra=()
    [ "$m" = npo ] && extra=(--set unlearn.beta=0.1)
    run 2 "$m" --set unlearn.method="\"$m\"" --set unlearn.wagle.p=0.8 --set layout.tp=2 \
        "${extra[@]}" && { falls "$m" 0.2 || say_fail "$m+wagle did not lower the forget log-likelihood by 0.2"; }
done

# ---- killed after step 7 and resumed ----
ck() { # OUT [env...]
    local out="$1"
    shift
    env "$@" timeout 400 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" unlearn "$work/wagle.json" \
        --set checkpoint.every=4 --set layout.dp=2 --set output.dir="\"$work/$out\""
}
ck ra >"$work/ra.log" 2>&1 || say_fail "uninterrupted run"
ck rb LETHE_FAULT=abort-after-step:7 >"$work/rb1.log" 2>&1 && say_fail "the injected abort exited 0"
ck rb >"$work/rb2.log" 2>&1 || say_fail "resumed run"
grep -q "resuming from .* at step 4" "$work/rb2.log" || say_fail "did not resume at step 4"
grep -q "WAGLE mask read from" "$work/rb2.log" || say_fail "the resumed run did not read the mask back"
[ -e "$work/rb/wagle_mask.h5" ] && say_fail "wagle_mask.h5 is still written"
h5diff -q "$work/ra/model.h5" "$work/rb/model.h5" /wagle_mask /wagle_mask ||
    say_fail "the resumed run's /wagle_mask differs from the uninterrupted run's"
same_state "$work/ra" "$work/rb" wagle && echo "wagle: aborted after step 7, resumed at step 4 with the mask read back: bitwise equal"

# ---- bad input ----
bad=0 refused=0
refuse() { # LABEL EXPECTED --set ...
    local label="$1" want="$2"
    shift 2
    bad=$((bad + 1))
    for np in 1 2; do
        lethe "$np" unlearn "$work/wagle.json" --set output.dir="\"$work/bad\"" \
            --set layout.dp="$np" "$@" >"$work/bad.out" 2>"$work/bad.err"
        local rc=$? lines
        lines="$(wc -l <"$work/bad.err")"
        if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$lines" -ne 1 ] ||
            ! grep -q "^lethe: .*$want" "$work/bad.err" || [ -e "$work/bad" ]; then
            say_fail "$label np$np: exit $rc, $lines stderr lines:"
            sed 's/^/    | /' "$work/bad.err"
            return
        fi
    done
    refused=$((refused + 1))
    echo "refused ($label): $(cat "$work/bad.err")"
}
refuse "p = 1" "unlearn.wagle.p" --set unlearn.wagle.p=1
refuse "p < 0" "unlearn.wagle.p" --set unlearn.wagle.p=-0.5
refuse "mu = 0" "unlearn.wagle.mu" --set unlearn.wagle.mu=0
refuse "batches = 0" "unlearn.wagle.batches" --set unlearn.wagle.batches=0
refuse "with ga" "unlearn.wagle.p=0.9 composes" --set unlearn.method='"ga"'
refuse "with pdu" "unlearn.wagle.p=0.9 composes" --set unlearn.method='"pdu"'
echo "wagle bad input: $refused/$bad refused cleanly"
[ "$refused" -eq "$bad" ] || say_fail "$refused of $bad bad inputs refused"
help="$("$LETHE_BIN" unlearn --help 2>&1)"
for k in unlearn.wagle.p unlearn.wagle.mu unlearn.wagle.batches; do
    grep -qF -- "$k" <<<"$help" || say_fail "--help does not show '$k'"
done
[ $fail -eq 0 ] && echo "unlearn_wagle: PASS"
exit $fail
