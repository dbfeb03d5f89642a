"""The Python binding (python/collm) against the collm command and against
independent numpy references. Run by tests/cli/test_python.sh, which trains
the tiny checkpoint and writes the command's outputs:
    test_binding.py DIR     (DIR holds data/, ckpt.gguf, items.faiss, eval.json, rec.json, version.txt)
Prints "N passed, N failed"."""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import collm  # noqa: E402

T = sys.argv[1]
passed = failed = 0


def check(what, ok):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what, file=sys.stderr)


def raises(what, fn, pattern):
    try:
        fn()
    except collm.Error as e:
        check("%s: message has %r (%s)" % (what, pattern, e), pattern in str(e) and "\n" not in str(e))
        return
    except Exception as e:  # a Python error instead of collm.Error
        check("%s: collm.Error expected, got %r" % (what, e), False)
        return
    check("%s: no error raised" % what, False)


def ref_auc(s, y):
    # Mann-Whitney with tied ranks averaged (an independent formula of sklearn's AUC)
    s, y = np.asarray(s, np.float64), np.asarray(y) != 0
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return (ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def ref_uauc(u, s, y):
    vals = []
    for user in np.unique(u):
        m = u == user
        if m.sum() > 1 and 0 < y[m].sum() < m.sum():
            vals.append(ref_auc(s[m], y[m]))
    return float(np.mean(vals)) if vals else math.nan


def close(a, b, tol):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return b is None or math.isnan(b)
    return abs(a - b) <= tol


check("version equals `collm --version` (%s)" % collm.version(),
      "collm " + collm.version() == open(os.path.join(T, "version.txt")).read().strip())
check("library from COLLM_LIB", collm.library_path == os.environ.get("COLLM_LIB", collm.library_path))

ds = collm.Dataset(os.path.join(T, "data"))
m = collm.Model(os.path.join(T, "ckpt.gguf"), threads=1)
check("checkpoint: stage 2 with slots", m.stage == 2 and m.has_slots)

# score_split / evaluate equal `collm eval --split valid --json -t 1`
ev = json.load(open(os.path.join(T, "eval.json")))
valid = ds.split("valid")
scores = m.score_split(ds, valid)
check("score_split: float32, one per valid row", scores.dtype == np.float32 and scores.shape == (valid.n,) and valid.n > 0)
rep = m.evaluate(ds, "valid")
for k in ("auc", "uauc", "auc_warm", "auc_cold"):
    check("evaluate %s = collm eval's (%r vs %r)" % (k, rep[k], ev[k]), close(rep[k], ev[k], 1e-12))
for k in ("n", "n_pos", "n_users", "n_users_uauc", "n_warm", "n_cold"):
    check("evaluate %s = collm eval's" % k, rep[k] == ev[k])
# metrics against independent references
a = collm.auc(scores, valid.labels)
check("auc(scores) = evaluate's auc", a == rep["auc"])
check("auc = Mann-Whitney reference (%r vs %r)" % (a, ref_auc(scores, valid.labels)),
      close(a, ref_auc(scores, valid.labels), 1e-12))
ua = collm.uauc(valid.users, scores, valid.labels)
check("uauc = per-user reference (%r vs %r)" % (ua, ref_uauc(valid.users, scores, valid.labels)),
      close(ua, ref_uauc(valid.users, scores, valid.labels), 1e-12))
check("auc of ties is 1/2", collm.auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5)
check("auc of one class is NaN", math.isnan(collm.auc([0.1, 0.2], [1, 1])))
check("auc of a hand case: 3 of 4 pairs", collm.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75)

# recommend equals `collm recommend --user 7 --k 5 --candidates 30 --json -t 1`
rc = json.load(open(os.path.join(T, "rec.json")))
ix = collm.Index(os.path.join(T, "items.faiss"))
r = m.recommend(ds, ix, user=7, k=5, candidates=30)
want_items = [i["item"] for i in rc["items"]]
check("recommend: same items as the command (%s vs %s)" % (list(r["items"]), want_items), list(r["items"]) == want_items)
check("recommend: llm scores within 1e-6 of the command's",
      len(r["llm_scores"]) == 5 and max(abs(x - i["llm_score"]) for x, i in zip(r["llm_scores"], rc["items"])) <= 1e-6)
check("recommend: retrieval scores within 1e-6",
      max(abs(x - i["retrieval_score"]) for x, i in zip(r["retrieval_scores"], rc["items"])) <= 1e-6)
check("recommend: same prefix and history length", r["prefix_tokens"] == rc["prefix_tokens"] and
      r["history_length"] == rc["history_length"] and r["cold_start_query"] == rc["cold_start_query"])
# score pairs: the recommended items for user 7 score what recommend said; another user's pairs
s = m.score(ds, [7] * 5, r["items"])
check("score(pairs) = recommend's llm scores (max diff %.2g)" % float(np.max(np.abs(s - r["llm_scores"]))),
      s.dtype == np.float32 and float(np.max(np.abs(s - r["llm_scores"]))) <= 1e-4)
check("score(fused=True) of a checkpoint without a fitted fusion is the logit",
      np.array_equal(m.score(ds, [7] * 5, r["items"], fused=True), s))
# fused=True is eval's score: for user 7's latest history, the rows of a split file holding that
# history score (score_split, collm eval's code) what score(fused=True) gives the pairs
mf = collm.Model(os.path.join(T, "fused.gguf"), threads=1)
his7 = ",".join(str(int(x)) for x in ds.history(7))
with open(os.path.join(T, "user7.tsv"), "w") as f:
    f.write("uid\tiid\tlabel\ttimestamp\this\tnot_cold\n")
    for it in r["items"]:
        f.write("7\t%d\t1\t0\t%s\t1\n" % (int(it), his7))
want = mf.score_split(ds, os.path.join(T, "user7.tsv"))
got = mf.score(ds, [7] * 5, r["items"], fused=True)
plain = mf.score(ds, [7] * 5, r["items"])
check("score(fused=True) = score_split of the same rows (max diff %.2g)" % float(np.max(np.abs(got - want))),
      float(np.max(np.abs(got - want))) <= 1e-4 and float(np.min(np.abs(got - plain))) > 1e-4)
mf.close()
mixed = m.score(ds, [7, 3, 7, 3], [r["items"][0], 5, r["items"][1], 6])
alone = m.score(ds, [3, 3], [5, 6], share_prefix=False)
check("score: pairs of several users, each in place",
      abs(mixed[0] - s[0]) <= 1e-4 and abs(mixed[2] - s[1]) <= 1e-4 and float(np.max(np.abs(mixed[[1, 3]] - alone))) <= 1e-4)
check("recommend: probabilities = sigmoid(llm scores)",
      float(np.max(np.abs(r["probabilities"] - 1 / (1 + np.exp(-r["llm_scores"].astype(np.float64)))))) <= 1e-6)
e = m.recommend(ds, ix, user=7, k=5, candidates=30, exclude=r["items"][:2])
check("recommend: exclude leaves those items out", len(e["items"]) == 5 and not set(e["items"].tolist()) & set(r["items"][:2].tolist()))
rated = set(int(i) for s in ("train", "valid") for u, i in zip(ds.split(s).users, ds.split(s).items) if u == 7)
x = m.recommend(ds, ix, user=7, k=10, candidates=30, exclude_rated=True)
check("recommend: exclude_rated leaves user 7's %d rated items out" % len(rated),
      len(x["items"]) == 10 and not set(x["items"].tolist()) & rated)
h = m.recommend(ds, ix, history=[3, 5, 9], k=3, candidates=20)
check("recommend by history: cold start, history left out", h["cold_start_query"] and len(h["items"]) == 3 and
      not set(h["items"].tolist()) & {3, 5, 9})
check("history(7) starts with the sentinel", ds.history(7)[0] == 0)

# errors are collm.Error with the library's message
raises("missing checkpoint", lambda: collm.Model(os.path.join(T, "nosuch.gguf")), "nosuch.gguf")
raises("missing dataset", lambda: collm.Dataset(os.path.join(T, "nodata")), "nodata")
raises("unknown split", lambda: ds.split("nosuch"), "nosuch")
raises("unknown user", lambda: m.recommend(ds, ix, user=5000, k=3, candidates=10), "5000")
raises("item outside the tables", lambda: m.score(ds, [7], [99999]), "99999")
raises("k > candidates", lambda: m.recommend(ds, ix, user=7, k=50, candidates=10), "k")
with collm.Dataset(os.path.join(T, "small")) as other:
    raises("a dataset with fewer items than the checkpoint", lambda: m.recommend(other, ix, user=1, k=3, candidates=10),
           "not the dataset it was trained on")
raises("missing index", lambda: collm.Index(os.path.join(T, "nosuch.faiss")), "nosuch.faiss")
# an index of another model is refused as `collm recommend` refuses it (the old binding returned its candidates)
with collm.Index(os.path.join(T, "seed9.faiss")) as ix9:
    raises("an index of another model of the same items", lambda: m.recommend(ds, ix9, user=7, k=3, candidates=10),
           "other item vectors")
with collm.Index(os.path.join(T, "small.faiss")) as ix_small:
    raises("an index of another item count", lambda: m.recommend(ds, ix_small, user=7, k=3, candidates=10),
           "holds 30 vectors but")
with collm.Dataset(os.path.join(T, "data")) as d2:
    check("Dataset as a context manager; titles decode", isinstance(d2.title(1), str) and d2.n_items == ds.n_items)


# bad numbers are Python errors before C sees them: ctypes keeps an int's low 32 bits, and numpy's
# cast cuts a float or a wide id to another id (k = -2^32 + 50 once sized the result array 1 and
# let C write 50 results into it)
def py_raises(what, fn, kind):
    try:
        fn()
        check(what + ": raised nothing", False)
    except kind:
        check(what, True)
    except Exception as e:
        check("%s: %s expected, got %r" % (what, kind.__name__, e), False)


py_raises("recommend k = -2^32 + 50", lambda: m.recommend(ds, ix, user=7, k=-(2 ** 32) + 50, candidates=100), ValueError)
py_raises("recommend candidates = 2^32 + 10", lambda: m.recommend(ds, ix, user=7, k=5, candidates=2 ** 32 + 10),
          ValueError)
py_raises("recommend user = 2^32 + 7", lambda: m.recommend(ds, ix, user=2 ** 32 + 7, k=3, candidates=10), ValueError)
py_raises("recommend k = 2.5", lambda: m.recommend(ds, ix, user=7, k=2.5, candidates=10), TypeError)
py_raises("history(2^32 + 7)", lambda: ds.history(2 ** 32 + 7), ValueError)
py_raises("score of user 2^32 + 7", lambda: m.score(ds, np.array([2 ** 32 + 7]), [3]), ValueError)
py_raises("score of user 7.9 and item 12.5", lambda: m.score(ds, [7.9], [12.5]), TypeError)
py_raises("score_split batch = 2^32 + 4", lambda: m.score_split(ds, "valid", batch=2 ** 32 + 4), ValueError)
check("whole floats still count as ids (score [7.0], [3.0] = score [7], [3])",
      m.score(ds, [7.0], [3.0])[0] == m.score(ds, [7], [3])[0])

# two threads on one Model wait for each other: every answer equals the one-at-a-time one
import threading  # noqa: E402

pairs_u, pairs_i = np.array([7] * 6 + [11] * 6), np.arange(1, 13)
alone = m.score(ds, pairs_u, pairs_i)
alone_split = {b: m.score_split(ds, "valid", batch=b) for b in (4, 64)}
bad = []


def worker(t):
    for _ in range(5):
        if t % 2:
            if not np.array_equal(m.score(ds, pairs_u, pairs_i), alone):
                bad.append("score")
        else:
            b = 4 if t % 4 else 64
            if not np.array_equal(m.score_split(ds, "valid", batch=b), alone_split[b]):
                bad.append("score_split %d" % b)


threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check("4 threads on one Model: every answer as alone (%s)" % (bad[:3] or "all equal"), not bad)

# a closed object raises collm.Error, never hands NULL to C
m.close()
ix.close()
ds.close()
raises("Model.stage after close", lambda: m.stage, "closed")
raises("Model.score after close", lambda: m.score(ds, [7], [3]), "closed")
raises("Dataset.split after close", lambda: ds.split("valid"), "closed")
raises("Dataset.n_items after close", lambda: ds.n_items, "closed")
with collm.Model(os.path.join(T, "ckpt.gguf")) as m2:
    pass
raises("Model used after its with block", lambda: m2.has_slots, "closed")

# importing the binding with a kernel setting outside its list raises collm.Error naming it
import subprocess  # noqa: E402

env = dict(os.environ, COLLM_GEMM="fast", PYTHONPATH=os.path.dirname(os.path.dirname(collm.__file__)))
r = subprocess.run([sys.executable, "-c", "import collm"], env=env, capture_output=True, text=True)
check("import with COLLM_GEMM=fast fails (exit %d)" % r.returncode, r.returncode != 0)
check("import with COLLM_GEMM=fast names it: %r" % r.stderr[-300:],
      "collm.Error: COLLM_GEMM='fast' is not one of: auto, blas, own" in r.stderr)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
