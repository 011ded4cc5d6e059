#!/usr/bin/env bash
# tests/unlearn_cli.sh — `lethe unlearn` through the real command line.
#
# 1. Data and an origin model: `lethe synth` (20 fictitious authors x 11 questions,
#    forget05 = 11 rows) and `lethe train` on train_full until the model knows it.
# 2. Every method — ga, graddiff, npo, simnpo, simnpo with the KL retain term, and the
#    token-weighted wga (beta 1) and satimp (beta 5, beta2 1), and ceu (CE-U, forget
#    rows only) and undial (beta 10, the starting model's distributions), and the pair
#    methods idknll, dpo (y_w from data.alternate_split) and idkdpo (beta 0.5; synth.idk
#    writes the IdK splits) —
#    unlearns forget05 on 2 ranks, each under a different layout (tp 2, pp 2, dp 2),
#    the same budget for all (10 steps, lr 2e-3). From unlearn_log.jsonl, first and
#    last step: the forget rows' mean token log-likelihood (forget_logp) must fall by
#    at least 0.2 nats (satimp: 0.1; its token weights p^5 (1 - p) average about 0.04 on
#    the origin's forget rows, against 1 for GA, so the same budget moves it less); for the methods with a retain term, the retain loss of the
#    last step must stay below RETAIN_BOUND (NLL: nats per token; KL: nats per token).
#    The pair methods' IdK log-likelihood (alternate_logp) must rise by 0.2 nats, and dpo
#    on forget05_idk must end where idkdpo does (the same formula, another layout).
#    satimp, ceu, undial and idkdpo are also killed after step 7 (checkpoint every 4 steps) and resumed:
#    their final weights and AdamW moments must equal the uninterrupted run's bitwise.
# 3. Bad input: an unknown method, beta <= 0, a forget split the dataset lacks, dpo
#    without an alternate split, an alternate split that is missing, of other rows, or
#    the forget split itself, a
#    missing initial checkpoint and one whose shapes do not fit model.* each end with
#    a non-zero exit on every rank, exactly one "lethe: " line on stderr naming the
#    culprit, and the output folder as it was (a sentinel file, nothing added).
#
# Env: MPIRUN, LETHE_BIN (set by ctest). Prints the curves' first and last values.
WORK_PREFIX=lethe-unlearn LETHE_TIMEOUT=300
# shellcheck source=tests/unlearn_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/unlearn_lib.sh"
RETAIN_BOUND=1.0

unlearn_cfg() { # NAME METHOD RETAIN_LOSS DP PP TP
    cat >"$work/$1.json" <<EOF
{$model,
 "layout": {"dp": $4, "pp": $5, "tp": $6, "micro_batches": $5},
 "optim": {"schedule": "constant", "lr": 0.002, "warmup_steps": 0},
 "data": {"source": "hdf5", "path": "$work/data.h5", "forget_split": "forget05",
          "retain_split": "retain95"},
 "unlearn": {"method": "$2", "retain_loss": "$3", "epochs": 5, "warmup_epochs": 0,
             "batch_size": 4, "retain_batch_size": 4},
 "init": {"checkpoint": "$work/origin/model.h5"},
 "output": {"dir": "$work/$1"}}
EOF
}
# field N of line L of a JSON-lines file, by key
field() { sed -n "$2p" "$1" | grep -o "\"$3\":[-0-9.eE+]*" | cut -d: -f2; }

echo "method         layout     forget_logp first -> last    retain_loss first -> last"
declare -A extra=([wga]="--set unlearn.beta=1" [satimp]="--set unlearn.beta=5 --set unlearn.beta2=1"
    [undial]="--set unlearn.beta=10" [idknll]="--set unlearn.c_f=1"
    [dpo]="--set unlearn.beta=0.5 --set unlearn.c_f=1 --set data.alternate_split=\"forget05_idk\""
    [idkdpo]="--set unlearn.beta=0.5 --set unlearn.c_f=1")
for spec in "ga ga nll 1 1 2" "graddiff graddiff nll 1 2 1" "npo npo nll 2 1 1" \
    "simnpo simnpo nll 1 1 2" "simnpo-kl simnpo kl 1 2 1" "wga wga nll 2 1 1" \
    "satimp satimp nll 1 2 1" "ceu ceu nll 1 1 2" "undial undial nll 2 1 1" \
    "idknll idknll nll 1 1 2" "dpo dpo nll 1 2 1" "idkdpo idkdpo nll 2 1 1"; do
    read -r name method rl dp pp tp <<<"$spec"
    unlearn_cfg "$name" "$method" "$rl" "$dp" "$pp" "$tp"
    # shellcheck disable=SC2086 # extra holds whole --set words
    if ! lethe 2 unlearn "$work/$name.json" ${extra[$name]:-} >"$work/$name.log" 2>&1; then
        cat "$work/$name.log"
        say_fail "$name: lethe unlearn failed"
        continue
    fi
    log="$work/$name/unlearn_log.jsonl"
    n="$(wc -l <"$log")"
    f0="$(field "$log" 1 forget_logp)" f1="$(field "$log" "$n" forget_logp)"
    r0="$(field "$log" 1 retain_loss)" r1="$(field "$log" "$n" retain_loss)"
    printf '%-14s dp%s pp%s tp%s  %9.4f -> %9.4f        %8.4f -> %8.4f   (%s steps)\n' \
        "$name" "$dp" "$pp" "$tp" "$f0" "$f1" "$r0" "$r1" "$n"
    [ "$n" -eq 10 ] || say_fail "$name: $n logged steps, expected 10"
    drop=0.2
    [ "$method" = satimp ] && drop=0.1
    awk -v a="$f0" -v b="$f1" -v d="$drop" 'BEGIN { exit !(b <= a - d) }' ||
        say_fail "$name: forget log-likelihood per token $f0 -> $f1 did not fall by $drop"
    if [ "$method" != ga ] && [ "$method" != ceu ]; then
        awk -v r="$r1" -v m="$RETAIN_BOUND" 'BEGIN { exit !(r <= m) }' ||
            say_fail "$name: retain loss $r1 above the bound $RETAIN_BOUND"
    fi
    [ -f "$work/$name/model.h5" ] || say_fail "$name: no model.h5"
done
grep -q "retain kl" "$work/simnpo-kl.log" || say_fail "simnpo-kl: the job did not report the KL retain term"
[ -f "$work/npo/npo_reference.jsonl" ] || say_fail "npo: no npo_reference.jsonl"
# the pair methods: the IdK answers' log-likelihood rises, and dpo and idkdpo (the same
# formula, y_w from data.alternate_split = forget05_idk or its default) log the same curve
for name in idknll dpo idkdpo; do
    log="$work/$name/unlearn_log.jsonl"
    a0="$(field "$log" 1 alternate_logp)" a1="$(field "$log" "$(wc -l <"$log")" alternate_logp)"
    awk -v a="$a0" -v b="$a1" 'BEGIN { exit !(b > a + 0.2) }' ||
        say_fail "$name: IdK log-likelihood per token $a0 -> $a1 did not rise by 0.2"
done
for f in dpo_reference.jsonl dpo_alternate_reference.jsonl; do
    [ -f "$work/dpo/$f" ] || say_fail "dpo: no $f"
done
n="$(wc -l <"$work/dpo/unlearn_log.jsonl")"
d1="$(field "$work/dpo/unlearn_log.jsonl" "$n" forget_loss)"
i1="$(field "$work/idkdpo/unlearn_log.jsonl" "$n" forget_loss)"
awk -v a="$d1" -v b="$i1" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-3 * (b < 0 ? -b : b) + 1e-7) }' ||
    say_fail "dpo on forget05_idk (pp 2) and idkdpo (dp 2) end at different forget losses: $d1, $i1"

# ---- satimp, ceu, undial and idkdpo killed mid-run and resumed: bitwise the uninterrupted run ----
for spec in "satimp 1 2 1" "ceu 1 1 2" "undial 2 1 1" "idkdpo 1 2 1"; do
    read -r name dp pp tp <<<"$spec"
    unlearn_cfg "$name-ckpt" "$name" nll "$dp" "$pp" "$tp"
    run_ckpt() { # OUT [env...]: the job with checkpoints every 4 steps into OUT
        local out="$1"
        shift
        # shellcheck disable=SC2086 # extra holds whole --set words
        env "$@" timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" unlearn \
            "$work/$name-ckpt.json" ${extra[$name]:-} --set checkpoint.every=4 \
            --set output.dir="\"$work/$out\""
    }
    run_ckpt "$name-a" >"$work/$name-a.log" 2>&1 || say_fail "$name: uninterrupted run"
    run_ckpt "$name-b" LETHE_FAULT=abort-after-step:7 >"$work/$name-b1.log" 2>&1 &&
        say_fail "$name: the injected abort exited 0"
    run_ckpt "$name-b" >"$work/$name-b2.log" 2>&1 || say_fail "$name: resumed run"
    grep -q "resuming from .* at step 4" "$work/$name-b2.log" || say_fail "$name: did not resume at step 4"
    same_state "$work/$name-a" "$work/$name-b" "$name" && echo "$name: aborted after step 7, resumed at step 4, weights and moments bitwise equal"
done

# ---- bad input: one line, non-zero exit on every rank, nothing touched ----
# a checkpoint of another model (dim 32) for the shape mismatch
cat >"$work/other.json" <<EOF
{"model": {"vocab_size": 600, "dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2,
  "mlp_dim": 96, "max_seq_len": 40}, "threads": 1,
 "data": {"source": "hdf5", "path": "$work/data.h5", "split": "train_full"},
 "optim": {"warmup_steps": 0},
 "train": {"steps": 1, "batch_size": 2}, "output": {"dir": "$work/other"}}
EOF
lethe 1 train "$work/other.json" >"$work/other.log" 2>&1 || { cat "$work/other.log"; say_fail "other model"; }
unlearn_cfg bad simnpo nll 1 1 1
bad=0 refused=0
expect_refusal() { # LABEL EXPECTED-TEXT --set ...
    local label="$1" want="$2"
    shift 2
    local out="$work/bad-out"
    rm -rf "$out"
    mkdir -p "$out"
    echo keep >"$out/sentinel"
    bad=$((bad + 1))
    for np in 1 2; do
        lethe "$np" unlearn "$work/bad.json" --set output.dir="$out" --set layout.dp="$np" "$@" \
            >"$work/bad.out" 2>"$work/bad.err"
        local rc=$? lines
        lines="$(wc -l <"$work/bad.err")"
        local ok=1
        if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
            say_fail "$label np$np: exit status $rc"
            ok=0
        fi
        if [ "$lines" -ne 1 ] || ! grep -q "^lethe: .*$want" "$work/bad.err"; then
            say_fail "$label np$np: expected one 'lethe: ...$want...' line, got $lines:"
            sed 's/^/    | /' "$work/bad.err"
            ok=0
        fi
        if [ "$(ls -A "$out")" != sentinel ] || [ "$(cat "$out/sentinel")" != keep ]; then
            say_fail "$label np$np: the output folder changed: $(ls -A "$out" | tr '\n' ' ')"
            ok=0
        fi
        [ $ok -eq 1 ] || return
    done
    refused=$((refused + 1))
    echo "refused ($label): $(cat "$work/bad.err")"
}
expect_refusal "unknown method" "unlearn.method" --set unlearn.method='"sgd"'
expect_refusal "beta 0" "unlearn.beta" --set unlearn.beta=0
expect_refusal "beta < 0" "unlearn.beta" --set unlearn.beta=-1
expect_refusal "satimp beta2 < 0" "unlearn.beta2" --set unlearn.method='"satimp"' --set unlearn.beta2=-1
expect_refusal "unknown retain loss" "unlearn.retain_loss" --set unlearn.retain_loss='"mse"'
expect_refusal "missing forget split" "nope" --set data.forget_split='"nope"'
expect_refusal "dpo without alternate split" "data.alternate_split" --set unlearn.method='"dpo"'
expect_refusal "dpo beta 0" "unlearn.beta" --set unlearn.method='"dpo"' --set unlearn.beta=0 \
    --set data.alternate_split='"forget05_idk"'
expect_refusal "missing alternate split" "nope_idk" --set unlearn.method='"idkdpo"' \
    --set data.alternate_split='"nope_idk"'
expect_refusal "alternate split of other rows" "forget10_idk' has 22 rows" \
    --set unlearn.method='"idknll"' --set data.alternate_split='"forget10_idk"'
expect_refusal "alternate split is the forget split" "forget split itself" \
    --set unlearn.method='"idkdpo"' --set data.alternate_split='"forget05"'
expect_refusal "missing checkpoint" "missing.h5" --set init.checkpoint="\"$work/missing.h5\""
expect_refusal "checkpoint shape mismatch" "other/model.h5" \
    --set init.checkpoint="\"$work/other/model.h5\""
echo "unlearn bad input: $refused/$bad refused cleanly"
# --help names the methods and the alternate split, each with its text
help="$("$LETHE_BIN" unlearn --help 2>&1)"
for want in "undial\\|rmu\\|idknll\\|dpo\\|idkdpo\\|pdu" "data.alternate_split .*<forget_split>_idk; dpo needs one" \
    "unlearn.beta .*(npo, simnpo, dpo, idkdpo)"; do
    grep -Eq -- "$want" <<<"$help" || say_fail "lethe unlearn --help lacks '$want'"
done
[ $fail -eq 0 ] && echo "unlearn_cli: PASS"
exit $fail
