# tests/bench_prepare_lib.sh — sourced by tofu_prepare.sh and muse_prepare.sh: the counted
# cases of `lethe prepare --BENCH DIR` (a published benchmark's folder).
#
#   verdict NAME BAD           the case's line, PASS or FAIL; counts pass and cases
#   prep TAG N args...         lethe prepare on N ranks; output in $work/TAG.{out,err}
#   good TAG N DIR [args...]   a run that must succeed: no stderr, the summary line, only
#                              out.h5 left in $work/TAG; then the script's own
#                              bench_check TAG DIR [args...] (0: agrees)
#   refuse TAG N WANT DIR [args...]
#                              a run that must be refused: exit 2, exactly one stderr line
#                              "lethe: ...WANT...", the existing $keep copied to the output
#                              left byte for byte, nothing else left in its folder
# The script sets work, BENCH (tofu | muse), T, keep (before refuse) and bench_check.
# shellcheck shell=bash
pass=0 cases=0
verdict() {
    cases=$((cases + 1))
    if [ "$2" = 0 ]; then
        pass=$((pass + 1))
        echo "PASS $1"
    else
        echo "FAIL $1"
    fi
}
prep() {
    local tag="$1" n="$2"
    shift 2
    lethe_mpirun "$MPIRUN" --oversubscribe -n "$n" "$LETHE_BIN" prepare "$@" \
        >"$work/$tag.out" 2>"$work/$tag.err"
}
good() {
    local tag="$1" n="$2" dir="$3" bad=0
    shift 3
    mkdir -p "$work/$tag"
    if ! prep "$tag" "$n" --"$BENCH" "$dir" --output "$work/$tag/out.h5" --seq-len "$T" "$@"; then
        echo "$tag: exit $?: $(cat "$work/$tag.err")"
        verdict "$tag" 1
        return
    fi
    [ -s "$work/$tag.err" ] && echo "$tag: stderr: $(cat "$work/$tag.err")" && bad=1
    grep -q "wrote '$work/$tag/out.h5'" "$work/$tag.out" || { echo "$tag: no summary line" && bad=1; }
    [ "$(ls -A "$work/$tag")" = out.h5 ] || { echo "$tag: left $(ls -A "$work/$tag")" && bad=1; }
    bench_check "$tag" "$dir" "$@" || bad=1
    verdict "$tag" $bad
}
refuse() {
    local tag="$1" n="$2" want="$3" dir="$4" bad=0 out="$work/$1/out.h5"
    shift 4
    mkdir -p "$work/$tag"
    cp "$keep" "$out"
    prep "$tag" "$n" --output "$out" --"$BENCH" "$dir" "$@"
    local rc=$? first
    first="$(head -n 1 "$work/$tag.err")"
    [ $rc -eq 2 ] || { echo "$tag: exit $rc, expected 2" && bad=1; }
    [ "$(wc -l <"$work/$tag.err")" -eq 1 ] || { echo "$tag: stderr: $(cat "$work/$tag.err")" && bad=1; }
    [[ "$first" == "lethe: "*"$want"* ]] || { echo "$tag: stderr '$first' lacks '$want'" && bad=1; }
    cmp -s "$out" "$keep" || { echo "$tag: the existing output changed" && bad=1; }
    [ "$(ls -A "$work/$tag")" = out.h5 ] || { echo "$tag: left $(ls -A "$work/$tag")" && bad=1; }
    verdict "refuse $tag" $bad
}
