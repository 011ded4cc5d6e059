#!/bin/sh
# Runs the h5py example of io/DATASETS.md as written, then reads its file with the loader.
# usage: h5py_example.sh <python> <DATASETS.md> <test_loader> <mpirun> <work dir>
# Exit 77 (ctest SKIP_RETURN_CODE) when the python has no h5py (Debian: python3-h5py).
set -u
py=$1 md=$2 exe=$3 mpirun=$4 work=$5/h5py-example
if ! "$py" -c "import h5py" >/dev/null 2>&1; then
    echo "skipped: h5py is not importable by $py (Debian: apt-get install python3-h5py)"
    exit 77
fi
mkdir -p "$work" && cd "$work" || exit 1
rm -f mydata.h5
sed -n '/^```python$/,/^```$/p' "$md" | sed '1d;$d' >example.py
"$py" example.py || exit 1
exec "$mpirun" --oversubscribe -n 2 "$exe" h5py mydata.h5
