# tests/fault_lib.sh — sourced by the fault tests: a scratch folder (removed at exit),
# the small model they train, and the failure flag. Needs MPIRUN, LETHE_BIN and
# LETHE_SOURCE_DIR (set by ctest).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg="$LETHE_SOURCE_DIR/jobs/configs/demo.json"
export OMPI_MCA_orte_execute_quiet=1
# the demo model, smaller: these tests are about processes and files, not numerics
small=(--set model.dim=64 --set model.mlp_dim=172 --set model.n_layers=2
    --set train.batch_size=8 --set train.seq_len=32 --set optim.warmup_steps=2
    --set train.log_every=1000)
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}
# train_n NRANKS [--set ...]: `lethe train` of the small model on NRANKS ranks
train_n() {
    local n=$1
    shift
    "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" train "$cfg" "${small[@]}" "$@"
}
