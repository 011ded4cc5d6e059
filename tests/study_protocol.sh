#!/bin/bash
# The protocol of fair comparison (io/study.h "protocol", jobs/select.c), through the real
# binary. Expansion (dry runs): the shipped tofu-tiny's job counts per kind and its
# labels, the select job's spec, the dependencies `lethe slurm --dry-run` renders, and
# every bad protocol (unequal budget, each bad protocol key) refused in one "lethe:"
# line. Then tests/data/mini-protocol.json end to end on 2 ranks: selected.json equals
# the rule recomputed here in Python from the selection evals' summary.json files, the
# report-phase jobs carry the chosen setting on the report seeds, budget.json's tokens
# match the job's batches and log, a re-run (also under another layout) runs nothing, a
# removed report-phase result is rematerialised and re-run alone, and an edited grid is
# refused, then re-run with --rerun-changed (select again); a preempted unlearn run's
# budget is carried into its resumed run's budget.json. Counts PASS lines against
# the number of checks. Needs MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR.
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_MCA_orte_execute_quiet=1
B="$LETHE_BIN"
SRC="$LETHE_SOURCE_DIR"
M="$SRC/tests/data/mini-protocol.json"
pass=0 total=0
check() { # check STATUS MESSAGE
    total=$((total + 1))
    if [ "$1" = 0 ]; then pass=$((pass + 1)); echo "PASS: $2"; else echo "FAIL: $2"; fi
    return "$1"
}

# ---- expansion ------------------------------------------------------------------------
# the shipped protocol studies: tofu-tiny (the demo), tofu-methods and tofu-full-sweep
# (every method, each with its own grid), checked by tests/study_expand.py
for st in tofu-tiny tofu-methods tofu-full-sweep; do
    "$B" study "$SRC/jobs/studies/$st.json" --dir "$work/$st" --dry-run >"$work/$st.log" 2>&1
    check $? "$st dry run"
    /usr/bin/python3 "$SRC/tests/study_expand.py" "$work/$st" "$SRC/jobs/studies/$st.json" "$work/$st.log"
    check $? "$st expansion: job counts per kind and in all, labels (phase, setting, values), fixed values, methods, select specs, report phase unmaterialised"
done
rm -rf "$work/tofu-methods" "$work/tofu-full-sweep"

# the old flat form: phase "report", setting <method>-p<k>, names unchanged
"$B" study "$SRC/tests/data/mini-study.json" --dir "$work/flat" --dry-run >/dev/null 2>&1 &&
    /usr/bin/python3 -c 'import json,sys; l=json.load(open(sys.argv[1])); sys.exit(0 if l["phase"]=="report" and l["setting"]=="npo-p0" else 1)' \
        "$work/flat/eval-10-npo-g0-s1/labels.json"
check $? "flat-form study: eval-10-npo-g0-s1 labels phase report, setting npo-p0"

mkdir -p "$work/sl"
"$B" slurm "$M" --dir "$work/sl/m" --nodes 2 --dry-run >"$work/slurm.log" 2>&1 &&
    grep -Eq '^select-10-ga +- +eval-origin-10 eval-10-ga$' "$work/slurm.log" &&
    grep -Eq '^unlearn-10-ga-report-s7 +- \[unlearn-10-ga-report\] +select-10-ga$' "$work/slurm.log" &&
    grep -Eq '^eval-10-simnpo-report-s7 +- \[eval-10-simnpo-report\] +unlearn-10-simnpo-report eval-retrain-10$' "$work/slurm.log" &&
    grep -q 'lethe select .*/select-10-ga/job.json' "$work/sl/m/select-10-ga/job.sbatch" &&
    grep -q '30 to submit (dry run) as 18 submissions' "$work/slurm.log"
check $? "lethe slurm --dry-run: the select job waits for the origin's eval and its method's eval array; the report phase waits for it" ||
    cat "$work/slurm.log"

# bad studies, each refused in one line
bad_case() { # bad_case NAME 'python edit of d' 'expected message part'
    /usr/bin/python3 - "$M" "$work/$1.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(d, open(sys.argv[2], "w"))
PY
    out=$("$B" study "$work/$1.json" --dir "$work/bad-$1" --dry-run 2>&1 >/dev/null)
    rc=$?
    [ $rc != 0 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && [[ "$out" == "lethe: "*"$3"* ]] && [ ! -e "$work/bad-$1" ]
    check $? "$1 refused in one line: $out"
}
bad_case unequal 'd["methods"]["simnpo"]["grid"]["unlearn.c_f"] = [0.1375, 0.5, 1]' \
    "unequal budget: ga 2 settings x 2 seeds = 4, simnpo 3 settings x 2 seeds = 6 (every method needs the same number of settings x seeds)"
bad_case unequal_flat 'd["methods"]["npo"] = {"unlearn.beta": 0.1}; d["methods"]["simnpo"]["grid"]["unlearn.c_f"] = [1]' \
    "unequal budget: ga 2 settings x 2 seeds = 4, simnpo 1 settings x 2 seeds = 2, npo 2 settings x 2 seeds = 4"
bad_case proto_unknown 'd["protocol"]["taus"] = 1' "protocol: unknown key 'taus' (known: selection_seeds, report_seeds, tau, rule)"
bad_case proto_no_sel 'del d["protocol"]["selection_seeds"]' "protocol.selection_seeds is missing"
bad_case proto_no_rep 'del d["protocol"]["report_seeds"]' "protocol.report_seeds is missing"
bad_case proto_overlap 'd["protocol"]["report_seeds"] = [7, 2]' "seed 2 is both a selection and a report seed"
bad_case proto_dup_seed 'd["protocol"]["selection_seeds"] = [1, 1]' "protocol.selection_seeds lists seed 1 twice"
bad_case proto_frac_seed 'd["protocol"]["report_seeds"] = [1.5]' "protocol.report_seeds must be integers"
bad_case proto_empty 'd["protocol"]["report_seeds"] = []' "'protocol.report_seeds' must be a list of integers"
bad_case proto_tau 'd["protocol"]["tau"] = 1.5' "protocol.tau must be a number in [0, 1]"
bad_case proto_tau_str 'd["protocol"]["tau"] = "0.9"' "protocol.tau must be a number in [0, 1]"
bad_case proto_rule 'd["protocol"]["rule"] = "best_fq"' 'protocol.rule must be "fq_at_mu"'
bad_case proto_type 'd["protocol"] = [1]' "'protocol' must be an object"
bad_case proto_seeds 'd["seeds"] = [1]' "'seeds' and 'protocol' both given"
bad_case method_extra 'd["methods"]["simnpo"]["optim.lr"] = 1e-3' "method 'simnpo': key 'optim.lr' beside 'fixed' and 'grid'"
bad_case method_grid_empty 'd["methods"]["simnpo"]["grid"]["unlearn.c_f"] = []' "grid key 'unlearn.c_f' must be a non-empty list"
bad_case method_fixed_type 'd["methods"]["simnpo"]["fixed"] = 3' "'simnpo.fixed' must be an object of dotted keys"
bad_case method_grid_key 'g = d["methods"]["simnpo"]["grid"]; g["unlearn.cf"] = g.pop("unlearn.c_f")' \
    "unknown key 'unlearn.cf'"

# ---- end to end on 2 ranks --------------------------------------------------------------
D="$work/mini"
run() { "$MPIRUN" --oversubscribe -n 2 "$B" study "$@" --dir "$D"; }
run "$M" >"$work/run.log" 2>&1
check $? "mini protocol study on 2 ranks" || tail -20 "$work/run.log"
/usr/bin/python3 - "$D" "$M" <<'PY'
import json, math, os, sys, itertools
d, sf = sys.argv[1], sys.argv[2]
st = json.load(open(sf)); P = st["protocol"]
bad = []
def js(*p): return json.load(open(os.path.join(d, *p)))
mu0 = js("eval-origin-10", "summary.json")["model_utility"]
for m, spec in st["methods"].items():
    g = spec["grid"] if "grid" in spec else st["grid"]
    pts = [dict(zip(g, v)) for v in itertools.product(*g.values())]
    rows = []
    for k in range(len(pts)):
        s = [js(f"eval-10-{m}-p{k}-s{x}", "summary.json") for x in P["selection_seeds"]]
        mu = sum(x["model_utility"] for x in s) / len(s)
        fq = sum(x["log10_forget_quality"] for x in s) / len(s)
        gap = sum(abs(x["forget_prob_gap"]) for x in s) / len(s)
        rows.append((k, mu, fq, gap, mu >= P["tau"] * mu0))
    el = [r for r in rows if r[4]]
    if el:
        best = max(r[2] for r in el)
        k = min((r for r in el if abs(r[2] - best) <= 1e-12 * max(1, abs(best))), key=lambda r: (r[3], r[0]))[0]
    else:
        k = max(rows, key=lambda r: (r[1], -r[0]))[0]
    S = js(f"select-10-{m}", "selected.json")
    if S["index"] != k or S["setting"] != f"{m}-p{k}" or S["eligible"] != bool(el):
        bad.append(f"{m}: selected {S['setting']} (eligible {S['eligible']}), the rule recomputed gives {m}-p{k} ({bool(el)})")
    if abs(S["mu_origin"] - mu0) > 1e-12 or S["tau"] != P["tau"] or S["rule"] != "fq_at_mu" or S["method"] != m or S["forget"] != "forget10":
        bad.append(f"{m}: selected.json header {S}")
    for r, c in zip(rows, S["candidates"]):
        if abs(c["mean_mu"] - r[1]) > 1e-9 or abs(c["mean_log10_fq"] - r[2]) > 1e-9 or abs(c["forget_prob_gap"] - r[3]) > 1e-9 or c["eligible"] != r[4] or c["n_seeds"] != 2:
            bad.append(f"{m} candidate {c['setting']}: {c} vs {r}")
    if S["overrides"] != pts[k]: bad.append(f"{m}: overrides {S['overrides']} vs {pts[k]}")
    for s in P["report_seeds"]:
        u = js(f"unlearn-10-{m}-report-s{s}", "job.json")
        for key, v in pts[k].items():
            a, b = key.split(".")
            if u[a][b] != v: bad.append(f"{m} report s{s}: {key} = {u[a][b]}, chosen {v}")
        if u["train"]["seed"] != s: bad.append(f"{m} report s{s}: train.seed {u['train']['seed']}")
        for j in ("eval", "relearn"):
            lab = js(f"{j}-10-{m}-report-s{s}", "labels.json")
            if lab["phase"] != "report" or lab["setting"] != f"{m}-p{k}" or lab["seed"] != s:
                bad.append(f"{j} {m} report s{s}: labels {lab}")
        sm = js(f"eval-10-{m}-report-s{s}", "summary.json")
        if sm["model_utility"] is None: bad.append(f"{m} report s{s}: no model utility")
        if not [x for x in os.listdir(os.path.join(d, f"relearn-10-{m}-report-s{s}")) if os.path.exists(os.path.join(d, f"relearn-10-{m}-report-s{s}", x, "relearn.jsonl"))]:
            bad.append(f"{m} report s{s}: no relearn curve")
    # budget: tokens = steps x (forget batch + retain batch) x positions, steps = the log's lines
    for n in [f"unlearn-10-{m}-p0-s1", f"unlearn-10-{m}-report-s{P['report_seeds'][0]}"]:
        b, c = js(n, "budget.json"), js(n, "job.json")
        steps = sum(1 for _ in open(os.path.join(d, n, "unlearn_log.jsonl")))
        rb = 0 if m == "ga" else c["unlearn"]["retain_batch_size"]
        tok = steps * (c["unlearn"]["batch_size"] + rb) * c["model"]["max_seq_len"]
        if b["steps"] != steps or b["tokens"] != tok or b["ranks"] != 2 or not (0 < b["cpu_seconds"] < 600) or not (0 < b["wall_seconds"] < 600):
            bad.append(f"{n}: budget {b}, expected {steps} steps, {tok} tokens, 2 ranks")
    print(f"{m}: selected {S['setting']} of {len(pts)} (MU(origin) {mu0:.4f}, tau {P['tau']})")
md = open(os.path.join(d, "report", "results.md")).read()
for m in st["methods"]:
    if f"| {m} |" not in md: bad.append(f"report lacks {m}")
for b in bad: print("  ", b)
sys.exit(1 if bad else 0)
PY
check $? "selected.json equals the rule recomputed from the selection evals; report phase on the chosen setting and report seeds; budget.json"

cp "$D/select-10-simnpo/selected.json" "$work/selected-before.json"
run "$M" >"$work/again.log" 2>&1 && grep -q "(0 to run)" "$work/again.log" &&
    cmp -s "$D/select-10-simnpo/selected.json" "$work/selected-before.json"
check $? "a re-run runs nothing (finished select jobs are not redone)"
run "$M" --set layout.dp=1 --set layout.tp=2 >"$work/layout.log" 2>&1 && grep -q "(0 to run)" "$work/layout.log"
check $? "a re-run under another layout runs nothing" || head -3 "$work/layout.log"

# a report-phase job not finished: its files come again from the select job's choice
cp "$D/unlearn-10-simnpo-report-s7/job.json" "$work/job-before.json"
rm -rf "$D/eval-10-simnpo-report-s7" "$D/unlearn-10-simnpo-report-s7"/{job.json,.done,model.h5}
run "$M" >"$work/resume.log" 2>&1 && grep -q "(2 to run)" "$work/resume.log" &&
    cmp -s "$D/unlearn-10-simnpo-report-s7/job.json" "$work/job-before.json" &&
    [ -f "$D/eval-10-simnpo-report-s7/summary.json" ] && ! grep -q "lethe select" "$work/resume.log"
check $? "removed report-phase results: rematerialised from selected.json and re-run alone" ||
    grep -E "to run|==>" "$work/resume.log"

# the grid edited: refused naming the job and key; --rerun-changed selects again
/usr/bin/python3 - "$M" "$work/edited.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); d["methods"]["simnpo"]["grid"]["unlearn.c_f"] = [0.1375, 0.5]
json.dump(d, open(sys.argv[2], "w"))
PY
run "$work/edited.json" >"$work/edited.log" 2>&1
[ $? != 0 ] && grep -q "^lethe: .*job 'unlearn-10-simnpo-p1-s1' is finished but job.json key 'unlearn.c_f' was 1, now 0.5" "$work/edited.log"
check $? "an edited grid is refused, naming the first changed job and key" || head -3 "$work/edited.log"
run "$work/edited.json" --rerun-changed >"$work/rerun.log" 2>&1 &&
    grep -q "job 'select-10-simnpo' changed or depends on one that did" "$work/rerun.log" &&
    [ -f "$D/select-10-simnpo.old-1/selected.json" ] && grep -q "lethe select: simnpo at forget10" "$work/rerun.log" &&
    /usr/bin/python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if [c["overrides"]["unlearn.c_f"] for c in s["candidates"]]==[0.1375,0.5] else 1)' \
        "$D/select-10-simnpo/selected.json" && ! grep -q "lethe select: ga" "$work/rerun.log"
check $? "--rerun-changed moves the changed method's jobs and its select aside and selects again (ga untouched)" ||
    grep -E "to run|moved|==>" "$work/rerun.log"

# budget of a preempted run: budget.partial.json, added into budget.json by the resume
U="$D/unlearn-10-ga-p0-s1/job.json"
ul=("$MPIRUN" --oversubscribe -n 2 "$B" unlearn "$U" --set output.dir="$work/up" --set unlearn.epochs=400)
# mpirun itself in the background (it forwards the signal to the ranks), not a subshell
"${ul[@]}" >"$work/up1.log" 2>&1 &
pid=$!
P="$work/up/unlearn_log.jsonl.partial"
for _ in $(seq 2400); do [ -f "$P" ] && [ "$(wc -l <"$P")" -ge 5 ] && break; sleep 0.05; done
kill -USR1 $pid
wait $pid
rc=$?
[ $rc = 0 ] && grep -q "preempted after step" "$work/up1.log" && [ -f "$work/up/budget.partial.json" ] &&
    [ ! -e "$work/up/budget.json" ]
check $? "a preempted unlearn run leaves budget.partial.json, no budget.json" || tail -3 "$work/up1.log"
cp "$work/up/budget.partial.json" "$work/partial.json" 2>/dev/null
"${ul[@]}" >"$work/up2.log" 2>&1 && [ ! -e "$work/up/budget.partial.json" ] &&
    /usr/bin/python3 - "$work/partial.json" "$work/up/budget.json" <<'PY'
import json, sys
p, b = (json.load(open(f)) for f in sys.argv[1:3])
ok = b["steps"] == 800 and b["tokens"] == 800 * 4 * 40 and b["cpu_seconds"] > p["cpu_seconds"] and b["wall_seconds"] > p["wall_seconds"]
print(f"budget: preempted run {p['cpu_seconds']:.2f} CPU s, whole {b['cpu_seconds']:.2f} CPU s, {b['steps']} steps")
sys.exit(0 if ok else 1)
PY
check $? "the resumed run's budget.json adds the preempted run's and removes budget.partial.json" || tail -3 "$work/up2.log"

echo "study_protocol: $pass/$total passed"
[ "$pass" = "$total" ] && [ "$total" = 35 ]
