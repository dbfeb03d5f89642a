#!/usr/bin/env python3
"""Checks that #include dependencies run one way through the layers.

Each folder of src/ is a layer with a rank; a file may include headers of its
own folder or of a lower layer, never of a higher one or of a sibling of the
same rank (data and llm know nothing of each other, nor do cf and retrieval).
Public headers (include/collm/*.h) belong to the layer named in PUBLIC below.
The CLI (top) may include public headers only: no library internals.
Exits 1 and names every offending line."""
import os, re, sys

RANK = {"core": 0, "data": 1, "llm": 1, "cf": 2, "retrieval": 2,
        "recommender": 3, "recommend": 4, "serve": 5, "cli": 6}
PUBLIC = {"error": "core", "threadpool": "core", "fileio": "core", "version": "core", "dist": "core",
          "dataset": "data", "prepare": "data", "metrics": "data",
          "gguf": "llm", "model": "llm", "tokenizer": "llm", "lora": "llm",
          "cf": "cf", "retrieval": "retrieval",
          "collm": "recommender", "prompt": "recommender",
          "recommend": "recommend", "serve": "serve"}
INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"')

def header_layer(inc, here):
    """(layer, private?) of an include as written in a file of layer `here`."""
    if inc.startswith("collm/"):
        name = os.path.splitext(inc[len("collm/"):])[0]
        if name not in PUBLIC:
            return None, False
        return PUBLIC[name], False
    parts = inc.split("/")
    if len(parts) == 2 and parts[0] in RANK:
        return parts[0], True
    if len(parts) == 1:
        return here, True  # a header beside the file
    return None, True

def allowed(src, dst):
    if src == dst:
        return True
    return RANK[dst] < RANK[src]

def main(root):
    errors = []
    files = []
    for layer in RANK:
        d = os.path.join(root, "src", layer)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            if f.endswith((".c", ".h", ".cpp")):
                files.append((os.path.join(d, f), layer))
    for d in sorted(os.listdir(os.path.join(root, "src"))):
        if os.path.isdir(os.path.join(root, "src", d)) and d not in RANK:
            errors.append(f"src/{d}: folder is not a known layer (add it to RANK in scripts/check_deps.py)")
    pub = os.path.join(root, "include", "collm")
    for f in sorted(os.listdir(pub)):
        name = os.path.splitext(f)[0]
        if name not in PUBLIC:
            errors.append(f"include/collm/{f}: public header without a layer (add it to PUBLIC)")
            continue
        files.append((os.path.join(pub, f), PUBLIC[name]))
    for path, layer in files:
        rel = os.path.relpath(path, root)
        is_public = rel.startswith("include/")
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                m = INC.match(line)
                if not m:
                    continue
                inc = m.group(1)
                dst, private = header_layer(inc, layer)
                where = f"{rel}:{n}: #include \"{inc}\""
                if dst is None:
                    errors.append(f"{where}: unknown header")
                elif is_public and private:
                    errors.append(f"{where}: a public header includes a private one")
                elif layer == "cli" and private and dst != "cli":
                    errors.append(f"{where}: the CLI may use public headers only")
                elif not allowed(layer, dst):
                    errors.append(f"{where}: layer '{layer}' may not depend on '{dst}'")
    for e in errors:
        print("deps: " + e, file=sys.stderr)
    print(f"deps: {len(files)} files checked, {len(errors)} upward or private includes")
    return 1 if errors else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")))
