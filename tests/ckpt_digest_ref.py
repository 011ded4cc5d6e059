#!/usr/bin/env python3
"""tests/ckpt_digest_ref.py: an independent reader of lethe checkpoints' tensor digests
(h5py and numpy, written from the definitions in io/checkpoint.h, not from the C code).

    ckpt_digest_ref.py check FILE         every tensor of /params, /adam_m, /adam_v and
                                          /wagle_mask against its stored `digest`, with the
                                          file's format_version (1 or 2); one line, exit 1
                                          on any mismatch
    ckpt_digest_ref.py to-v1 FILE         rewrite FILE in place as format 1: every digest
                                          redone with format 1's term, format_version = 1
    ckpt_digest_ref.py flip FILE DATASET  flip the lowest bit of element 0 of DATASET,
                                          digest kept (a corrupt file)
    ckpt_digest_ref.py set-version FILE N format_version = N, nothing else changed
    ckpt_digest_ref.py relayout FILE      rewrite the float32 tensors in other storage,
                                          values and attributes kept, in turn: chunked and
                                          gzip-compressed; contiguous big-endian; as they
                                          were (what a load cannot map, mixed with what
                                          it can)
    ckpt_digest_ref.py past-end FILE DATASET  point DATASET's contiguous storage 8 bytes
                                          before the end of the file (its address in
                                          the layout message rewritten; a corrupt file)
    ckpt_digest_ref.py userblock FILE     rewrite FILE with a 512-byte user block in front
                                          of the HDF5 image, everything else copied (every
                                          address in the file moves by 512)

Digest of a tensor: the sum mod 2^64 over its elements (flat index n, float32 bits b) of
  format 2: (b ^ A(n)) * B(n), A = m*0x9E3779B1 + 0x7F4A7C15, B = m*0x85EBCA76 + 0xC2B2AE3D
            (32-bit arithmetic, m = n mod 2^32), the product in 64 bits;
  format 1: mix(mix(n) ^ b), mix the splitmix64 finaliser.
A /wagle_mask tensor (uint8 0/1) is digested as the float32 values its bytes encode."""
import os
import struct
import sys

import h5py
import numpy as np

GROUPS = ("params", "adam_m", "adam_v", "wagle_mask")
U32, U64 = np.uint32, np.uint64


def mix(x):
    x = x + U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> U64(27))) * U64(0x94D049BB133111EB)
    return x ^ (x >> U64(31))


def digest(values, version):
    bits = np.ascontiguousarray(values, dtype="<f4").reshape(-1).view("<u4").astype(U32)
    n = np.arange(bits.size, dtype=U64)
    with np.errstate(over="ignore"):
        if version == 1:
            terms = mix(mix(n) ^ bits.astype(U64))
        else:
            m = (n & U64(0xFFFFFFFF)).astype(U32)
            a = m * U32(0x9E3779B1) + U32(0x7F4A7C15)
            b = m * U32(0x85EBCA76) + U32(0xC2B2AE3D)
            terms = (bits ^ a).astype(U64) * b.astype(U64)
        return int(np.sum(terms, dtype=U64))


def tensors(f):
    for g in GROUPS:
        if g in f:
            for name, ds in f[g].items():
                yield g, name, ds


def values(ds):
    x = ds[()]
    return x.astype(np.float32) if x.dtype == np.uint8 else x


def check(path):
    with h5py.File(path, "r") as f:
        version = int(f.attrs["format_version"])
        bad, count = [], 0
        for g, name, ds in tensors(f):
            count += 1
            want, got = int(ds.attrs["digest"]), digest(values(ds), version)
            if want != got:
                bad.append(f"/{g}/{name}: stored {want:016x}, computed {got:016x}")
    if bad or count == 0:
        print(f"FAIL digests of {path} (format {version}, {count} tensors): " + "; ".join(bad[:3]))
        return 1
    print(f"PASS digests of {path}: format {version}, {count} tensors")
    return 0


def to_v1(path):
    with h5py.File(path, "r+") as f:
        for _, _, ds in tensors(f):
            ds.attrs.modify("digest", np.uint64(digest(values(ds), 1)))
        f.attrs.modify("format_version", np.int32(1))
    return 0


def flip(path, dataset):
    with h5py.File(path, "r+") as f:
        ds = f[dataset]
        x = ds[()]
        flat = x.reshape(-1).view(np.uint32 if x.dtype == np.float32 else np.uint8)
        flat[0] ^= 1
        ds[...] = x
    return 0


def set_version(path, v):
    with h5py.File(path, "r+") as f:
        f.attrs.modify("format_version", np.int32(v))
    return 0


def relayout(path):
    with h5py.File(path, "r+") as f:
        k = 0
        for g in GROUPS[:3]:
            for name in sorted(f[g]):
                ds, k = f[g][name], k + 1
                if k % 3 == 0:
                    continue
                x = ds[()]
                attrs = [(a, ds.attrs[a], ds.attrs.get_id(a).dtype) for a in ds.attrs]
                del f[g][name]
                if k % 3 == 1:
                    new = f[g].create_dataset(name, data=x, chunks=True, compression="gzip")
                else:
                    new = f[g].create_dataset(name, data=x.astype(">f4"), dtype=">f4")
                for a, v, t in attrs:
                    new.attrs.create(a, v, dtype=t)
    return 0


def past_end(path, dataset):
    with h5py.File(path, "r") as f:
        addr = f[dataset].id.get_offset()
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        raw = bytearray(fh.read())
    at = [i for i in range(len(raw) - 7) if raw[i:i + 8] == struct.pack("<Q", addr)]
    if len(at) != 1:
        print(f"past-end: address {addr} of {dataset} found {len(at)} times", file=sys.stderr)
        return 1
    raw[at[0]:at[0] + 8] = struct.pack("<Q", size - 8)
    with open(path, "wb") as fh:
        fh.write(raw)
    return 0


def userblock(path):
    tmp = path + ".ub"
    with h5py.File(path, "r") as src, h5py.File(tmp, "w", userblock_size=512) as dst:
        for a in src.attrs:
            dst.attrs.create(a, src.attrs[a], dtype=src.attrs.get_id(a).dtype)
        for name in src:
            src.copy(src[name], dst, name=name)
    os.replace(tmp, path)
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        return check(argv[2])
    if len(argv) == 3 and argv[1] == "to-v1":
        return to_v1(argv[2])
    if len(argv) == 4 and argv[1] == "flip":
        return flip(argv[2], argv[3])
    if len(argv) == 4 and argv[1] == "past-end":
        return past_end(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "userblock":
        return userblock(argv[2])
    if len(argv) == 3 and argv[1] == "relayout":
        return relayout(argv[2])
    if len(argv) == 4 and argv[1] == "set-version":
        return set_version(argv[2], int(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
