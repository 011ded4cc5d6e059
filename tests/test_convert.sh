#!/usr/bin/env bash
# tests/test_convert.sh — `lethe convert` round trips across layouts, Hugging Face
# names and layouts, half-precision imports, tied heads and refused files.
#
# 1. Train the demo model (vocab_size 509: padded under tp=2) for 3 steps (2 ranks,
#    tp=2) -> model.h5.
# 2. model.h5 -> a.safetensors at 2 ranks (tp=2); a.safetensors -> b.h5 at 4 ranks
#    (dp=2 tp=2: only the first replica reads); b.h5 -> c.safetensors at 1 rank.
#    a and c must be byte-identical (cmp), and h5diff must find no difference in
#    /params between model.h5 and b.h5.
# 3. Python (json + numpy + torch, no safetensors package): a.safetensors holds exactly
#    the Hugging Face Llama names with their shapes for the config, F32, metadata
#    {"format": "pt"}, a buffer tiled exactly, and every tensor equals the checkpoint's
#    /params dataset read with h5dump (so a layout error that a round trip would undo is
#    still caught). It then writes mixed.safetensors (tensors in BF16, F16 and F32, the
#    half values rounded by torch), tied.safetensors (no lm_head) and three bad files.
# 4. mixed.safetensors -> checkpoint at 2 ranks -> safetensors at 1 rank holds exactly
#    torch's widening of the half values; tied.safetensors -> checkpoint with
#    model.tie_embeddings=true at 4 ranks (pp=2 tp=2: the last stage holds the head copy)
#    -> safetensors at 1 rank holds the same tensors, in order, bit for bit.
# 5. Refused with exit 2, exactly one 'lethe: ' line naming the tensor (and both
#    shapes), and nothing at --to: at 2 ranks a wrong shape, an unknown tensor name,
#    lm_head.weight with tied embeddings, a missing tensor, a checkpoint that does not
#    fit the model; at 1 rank bad arguments and a missing input.
#
# env: MPIRUN, LETHE_BIN, LETHE_SOURCE_DIR, LETHE_PYTHON (default /usr/bin/python3);
# KEEP=1 keeps the scratch folder (its path is printed) for a look at the files.
# Exit 77 (skipped) when that python lacks numpy or torch.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cases_lib.sh"
: "${MPIRUN:?MPIRUN is not set}"
: "${LETHE_BIN:?LETHE_BIN is not set}"
: "${LETHE_SOURCE_DIR:?LETHE_SOURCE_DIR is not set}"
PY="${LETHE_PYTHON:-/usr/bin/python3}"
if ! "$PY" -c 'import numpy, torch' 2>/dev/null; then
    echo "test_convert: $PY has no numpy/torch; skipped"
    exit 77
fi
work="$(mktemp -d)"
[ -n "${KEEP:-}" ] && echo "test_convert: scratch folder $work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
# the demo model with an odd vocabulary (509), so that tp=2 pads the embedding and the
# head with a row that must be read as zero and never written
cfg="$work/demo509.json"
"$PY" - "$LETHE_SOURCE_DIR/jobs/configs/demo.json" "$cfg" <<'EOF' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
c["model"]["vocab_size"] = 509
json.dump(c, open(sys.argv[2], "w"), indent=1)
EOF
fail=0
FAIL() {
    echo "FAIL: $*"
    fail=1
}
# shellcheck source=jobs/mpienv.sh
source "$(dirname "${BASH_SOURCE[0]}")/../jobs/mpienv.sh"
# run_lethe TAG N args...: N ranks, output in $work/TAG.{out,err}; the refusals run at
# once, each mpirun in a session folder of its own (jobs/mpienv.sh)
run_lethe() {
    local tag="$1" n="$2"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" "$@" \
        >"$work/$tag.out" 2>"$work/$tag.err"
}
must() { # must N args...: the run succeeds, or the test ends
    if ! run_lethe must "$@"; then
        echo "FAIL: lethe $* exited with an error"
        cat "$work/must.out" "$work/must.err"
        exit 1
    fi
}
# refuse TAG N WANT TO args...: a case of tests/cases_lib.sh, run in the background (the
# refusals are independent and spend their time in MPI start-up); asserts exit 2, exactly
# one stderr line 'lethe: ...WANT...', and nothing at TO or TO.tmp. collect waits for them
# (at most 120 s each) and prints one verdict line per case.
# shellcheck disable=SC2317 # run by case_bg
refuse_one() {
    local tag="$1" n="$2" want="$3" to="$4"
    shift 4
    run_lethe "$tag" "$n" "$@"
    case_refusal "$tag" "lethe $*" "$want" "$to" $? "$work/$tag.err"
}
refuse() { case_bg "$1" refuse_one "$@"; }
collect() { cases_wait 120; }
cases_init "$work/cases"

# 1. a model to convert
must 2 train "$cfg" --set train.steps=3 --set optim.warmup_steps=1 --set train.log_every=100 \
    --set output.dir="$work/run"
model="$work/run/model.h5"

# 2. round trips across layouts (demo.json: dp=1 pp=1 tp=2)
must 2 convert "$cfg" --from "$model" --to "$work/a.safetensors"
must 4 convert "$cfg" --set layout.dp=2 --from "$work/a.safetensors" --to "$work/b.h5"
must 1 convert "$cfg" --set layout.tp=1 --from "$work/b.h5" --to "$work/c.safetensors"
cmp "$work/a.safetensors" "$work/c.safetensors" ||
    FAIL "safetensors exported at tp=2 and after a round trip through dp=2 tp=2 differ"
h5diff -q "$model" "$work/b.h5" /params /params ||
    FAIL "/params of model.h5 and of the round-tripped b.h5 differ"
ls "$work"/*.tmp >/dev/null 2>&1 && FAIL "temporary files left: $(ls "$work"/*.tmp)"

# 3. Hugging Face names, shapes and values; the derived files
cat >"$work/st.py" <<'EOF'
import json, os, struct, subprocess, sys
import numpy as np
import torch

def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    return hdr, raw[8 + n:]

if sys.argv[1] == "same":
    # the same tensors (names in order, dtypes, shapes, bytes) and metadata
    (ha, ba), (hb, bb) = read_st(sys.argv[2]), read_st(sys.argv[3])
    if list(ha) != list(hb):
        sys.exit(f"names differ: {list(ha)} vs {list(hb)}")
    for n in ha:
        if n == "__metadata__":
            if ha[n] != hb[n]:
                sys.exit(f"metadata {ha[n]} vs {hb[n]}")
            continue
        ea, eb = ha[n], hb[n]
        if ea["dtype"] != eb["dtype"] or ea["shape"] != eb["shape"]:
            sys.exit(f"{n}: {ea['dtype']} {ea['shape']} vs {eb['dtype']} {eb['shape']}")
        if ba[slice(*ea["data_offsets"])] != bb[slice(*eb["data_offsets"])]:
            sys.exit(f"{n}: values differ")
    sys.exit(0)

cfg_path, work = sys.argv[2], sys.argv[3]
m = json.load(open(cfg_path))["model"]
V, C, L, NH = m["vocab_size"], m["dim"], m["n_layers"], m["n_heads"]
NKV, I = m.get("n_kv_heads", NH), m["mlp_dim"]
hd = C // NH
bad = []

def write_st(path, tensors, meta={"format": "pt"}):
    """tensors: list of (name, dtype string, shape, bytes), laid out in order."""
    hdr, off, blobs = {"__metadata__": meta}, 0, []
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

# the Hugging Face Llama state dict of this config
want = {"model.embed_tokens.weight": [V, C], "model.norm.weight": [C], "lm_head.weight": [V, C]}
for l in range(L):
    p = f"model.layers.{l}."
    want.update({
        p + "input_layernorm.weight": [C],
        p + "self_attn.q_proj.weight": [NH * hd, C],
        p + "self_attn.k_proj.weight": [NKV * hd, C],
        p + "self_attn.v_proj.weight": [NKV * hd, C],
        p + "self_attn.o_proj.weight": [C, NH * hd],
        p + "post_attention_layernorm.weight": [C],
        p + "mlp.gate_proj.weight": [I, C],
        p + "mlp.up_proj.weight": [I, C],
        p + "mlp.down_proj.weight": [C, I],
    })
hdr, buf = read_st(os.path.join(work, "a.safetensors"))
meta = hdr.pop("__metadata__", None)
if meta != {"format": "pt"}:
    bad.append(f"__metadata__ is {meta}, expected {{'format': 'pt'}}")
if set(hdr) != set(want):
    bad.append(f"names: missing {sorted(set(want) - set(hdr))}, extra {sorted(set(hdr) - set(want))}")
spans = []
for name, e in hdr.items():
    if name in want and e["shape"] != want[name]:
        bad.append(f"{name}: shape {e['shape']}, expected {want[name]}")
    if e["dtype"] != "F32":
        bad.append(f"{name}: dtype {e['dtype']}, expected F32")
    spans.append(tuple(e["data_offsets"]))
spans.sort()
if spans[0][0] != 0 or spans[-1][1] != len(buf) or any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
    bad.append("the data buffer is not tiled exactly by the tensors")

def tensor(hdr, buf, name):
    e = hdr[name]
    b0, b1 = e["data_offsets"]
    return np.frombuffer(buf[b0:b1], dtype="<f4").reshape(e["shape"])

# values: each tensor equals the checkpoint's /params dataset (h5dump, raw little-endian)
model = os.path.join(work, "run", "model.h5")
for name in sorted(hdr):
    out = os.path.join(work, "h5dump.bin")
    subprocess.run(["h5dump", "-d", "/params/" + name, "-b", "LE", "-o", out, model],
                   check=True, stdout=subprocess.DEVNULL)
    ref = np.fromfile(out, dtype="<f4")
    got = tensor(hdr, buf, name)
    if ref.size != got.size or not np.array_equal(ref.reshape(got.shape), got):
        bad.append(f"{name}: values differ from /params/{name} of model.h5")

# mixed precision: every third tensor BF16, every third F16, the rest F32 (torch rounds
# to nearest even; the expected F32 values are torch's exact widening)
names = list(hdr)  # the exporter's order, so the re-export can be compared
mixed, expect = [], []
for i, name in enumerate(names):
    t = torch.from_numpy(tensor(hdr, buf, name).copy())
    dt = ["BF16", "F16", "F32"][i % 3]
    if dt == "BF16":
        h = t.to(torch.bfloat16)
        b = h.view(torch.int16).numpy().astype("<i2").tobytes()
    elif dt == "F16":
        h = t.to(torch.float16)
        b = h.view(torch.int16).numpy().astype("<i2").tobytes()
    else:
        h, b = t, t.numpy().astype("<f4").tobytes()
    mixed.append((name, dt, list(t.shape), b))
    expect.append((name, "F32", list(t.shape), h.to(torch.float32).numpy().astype("<f4").tobytes()))
write_st(os.path.join(work, "mixed.safetensors"), mixed)
write_st(os.path.join(work, "mixed_expect.safetensors"), expect)

# tied: no lm_head.weight
full = [(n, "F32", hdr[n]["shape"], tensor(hdr, buf, n).tobytes()) for n in names]
tied = [t for t in full if t[0] != "lm_head.weight"]
write_st(os.path.join(work, "tied.safetensors"), tied)

# bad: q_proj of layer 0 with half its rows; an unknown name; a missing tensor
def replace(name, shape):
    return [(n, d, shape, b[: 4 * int(np.prod(shape))]) if n == name else (n, d, s, b)
            for n, d, s, b in full]
write_st(os.path.join(work, "bad_shape.safetensors"),
         replace("model.layers.0.self_attn.q_proj.weight", [NH * hd // 2, C]))
extra = full + [("model.layers.0.self_attn.q_norm.weight", "F32", [hd], b"\0" * 4 * hd)]
write_st(os.path.join(work, "bad_name.safetensors"), extra)
write_st(os.path.join(work, "bad_missing.safetensors"),
         [t for t in full if t[0] != "model.layers.1.mlp.down_proj.weight"])
with open(os.path.join(work, "want_shapes.txt"), "w") as f:
    f.write(f"{NH * hd // 2} {C} {NH * hd}\n")
for b in bad:
    print("  " + b)
print(f"python: {len(hdr)} tensors checked against the Hugging Face Llama layout and model.h5")
sys.exit(1 if bad else 0)
EOF
"$PY" "$work/st.py" check "$cfg" "$work" || FAIL "python checks"
same() { "$PY" "$work/st.py" same "$1" "$2"; }

# 4. half-precision import; tied heads under pp=2 tp=2
if [ -f "$work/mixed.safetensors" ]; then
    must 2 convert "$cfg" --from "$work/mixed.safetensors" --to "$work/mixed.h5"
    must 1 convert "$cfg" --set layout.tp=1 --from "$work/mixed.h5" --to "$work/mixed_rt.safetensors"
    same "$work/mixed_rt.safetensors" "$work/mixed_expect.safetensors" ||
        FAIL "BF16/F16 import does not equal torch's widening to F32"
    must 4 convert "$cfg" --set layout.pp=2 --set model.tie_embeddings=true \
        --from "$work/tied.safetensors" --to "$work/tied.h5"
    h5ls "$work/tied.h5/params" | grep -q lm_head && FAIL "tied checkpoint has an lm_head"
    must 1 convert "$cfg" --set layout.tp=1 --set model.tie_embeddings=true \
        --from "$work/tied.h5" --to "$work/tied_rt.safetensors"
    same "$work/tied.safetensors" "$work/tied_rt.safetensors" ||
        FAIL "tied round trip (pp=2 tp=2, head copy on the last stage) changed the file"

    # 5. refused files
    read -r half cdim full_rows <"$work/want_shapes.txt"
    q="model.layers.0.self_attn.q_proj.weight"
    refuse shape 2 "tensor '$q' has shape [$half,$cdim] in the file, expected [$full_rows,$cdim]" \
        "$work/x1.h5" convert "$cfg" --from "$work/bad_shape.safetensors" --to "$work/x1.h5"
    refuse name 2 "unknown tensor 'model.layers.0.self_attn.q_norm.weight'" \
        "$work/x2.h5" convert "$cfg" --from "$work/bad_name.safetensors" --to "$work/x2.h5"
    refuse head 2 "tensor 'lm_head.weight' is present but model.tie_embeddings is true" \
        "$work/x3.h5" convert "$cfg" --set model.tie_embeddings=true \
        --from "$work/a.safetensors" --to "$work/x3.h5"
    refuse missing 2 "tensor 'model.layers.1.mlp.down_proj.weight' is missing" \
        "$work/x4.h5" convert "$cfg" --from "$work/bad_missing.safetensors" --to "$work/x4.h5"
    collect
fi
# a checkpoint that does not match the model, and bad arguments
refuse ckpt 2 "model.vocab_size is 509 in the checkpoint but 1024 in this job's config; the weights there need 509" "$work/x5.safetensors" \
    convert "$cfg" --set model.vocab_size=1024 --from "$model" --to "$work/x5.safetensors"
refuse noto 1 "no --to" "" convert "$cfg" --from "$model"
refuse ext 1 "expected a .h5 checkpoint on one side and a .safetensors file or a Hugging Face folder" "$work/x6.h5" \
    convert "$cfg" --from "$model" --to "$work/x6.h5"
collect
refuse nocfg 1 "no config file given" "" convert --from "$model" --to "$work/x7.safetensors"
refuse opt 1 "unknown option '--frm'" "" convert "$cfg" --frm "$model" --to "$work/x7.safetensors"
refuse nofile 1 "cannot open" "$work/x8.h5" \
    convert "$cfg" --set layout.tp=1 --from "$work/none.safetensors" --to "$work/x8.h5"
collect

cases_end "test_convert refusals" 10 || fail=1
[ "$fail" -eq 0 ] && echo "test_convert: all checks passed"
exit "$fail"
