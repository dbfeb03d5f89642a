"""How much of the within-user order (UAUC) is the item's like rate, and how
much of it train's statistics can give (issue 9; docs/encoders.md, "Item
quality across periods").

Within one user, rows differ by their item, and the first thing an item
brings is how well liked it is. This script scores valid's rows by an
item's smoothed like rate, (liked + 5 g) / (rows + 5) with g train's like
rate, counted over

  train            every train row of the item (what ctx and the encoders see);
  train, recent    train rows weighted exp(-(T - t) / tau), T train's last
                   timestamp (tau 365, 180, 90 days): is the valid period's
                   like rate the continuation of train's late one?
  + earlier small  train plus the valid_small rows of the item whose timestamp
                   is before the scored row's: labels of the scored period
                   itself, earlier than the row (a diagnostic: scoring the
                   test split, no label of its own period exists; the
                   recipe's refit on train + valid is the one-period-back
                   version of it)

and prints each alone and the recipe's fused score plus a times the
standardised difference between the last and the first (the fused score
standardised too), on valid's rows outside valid_small (held out) and on
valid_small's. Reads the part files bench/fusion_objective.sh wrote in
WORK/fusion-objective; the test split is never read.

  usage: WORK=build/ml1m-work bench/fusion_objective.sh   (first)
         /usr/bin/python3 bench/item_drift.py WORK [DATA]   (DATA: ML-1M in ../shared or $COLLM_SHARED)
"""
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auc import auc, uauc  # noqa: E402
from fusion_parts import Parts  # noqa: E402

PRIOR = 5  # pseudo-rows of train's like rate in every item's rate
TAUS = (365, 180, 90)  # days
ALPHAS = (0.1, 0.2, 0.3)


def read_rows(path):
    """(item, label, timestamp) int arrays of a split file (uid, iid, label, timestamp, ...)."""
    rows = [line.split("\t") for line in open(path, encoding="utf-8").read().splitlines()[1:]]
    return tuple(np.array([int(r[k]) for r in rows], dtype=np.int64) for k in (1, 2, 3))


def item_rates(items, labels, weights, n_items, g):
    liked = np.bincount(items, weights=weights * labels, minlength=n_items)
    rows = np.bincount(items, weights=weights, minlength=n_items)
    return (liked + PRIOR * g) / (rows + PRIOR)


def earlier_small_rate(p, ts, t_items, t_labels, g):
    """Per valid row: its item's rate over train plus the valid_small rows of
    that item strictly earlier than the row (never the row itself)."""
    liked = collections.Counter()
    count = collections.Counter()
    for i, y in zip(t_items.tolist(), t_labels.tolist()):
        liked[i] += y
        count[i] += 1
    by_item = collections.defaultdict(list)  # item -> sorted (timestamp, label) of valid_small
    for k in np.flatnonzero(p.small):
        by_item[int(p.iid[k])].append((int(ts[k]), int(p.y[k])))
    for v in by_item.values():
        v.sort()
    out = np.empty(len(ts))
    for k in range(len(ts)):
        i = int(p.iid[k])
        pos, n = liked[i], count[i]
        for t, y in by_item.get(i, ()):
            if t >= ts[k]:
                break
            pos, n = pos + y, n + 1
        out[k] = (pos + PRIOR * g) / (n + PRIOR)
    return out


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit("usage: item_drift.py WORK [DATA]")
    work = argv[1]
    data = argv[2] if len(argv) == 3 else os.path.join(os.environ.get("COLLM_SHARED", os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")), "data", "ml-1m")
    P = f"{work}/fusion-objective"
    if not os.path.exists(f"{P}/fit.json"):
        sys.exit(f"item_drift: no {P}/fit.json (run WORK={work} bench/fusion_objective.sh first)")
    p = Parts(P, data)
    t_items, t_labels, t_ts = read_rows(f"{data}/train.tsv")
    _, _, ts = read_rows(f"{data}/valid.tsv")
    n_items = int(max(t_items.max(), p.iid.max())) + 1
    g = float(t_labels.mean())
    T = int(t_ts.max())
    train = item_rates(t_items, t_labels, np.ones(len(t_items)), n_items, g)[p.iid]
    scores = {"train": train}
    for tau in TAUS:
        w = np.exp(-(T - t_ts) / (tau * 86400.0))
        scores[f"train, recent (tau {tau} d)"] = item_rates(t_items, t_labels, w, n_items, g)[p.iid]
    scores["+ earlier small"] = earlier_small_rate(p, ts, t_items, t_labels, g)
    z = lambda x: (x - x.mean()) / x.std()
    for a in ALPHAS:
        scores[f"fused + {a} (earlier small - train)"] = z(p.fused) + a * (z(scores["+ earlier small"]) - z(train))
    scores["fused (the recipe)"] = p.fused
    held, small = ~p.small, p.small
    figures = {}
    print(f"{'score':40s} {'held out':>15s} {'valid_small':>15s}")
    for name, s in scores.items():
        f = [auc(p.y[m], s[m]) for m in (held, small)] + [uauc(p.u[m], p.y[m], s[m]) for m in (held, small)]
        figures[name] = {"held_auc": f[0], "held_uauc": f[2], "small_auc": f[1], "small_uauc": f[3]}
        print(f"{name:40s} {f[0]:.4f} {f[2]:.4f}   {f[1]:.4f} {f[3]:.4f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv)
