#!/usr/bin/env bash
# tests/house.sh — the house rules of issue "the house", checked on the tree as built:
#   files      no C file of the six floors over 600 lines;
#   functions  no function of model/ or jobs/ over 80 lines (opening "{" line to closing
#              "}" line, both in column 0, as clang-format writes them);
#   globals    the floors' archives hold no writable static storage (.data, .bss,
#              .data.rel.local: file-scope or function-local) but the process set-up's own:
#              comm.c io_component and fatal.c grid_keyval (written once by comm_init) and
#              process.c's lock registry, preemption flag and pre-rendered end record
#              (an atexit hook and a signal handler reach nothing else);
#   floors     an include that runs back up fails the build: `#include "../io/config.h"`
#              planted in a copy of model/ makes the floors' include check fail, naming
#              the file, the line and the floor.
# Usage: house.sh SOURCE_DIR ARCHIVE_DIR CHECK_INCLUDES_CMAKE
set -u
src="$1" lib="$2" check="$3"
pass=0 total=4
verdict() { if [ "$2" = 0 ]; then echo "PASS $1"; pass=$((pass + 1)); else echo "FAIL $1"; fi; }
floors=(mpi model io analysis slurm jobs)

bad=0
while read -r n f; do
    [ "$f" = total ] && continue
    if [ "$n" -gt 600 ]; then echo "  $f: $n lines (over 600)"; bad=1; fi
done < <(cd "$src" && find "${floors[@]}" -name '*.[ch]' -print0 | xargs -0 wc -l)
verdict files $bad

bad=0
for f in $(cd "$src" && find model jobs -name '*.c' | sort); do
    out=$(awk -v f="$f" '
        /^\{$/ && prev ~ /\)$/ { start = NR; name = prev; next }
        /^\}/ && start { if (NR - start + 1 > 80) print "  " f ":" start ": " NR - start + 1 " lines: " name; start = 0 }
        NF { prev = $0 }' "$src/$f")
    [ -n "$out" ] && { echo "$out"; bad=1; }
done
verdict functions $bad

bad=0 seen=0
allowed=" comm.c.o:io_component fatal.c.o:grid_keyval process.c.o:held_locks process.c.o:n_held_locks process.c.o:preempt_signal process.c.o:term_record "
for fl in "${floors[@]}"; do
    a="$lib/liblethe_$fl.a"
    [ -f "$a" ] || { echo "  $a: missing"; bad=1; continue; }
    seen=$((seen + 1))
    while read -r obj sym; do
        case "$allowed" in *" $obj:$sym "*) ;; *) echo "  $fl: $obj $sym: writable static storage"; bad=1 ;; esac
    done < <(objdump -t "$a" | awk '/^[^ ]+\.o:/ { o = $1; sub(/:$/, "", o) }
        { for (i = 1; i <= NF; i++) if ($i ~ /^\.(data|bss)/ && $i !~ /rel\.ro/ && $NF != $i) print o, $NF }' | sort -u)
done
[ "$seen" = 6 ] || bad=1
verdict globals $bad

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/mpi" "$src/model" "$src/io" "$tmp/"
sed -i '0,/^#include/s//#include "..\/io\/config.h"\n#include/' "$tmp/model/transformer.c"
line=$(grep -n '^#include "../io/config.h"' "$tmp/model/transformer.c" | cut -d: -f1)
cmake -DROOT="$tmp" -DFLOOR=model -DALLOWED=mpi,model -DFORBID=hdf5.h -DSTAMP="$tmp/stamp" \
    -P "$check" >"$tmp/out" 2>&1
rc=$?
bad=0
[ "$rc" != 0 ] || { echo "  the planted include passed the check"; bad=1; }
grep -q "lethe: model/transformer.c:$line: #include \"../io/config.h\" reaches io/" "$tmp/out" ||
    { sed 's/^/  /' "$tmp/out"; bad=1; }
[ ! -e "$tmp/stamp" ] || bad=1
# and the tree as it is passes the same check
cmake -DROOT="$src" -DFLOOR=model -DALLOWED=mpi,model -DFORBID=hdf5.h -DSTAMP="$tmp/stamp2" \
    -P "$check" >"$tmp/out2" 2>&1 || { sed 's/^/  /' "$tmp/out2"; bad=1; }
verdict floors $bad

echo "house: $pass passed of $total"
[ "$pass" = "$total" ]
