#!/usr/bin/env bash
# tests/unlearn_pdu.sh — PDU (unlearn.method "pdu") through the real command line.
#
# 1. Data and an origin model as tests/unlearn_cli.sh makes them (`lethe synth`, 20
#    authors x 11 questions, forget05 = 11 rows; `lethe train` on train_full).
# 2. PDU unlearns forget05 on 2 ranks at tp 2 for 10 steps (c_f 1, eps 0.4, eta 2,
#    lambda0 1). From unlearn_log.jsonl: the forget rows' mean token log-likelihood
#    (forget_logp) falls by at least 0.2 nats from the first step to the last; every
#    step's lambda is the dual step of the previous one, max(0, lambda + eta (L_r -
#    eps)) with L_r that step's logged retain_loss, to 1e-6 relative (the log's %.9g);
#    every step's loss is forget_loss + lambda (retain_loss - eps) to 1e-5; the terminal
#    line shows lambda. With unlearn.pdu.dual_warmup_epochs=1 lambda stays at lambda0
#    for the first epoch (its steps read from the job's banner) and moves after.
# 3. Killed after step 7 (checkpoint every 4 steps) and resumed at dp 2: the final
#    weights, AdamW moments and the checkpoint's /job/pdu_lambda equal the uninterrupted
#    run's bitwise, and so do the log's lambda values.
# 4. Bad input: eps, dual_lr, lambda0 or dual_warmup_epochs below 0, and PDU without
#    retain rows, each end with a non-zero exit on 1 and 2 ranks and exactly one
#    "lethe: " line naming the setting; `lethe unlearn --help` lists pdu and its keys.
#
# Env: MPIRUN, LETHE_BIN (set by ctest).
WORK_PREFIX=lethe-pdu LETHE_TIMEOUT=300
# shellcheck source=tests/unlearn_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/unlearn_lib.sh"

cat >"$work/pdu.json" <<EOF
{$model,
 "layout": {"dp": 1, "pp": 1, "tp": 2, "micro_batches": 1},
 "optim": {"schedule": "constant", "lr": 0.002, "warmup_steps": 0},
 "data": {"source": "hdf5", "path": "$work/data.h5", "forget_split": "forget05",
          "retain_split": "retain95"},
 "unlearn": {"method": "pdu", "c_f": 1, "epochs": 4, "warmup_epochs": 0,
             "batch_size": 4, "retain_batch_size": 4,
             "pdu": {"eps": 0.4, "dual_lr": 2, "lambda0": 1}},
 "train": {"log_every": 1},
 "init": {"checkpoint": "$work/origin/model.h5"},
 "output": {"dir": "$work/pdu"}}
EOF
# the log's checks: forget_logp falls, lambda follows the dual step, loss is the Lagrangian
check_log() { # LOG EPS ETA LAMBDA0 WARM_STEPS
    /usr/bin/python3 - "$@" <<'EOF'
import json, sys
path, eps, eta, lam0, warm = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
rows = [json.loads(l) for l in open(path)]
bad = []
if len(rows) < 8:
    bad.append(f"{len(rows)} logged steps, expected 4 epochs of at least 2")
lam = lam0
for i, r in enumerate(rows):
    if abs(r["lambda"] - lam) > 1e-6 * max(abs(lam), 1e-3):
        bad.append(f"step {r['step']}: lambda {r['lambda']!r}, the dual step gives {lam!r}")
    want = r["forget_loss"] + r["lambda"] * (r["retain_loss"] - eps)
    if abs(r["loss"] - want) > 1e-5 * max(abs(want), 1.0):
        bad.append(f"step {r['step']}: loss {r['loss']!r}, forget + lambda (L_r - eps) = {want!r}")
    lam = r["lambda"]
    if i >= warm:
        lam = max(0.0, lam + eta * (r["retain_loss"] - eps))
f0, f1 = rows[0]["forget_logp"], rows[-1]["forget_logp"]
print(f"pdu log {path.split('/')[-2]}: forget_logp {f0:.4f} -> {f1:.4f}, lambda "
      f"{rows[0]['lambda']:.4g} -> {rows[-1]['lambda']:.4g}, retain_loss "
      f"{rows[0]['retain_loss']:.4f} -> {rows[-1]['retain_loss']:.4f}")
if not f1 <= f0 - 0.2:
    bad.append(f"forget_logp {f0} -> {f1} did not fall by 0.2")
if len({r["lambda"] for r in rows}) < 3:
    bad.append("lambda barely moved: the check would not see a wrong dual step")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
EOF
}
if lethe 2 unlearn "$work/pdu.json" >"$work/pdu.log" 2>&1; then
    check_log "$work/pdu/unlearn_log.jsonl" 0.4 2 1 0 || say_fail "pdu: the log"
    grep -q "^step .* lambda [0-9]" "$work/pdu.log" || say_fail "pdu: the terminal line shows no lambda"
else
    cat "$work/pdu.log"
    say_fail "pdu: lethe unlearn failed"
fi
# dual warm-up: one epoch, its step count from the banner ("E epochs x S steps, ...")
if lethe 2 unlearn "$work/pdu.json" --set unlearn.pdu.dual_warmup_epochs=1 \
    --set output.dir="\"$work/pdu-warm\"" >"$work/pdu-warm.log" 2>&1; then
    spe="$(grep -o '[0-9]* steps, forget batch' "$work/pdu-warm.log" | head -1 | cut -d' ' -f1)"
    check_log "$work/pdu-warm/unlearn_log.jsonl" 0.4 2 1 "${spe:-0}" || say_fail "pdu warm-up: the log"
else
    cat "$work/pdu-warm.log"
    say_fail "pdu warm-up: lethe unlearn failed"
fi

# ---- killed after step 7 and resumed (at another layout): bitwise the uninterrupted run ----
run_ckpt() { # OUT DP TP [env...]
    local out="$1" dp="$2" tp="$3"
    shift 3
    env "$@" timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" unlearn "$work/pdu.json" \
        --set checkpoint.every=4 --set output.dir="\"$work/$out\"" --set layout.dp="$dp" \
        --set layout.tp="$tp"
}
run_ckpt pdu-a 2 1 >"$work/pdu-a.log" 2>&1 || say_fail "pdu: uninterrupted run"
run_ckpt pdu-b 2 1 LETHE_FAULT=abort-after-step:7 >"$work/pdu-b1.log" 2>&1 &&
    say_fail "pdu: the injected abort exited 0"
run_ckpt pdu-b 2 1 >"$work/pdu-b2.log" 2>&1 || say_fail "pdu: resumed run"
grep -q "resuming from .* at step 4" "$work/pdu-b2.log" || say_fail "pdu: did not resume at step 4"
same=1
same_state "$work/pdu-a" "$work/pdu-b" pdu || same=0
la="$(h5dump -a /job/pdu_lambda "$work/pdu-a/model.h5" 2>&1 | grep -A1 DATA | tail -1)"
lb="$(h5dump -a /job/pdu_lambda "$work/pdu-b/model.h5" 2>&1 | grep -A1 DATA | tail -1)"
{ [ -n "$la" ] && [ "$la" = "$lb" ]; } || { say_fail "pdu: /job/pdu_lambda '$la' vs resumed '$lb'"; same=0; }
ca="$(grep -o '"lambda":[^,]*' "$work/pdu-a/unlearn_log.jsonl")"
cb="$(grep -o '"lambda":[^,]*' "$work/pdu-b/unlearn_log.jsonl")"
[ -n "$ca" ] && [ "$ca" = "$cb" ] || { say_fail "pdu: the resumed log's lambda column differs"; same=0; }
[ $same -eq 1 ] && echo "pdu: aborted after step 7, resumed at step 4: weights, moments, lambda ($la) bitwise equal"

# ---- bad input: one line, non-zero exit on every rank ----
bad=0 refused=0
expect_refusal() { # LABEL EXPECTED-TEXT --set ...
    local label="$1" want="$2"
    shift 2
    bad=$((bad + 1))
    for np in 1 2; do
        lethe "$np" unlearn "$work/pdu.json" --set output.dir="\"$work/bad-out\"" \
            --set layout.tp=1 --set layout.dp="$np" "$@" >"$work/bad.out" 2>"$work/bad.err"
        local rc=$? lines
        lines="$(wc -l <"$work/bad.err")"
        if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
            say_fail "$label np$np: exit status $rc"
            return
        fi
        if [ "$lines" -ne 1 ] || ! grep -q "^lethe: .*$want" "$work/bad.err"; then
            say_fail "$label np$np: expected one 'lethe: ...$want...' line, got $lines:"
            sed 's/^/    | /' "$work/bad.err"
            return
        fi
        [ -e "$work/bad-out" ] && { say_fail "$label np$np: the output folder was created"; return; }
    done
    refused=$((refused + 1))
    echo "refused ($label): $(cat "$work/bad.err")"
}
expect_refusal "eps < 0" "unlearn.pdu.eps" --set unlearn.pdu.eps=-0.1
expect_refusal "dual_lr < 0" "unlearn.pdu.dual_lr" --set unlearn.pdu.dual_lr=-1
expect_refusal "lambda0 < 0" "unlearn.pdu.lambda0" --set unlearn.pdu.lambda0=-1
expect_refusal "dual_warmup_epochs < 0" "unlearn.pdu.dual_warmup_epochs" \
    --set unlearn.pdu.dual_warmup_epochs=-1
expect_refusal "no retain rows" "unlearn.retain_batch_size=0" --set unlearn.retain_batch_size=0
expect_refusal "unknown pdu key" "unlearn.pdu.epsilon" --set unlearn.pdu.epsilon=1
echo "pdu bad input: $refused/$bad refused cleanly"
[ "$refused" -eq "$bad" ] || say_fail "pdu: $refused of $bad bad inputs refused"

help="$("$LETHE_BIN" unlearn --help 2>&1)"
for k in "|pdu" unlearn.pdu.eps unlearn.pdu.dual_lr unlearn.pdu.lambda0 unlearn.pdu.dual_warmup_epochs; do
    grep -qF -- "$k" <<<"$help" || say_fail "--help does not show '$k'"
done
[ $fail -eq 0 ] && echo "unlearn_pdu: PASS"
exit $fail
