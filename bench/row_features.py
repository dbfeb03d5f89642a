"""Four pairs of per-row features ctx does not have, each tried as one more
part of a recipe checkpoint's fused score (issue 9; docs/encoders.md,
"Context features"). Every feature is computed from what a served row
carries (its target, its history of liked items) and train's statistics:

  popularity   log(1 + train rows of i) - its mean over R (R: the last 30
               liked items of the history), and its absolute value;
  like rate    i's smoothed train like rate - its mean over R, and that mean;
  novelty      the share of R that train never saw (new releases liked),
               and that share when i itself is new to train, else 0;
  title        the largest Jaccard overlap of i's title words (no year, no
               article) with a history title's (sequels, franchises), and
               whether it reaches 0.5.

Per pair: a logistic regression of the label on the standardised pair,
fitted on valid_small; its score added to the recipe's parts and every
weight refitted by fit-score's ascent on valid_small's AUC
(bench/fusion_parts.py); held out: valid's rows outside valid_small. Reads
the part files bench/fusion_objective.sh wrote in WORK/fusion-objective.

  usage: WORK=build/ml1m-work bench/fusion_objective.sh   (first)
         /usr/bin/python3 bench/row_features.py WORK [DATA]   (DATA: ML-1M in ../shared or $COLLM_SHARED)
"""
import collections
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auc import auc, uauc  # noqa: E402
from fusion_parts import Parts, newton  # noqa: E402

RECENT = 30
PAIRS = {"popularity": [0, 1], "like rate": [2, 3], "novelty": [4, 5], "title": [6, 7]}
STOP = set("the a an of and in to for on la le de les el ii iii part with".split())


def read_tsv(path):
    rows = [line.split("\t") for line in open(path, encoding="utf-8").read().splitlines()]
    return rows[0], rows[1:]


def title_words(title):
    t = re.sub(r"\(\d{4}\)\s*$", "", title).lower()
    t = re.sub(r", (the|a|an)\b", "", t)
    return {w for w in re.findall(r"[a-z0-9]+", t) if w not in STOP and len(w) > 1}


def features(data, valid_rows):
    """(rows, 8) features of valid's rows, from train's statistics and the titles."""
    _, train = read_tsv(f"{data}/train.tsv")
    _, items = read_tsv(f"{data}/items.tsv")
    words = {int(r[0]): title_words(r[1] if len(r) > 1 else "") for r in items}
    count, liked = collections.Counter(), collections.Counter()
    for r in train:
        count[int(r[1])] += 1
        liked[int(r[1])] += int(r[2])
    g = sum(liked.values()) / len(train)
    logc = lambda i: np.log1p(count[i])
    rate = lambda i: (liked[i] + 5 * g) / (count[i] + 5)
    X = []
    for r in valid_rows:
        i = int(r[1])
        his = [int(h) for h in r[4].split(",") if h and int(h) > 0]
        recent = his[-RECENT:]
        pop = np.mean([logc(h) for h in recent]) if recent else logc(i)
        mrate = np.mean([rate(h) for h in recent]) if recent else rate(i)
        novel = np.mean([count[h] == 0 for h in recent]) if recent else 0.0
        jac = max((len(words[i] & words[h]) / len(words[i] | words[h]) for h in his if words.get(i) and words.get(h)),
                  default=0.0)
        X.append([logc(i) - pop, abs(logc(i) - pop), rate(i) - mrate, mrate, novel, float(count[i] == 0) * novel,
                  jac, float(jac >= 0.5)])
    return np.array(X)


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit("usage: row_features.py WORK [DATA]")
    work = argv[1]
    shared = os.environ.get("COLLM_SHARED") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared")
    data = argv[2] if len(argv) > 2 else os.path.join(shared, "data/ml-1m")
    P = f"{work}/fusion-objective"
    if not os.path.isfile(f"{P}/fit.json"):
        sys.exit(f"row_features: {P}/fit.json not found (run WORK={work} bench/fusion_objective.sh first)")
    F = Parts(P, data)
    _, valid_rows = read_tsv(f"{data}/valid.tsv")
    X = features(data, valid_rows)
    small, held = F.small, ~F.small
    y, u = F.y, F.u
    rep = lambda s: (auc(y[held], s[held]), uauc(u[held], y[held], s[held]))
    base = rep(F.fused)
    print(f"held out (valid outside valid_small, {held.sum()} rows): the recipe {base[0]:.4f} / {base[1]:.4f}")
    Z = (X - X[small].mean(0)) / (X[small].std(0) + 1e-12)
    out = {"recipe": [round(v, 4) for v in base]}
    for name, cols in PAIRS.items():
        A = np.c_[Z[:, cols], np.ones(len(Z))]  # the pair and a bias
        part = A @ newton(A[small], y[small], np.ones(small.sum()), 1e-2)
        parts = list(F.parts) + [part]
        w = F.ascend_auc(parts)
        a, ua = rep(F.score(w, parts))
        print(f"  + {name:10s} weight {w[-1]:5g}: {a:.4f} / {ua:.4f}  ({a - base[0]:+.4f} / {ua - base[1]:+.4f})")
        out[name] = [round(a, 4), round(ua, 4)]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
