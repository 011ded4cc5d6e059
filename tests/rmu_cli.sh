#!/usr/bin/env bash
# tests/rmu_cli.sh — RMU (unlearn.method "rmu", model/rmu.h) through `lethe unlearn`.
#
# 1. Data and an origin model: `lethe synth` (20 fictitious authors x 11 questions,
#    forget05 = 11 rows) and `lethe train` (4 blocks) on train_full.
# 2. RMU at rmu_layer 2, rmu_span 2 (blocks 1 and 2 train down_proj; under pp 2 and 4 the
#    loss and the trained blocks sit on different stages, and pp 4's last stage does
#    nothing) for 10 steps under every layout of the matrix up to 8 ranks: every step's
#    loss, forget and retain terms, forget cosine, forget log-likelihood and gradient norm
#    equal the 1-rank run's to TOL relative (fp32 sums in another order).
# 3. The 2-rank run (tp 2) moves the forget hidden states toward c u: the forget term
#    falls to at most half, the cosine with u rises, and the forget rows' mean token
#    log-likelihood falls by at least 0.2 nats; the retain term stays below its bound.
#    Every tensor but down_proj of blocks 1 and 2 is bitwise the origin's; those differ.
# 4. Killed (abort after step 7, checkpoints every 4 steps) and resumed under pp 2 and
#    dp 2: weights and AdamW moments bitwise equal to the uninterrupted run's.
# 5. Bad values (rmu_layer past the model, rmu_span 0, rmu_steering 0, the KL retain
#    term) refused at 1 and 2 ranks: non-zero exit, one "lethe: " line naming the key,
#    the output folder untouched.
# Each check prints one PASS or FAIL line; the script passes only when the PASS lines
# equal the checks. Env: MPIRUN, LETHE_BIN (set by ctest).
set -uo pipefail
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
export OMPI_MCA_orte_execute_quiet=1
TOL=1e-5
work="$(mktemp -d "${TMPDIR:-/tmp}/lethe-rmu.XXXXXX")"
trap 'rm -rf "$work"' EXIT
checks=0 passes=0
check() { # LABEL OK(0/1) [detail]
    checks=$((checks + 1))
    if [ "$2" -eq 1 ]; then
        passes=$((passes + 1))
        echo "PASS: $1${3:+ ($3)}"
    else
        echo "FAIL: $1${3:+ ($3)}"
    fi
}
lethe() { # lethe NP JOB CONFIG [--set ...]
    local np="$1"
    shift
    timeout 300 "$MPIRUN" --oversubscribe -n "$np" "$LETHE_BIN" "$@"
}
model='"model": {"vocab_size": 600, "dim": 48, "n_layers": 4, "n_heads": 4, "n_kv_heads": 2,
  "mlp_dim": 96, "max_seq_len": 40, "init_seed": 5}, "threads": 1'
cat >"$work/synth.json" <<EOF
{"synth": {"kind": "authors", "seed": 21, "output": "$work/data.h5", "n_authors": 20,
  "questions": 11, "perturbed": 2, "holdout_authors": 2, "utility_facts": 8, "seq_len": 40},
 "output": {"dir": "$work/synth"}}
EOF
cat >"$work/train.json" <<EOF
{$model,
 "layout": {"dp": 2, "pp": 1, "tp": 1, "micro_batches": 1},
 "optim": {"schedule": "constant", "lr": 0.004, "warmup_steps": 2},
 "data": {"source": "hdf5", "path": "$work/data.h5", "split": "train_full"},
 "train": {"steps": 120, "batch_size": 16, "log_every": 40},
 "output": {"dir": "$work/origin"}}
EOF
lethe 1 synth "$work/synth.json" >"$work/synth.log" 2>&1 || { cat "$work/synth.log"; echo "FAIL: synth"; exit 1; }
lethe 2 train "$work/train.json" >"$work/train.log" 2>&1 || { cat "$work/train.log"; echo "FAIL: train"; exit 1; }

rmu_cfg() { # NAME DP PP TP
    cat >"$work/$1.json" <<EOF
{$model,
 "layout": {"dp": $2, "pp": $3, "tp": $4, "micro_batches": 2},
 "optim": {"schedule": "constant", "lr": 0.01, "warmup_steps": 0, "weight_decay": 0.01},
 "data": {"source": "hdf5", "path": "$work/data.h5", "forget_split": "forget05",
          "retain_split": "retain95"},
 "unlearn": {"method": "rmu", "rmu_layer": 2, "rmu_span": 2, "rmu_steering": 4,
             "c_f": 1, "c_r": 1, "epochs": 5, "warmup_epochs": 0,
             "batch_size": 4, "retain_batch_size": 4},
 "init": {"checkpoint": "$work/origin/model.h5"},
 "output": {"dir": "$work/$1"}}
EOF
}
field() { sed -n "$2p" "$1" | grep -o "\"$3\":[-0-9.eE+]*" | cut -d: -f2; }
keys="loss forget_loss retain_loss forget_cos forget_logp grad_norm"

# ---- the layout matrix against one rank ----
layouts="1:1:1:1 2:2:1:1 2:1:2:1 2:1:1:2 4:1:4:1 4:1:2:2 4:2:1:2 4:2:2:1 8:2:2:2 8:1:4:2 8:2:4:1"
for l in $layouts; do
    IFS=: read -r np dp pp tp <<<"$l"
    name="m-$dp$pp$tp"
    rmu_cfg "$name" "$dp" "$pp" "$tp"
    if ! lethe "$np" unlearn "$work/$name.json" >"$work/$name.log" 2>&1; then
        cat "$work/$name.log"
        check "rmu dp$dp pp$pp tp$tp runs" 0
        continue
    fi
    [ "$name" = m-111 ] && continue
    worst=0 bad=""
    for s in $(seq 1 10); do
        for k in $keys; do
            a="$(field "$work/m-111/unlearn_log.jsonl" "$s" "$k")"
            b="$(field "$work/$name/unlearn_log.jsonl" "$s" "$k")"
            e="$(awk -v a="$a" -v b="$b" 'BEGIN { if (a == "" || b == "") { print "inf"; exit }
                d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a; if (m < 1e-30) m = 1e-30; print d / m }')"
            if awk -v e="$e" -v t="$TOL" 'BEGIN { exit !(e == "inf" || e > t) }'; then bad="$bad step $s $k ($a vs $b)"; fi
            worst="$(awk -v e="$e" -v w="$worst" 'BEGIN { print (e == "inf" || e > w) ? e : w }')"
        done
    done
    check "rmu dp$dp pp$pp tp$tp = 1 rank, 10 steps x {$keys}" "$([ -z "$bad" ] && echo 1 || echo 0)" \
        "worst relative difference $worst${bad:+;$bad}"
done

# ---- the 2-rank run moves the forget hidden states toward c u ----
log="$work/m-112/unlearn_log.jsonl"
n="$(wc -l <"$log")"
f0="$(field "$log" 1 forget_loss)" f1="$(field "$log" "$n" forget_loss)"
c0="$(field "$log" 1 forget_cos)" c1="$(field "$log" "$n" forget_cos)"
p0="$(field "$log" 1 forget_logp)" p1="$(field "$log" "$n" forget_logp)"
r1="$(field "$log" "$n" retain_loss)"
check "10 logged steps" "$([ "$n" -eq 10 ] && echo 1 || echo 0)" "$n"
check "forget term at most halves" "$(awk -v a="$f0" -v b="$f1" 'BEGIN { print (b <= a / 2) }')" "$f0 -> $f1"
check "forget cosine with u rises" "$(awk -v a="$c0" -v b="$c1" 'BEGIN { print (b > a + 0.05) }')" "$c0 -> $c1"
check "forget log-likelihood falls by 0.2" "$(awk -v a="$p0" -v b="$p1" 'BEGIN { print (b <= a - 0.2) }')" "$p0 -> $p1"
check "retain term below 1" "$(awk -v a="$r1" 'BEGIN { print (a < 1) }')" "$r1"
names="$(h5dump -n "$work/origin/model.h5" | awk '$1 == "dataset" && $2 ~ /^\/params\// { print $2 }')"
frozen_ok=1 moved_ok=1 nfrozen=0
for d in $names; do
    case "$d" in
    */model.layers.1.mlp.down_proj.weight | */model.layers.2.mlp.down_proj.weight)
        h5diff -q "$work/origin/model.h5" "$work/m-112/model.h5" "$d" "$d" >/dev/null && moved_ok=0 ;;
    *)
        nfrozen=$((nfrozen + 1))
        h5diff -q "$work/origin/model.h5" "$work/m-112/model.h5" "$d" "$d" >/dev/null || { frozen_ok=0; echo "  moved: $d"; } ;;
    esac
done
check "every other tensor bitwise the origin's" "$([ $nfrozen -gt 10 ] && echo $frozen_ok || echo 0)" "$nfrozen tensors"
check "down_proj of blocks 1 and 2 trained" "$moved_ok"

# ---- killed and resumed: bitwise ----
for spec in "1 2 1" "2 1 1"; do
    read -r dp pp tp <<<"$spec"
    rmu_cfg "ck-$dp$pp$tp" "$dp" "$pp" "$tp"
    run_ckpt() { # OUT [env...]
        local out="$1"
        shift
        env "$@" timeout 300 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" unlearn \
            "$work/ck-$dp$pp$tp.json" --set checkpoint.every=4 --set output.dir="\"$work/$out\""
    }
    ok=1
    run_ckpt "ck-$dp$pp$tp-a" >"$work/cka.log" 2>&1 || ok=0
    run_ckpt "ck-$dp$pp$tp-b" LETHE_FAULT=abort-after-step:7 >"$work/ckb1.log" 2>&1 && ok=0
    run_ckpt "ck-$dp$pp$tp-b" >"$work/ckb2.log" 2>&1 || ok=0
    grep -q "resuming from .* at step 4" "$work/ckb2.log" || ok=0
    for g in /params /adam_m /adam_v; do
        h5diff -q "$work/ck-$dp$pp$tp-a/model.h5" "$work/ck-$dp$pp$tp-b/model.h5" "$g" "$g" >/dev/null || ok=0
    done
    # each step logged once, with the uninterrupted run's terms
    diff <(grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*,"forget_loss":[^,]*,"retain_loss":[^,]*' \
        "$work/ck-$dp$pp$tp-a/unlearn_log.jsonl") \
        <(grep -o '"step":[0-9]*,"epoch":[0-9]*,"loss":[^,]*,"forget_loss":[^,]*,"retain_loss":[^,]*' \
            "$work/ck-$dp$pp$tp-b/unlearn_log.jsonl") >/dev/null || ok=0
    check "dp$dp pp$pp tp$tp aborted after step 7, resumed at 4: weights, moments and logged terms bitwise" "$ok"
done

# ---- bad values ----
rmu_cfg bad 1 1 1
expect_refusal() { # LABEL EXPECTED-TEXT --set ...
    local label="$1" want="$2" ok=1
    shift 2
    local out="$work/bad-out"
    for np in 1 2; do
        rm -rf "$out"
        mkdir -p "$out"
        echo keep >"$out/sentinel"
        lethe "$np" unlearn "$work/bad.json" --set output.dir="\"$out\"" --set layout.dp="$np" "$@" \
            >"$work/bad.out" 2>"$work/bad.err"
        local rc=$? lines
        lines="$(wc -l <"$work/bad.err")"
        { [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; } || ok=0
        { [ "$lines" -eq 1 ] && grep -q "^lethe: .*$want" "$work/bad.err"; } || ok=0
        { [ "$(ls -A "$out")" = sentinel ] && [ "$(cat "$out/sentinel")" = keep ]; } || ok=0
        [ $ok -eq 1 ] || sed 's/^/    | /' "$work/bad.err"
    done
    check "refused ($label)" "$ok" "$(head -c 200 "$work/bad.err")"
}
expect_refusal "rmu_layer past the model" "unlearn.rmu_layer=4" --set unlearn.rmu_layer=4
expect_refusal "rmu_layer < 0" "unlearn.rmu_layer" --set unlearn.rmu_layer=-1
expect_refusal "rmu_span 0" "unlearn.rmu_span" --set unlearn.rmu_span=0
expect_refusal "rmu_steering 0" "unlearn.rmu_steering" --set unlearn.rmu_steering=0
expect_refusal "KL retain term" "retain_loss" --set unlearn.retain_loss='"kl"'
echo "rmu_cli: $passes/$checks checks passed"
[ "$passes" -eq "$checks" ] && [ "$checks" -eq 24 ] && echo "rmu_cli: PASS" && exit 0
exit 1
