#!/usr/bin/python3
"""gguf_diff.py A.gguf B.gguf [--prefix P] [--atol X] [--rtol X] [--ignore NAME]...

Compares the float tensors (F32, F16) two GGUF files share, after checking
that both hold the same tensor names and shapes. Prints the largest
absolute difference and exits 1 when any element differs by more than
atol + rtol * |b| (numpy.allclose's rule). An independent reader of the
format (not collm's), used by tests/cli/test_mpi.sh. --ignore NAME (any
number of times) leaves that tensor out of the values compared (names and
shapes are still checked)."""
import struct
import sys

import numpy as np

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
DTYPE = {0: np.float32, 1: np.float16}


def read(path):
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(SCALAR[t])

    if data[:4] != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    pos = 4
    take("I")  # version
    n_tensors, n_kv = take("Q"), take("Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        infos.append((name, ne, take("I"), take("Q")))
    align = kv.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    out = {}
    for name, ne, t, off in infos:
        n = int(np.prod(ne)) if ne else 1
        if t in DTYPE:
            out[name] = (tuple(ne), np.frombuffer(data, DTYPE[t], n, base + off).astype(np.float64))
        else:
            out[name] = (tuple(ne), None)
    return out


def main():
    args = sys.argv[1:]
    opt = {"--prefix": "", "--atol": "1e-5", "--rtol": "1e-4"}
    files, ignore = [], set()
    while args:
        a = args.pop(0)
        if a == "--ignore":
            ignore.add(args.pop(0))
        elif a in opt:
            opt[a] = args.pop(0)
        else:
            files.append(a)
    a, b = read(files[0]), read(files[1])
    names = sorted(n for n in a if n.startswith(opt["--prefix"]))
    if names != sorted(n for n in b if n.startswith(opt["--prefix"])):
        print("tensor names differ")
        return 1
    atol, rtol = float(opt["--atol"]), float(opt["--rtol"])
    worst, worst_name, bad, compared = 0.0, "", [], 0
    for n in names:
        (sa, va), (sb, vb) = a[n], b[n]
        if sa != sb:
            print(f"{n}: shape {sa} vs {sb}")
            return 1
        if va is None or vb is None or n in ignore:
            continue
        compared += va.size
        d = np.abs(va - vb)
        if d.size and d.max() > worst:
            worst, worst_name = float(d.max()), n
        if not np.all(d <= atol + rtol * np.abs(vb)):
            bad.append(n)
    print(f"{len(names)} tensors, {compared} values; max |a-b| = {worst:.3g} ({worst_name}); "
          f"{len(bad)} beyond atol {atol:g} + rtol {rtol:g}{': ' + ', '.join(bad[:5]) if bad else ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
