#!/usr/bin/python3
"""gguf_edit.py IN.gguf OUT.gguf [EDIT ...]

Writes a copy of a GGUF file with keys and tensors changed, to make the
malformed files the loaders must refuse. An independent writer of the
format (not collm's). Edits, applied in order:
  --del PREFIX          drop every key whose name starts with PREFIX
  --drop-tensors PREFIX drop every tensor whose name starts with PREFIX
  --set KEY TYPE VALUE  set (or replace) a key; TYPE is u32, i32, f32 or str;
                        f32 takes nan and inf
  --take PREFIX FILE    replace the keys whose names start with PREFIX by
                        those of another GGUF (e.g. its tokenizer)
  --poke TENSOR I VALUE set element I of an F32 tensor to VALUE (nan, inf)
Tensor data is copied byte for byte: the kept tensors' offsets stay valid."""
import struct
import sys

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
SET_TYPES = {"u32": (4, "I", int), "i32": (5, "i", int), "f32": (6, "f", float)}


def read(data):
    """Returns (version, [(key, raw value bytes with type)], [(name, raw info bytes)], data offset, alignment)."""
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)[0]
        pos += struct.calcsize("<" + fmt)
        return v

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def skip_value(t):
        if t == 8:
            string()
        elif t == 9:
            et, n = take("I"), take("Q")
            for _ in range(n):
                skip_value(et)
        else:
            take(SCALAR[t])

    if data[:4] != b"GGUF":
        sys.exit("not a GGUF file")
    pos = 4
    version = take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    kvs, align = [], 32
    for _ in range(n_kv):
        key = string()
        start = pos
        t = take("I")
        skip_value(t)
        if key == "general.alignment":
            align = struct.unpack_from("<I", data, start + 4)[0]
        kvs.append((key, data[start:pos]))
    infos = []
    for _ in range(n_tensors):
        start = pos
        name = string()
        nd = take("I")
        pos += 8 * nd + 4 + 8  # ne, type, offset
        infos.append((name, data[start:pos]))
    base = (pos + align - 1) // align * align
    return version, kvs, infos, base, align


def encode_str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    src, dst, edits = args[0], args[1], args[2:]
    data = open(src, "rb").read()
    version, kvs, infos, base, align = read(data)
    pokes = []
    while edits:
        op = edits.pop(0)
        if op == "--del":
            p = edits.pop(0)
            kvs = [kv for kv in kvs if not kv[0].startswith(p)]
        elif op == "--drop-tensors":
            p = edits.pop(0)
            infos = [t for t in infos if not t[0].startswith(p)]
        elif op == "--set":
            key, typ, val = edits.pop(0), edits.pop(0), edits.pop(0)
            if typ == "str":
                raw = struct.pack("<I", 8) + encode_str(val)
            else:
                code, fmt, conv = SET_TYPES[typ]
                raw = struct.pack("<I" + fmt, code, conv(val))
            kvs = [kv for kv in kvs if kv[0] != key] + [(key, raw)]
        elif op == "--poke":
            name, i, val = edits.pop(0), int(edits.pop(0)), float(edits.pop(0))
            pokes.append((name, i, val))
        elif op == "--take":
            p, other = edits.pop(0), edits.pop(0)
            theirs = [kv for kv in read(open(other, "rb").read())[1] if kv[0].startswith(p)]
            kvs = [kv for kv in kvs if not kv[0].startswith(p)] + theirs
        else:
            sys.exit(f"unknown edit {op}")
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(infos), len(kvs)))
    for key, raw in kvs:
        out += encode_str(key) + raw
    for _, raw in infos:
        out += raw
    out += b"\0" * ((-len(out)) % align)
    start = len(out)
    out += data[base:]
    for name, i, val in pokes:
        raw = [r for n, r in infos if n == name]
        if not raw:
            sys.exit(f"--poke: no tensor {name}")
        typ, offset = struct.unpack_from("<IQ", raw[0], len(raw[0]) - 12)
        nd = struct.unpack_from("<I", raw[0], 8 + len(name.encode("utf-8")))[0]
        n = 1
        for d in range(nd):
            n *= struct.unpack_from("<Q", raw[0], 12 + len(name.encode("utf-8")) + 8 * d)[0]
        if typ != 0 or not 0 <= i < n:
            sys.exit(f"--poke: {name} is not F32 or has no element {i}")
        struct.pack_into("<f", out, start + offset + 4 * i, val)
    open(dst, "wb").write(out)


if __name__ == "__main__":
    main()
