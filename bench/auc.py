"""AUC and UAUC as collm computes them (src/data/metrics.c), for the bench
scripts that combine score files written by `collm eval --scores` and
`collm eval-cf --scores` (TSV: uid, iid, label, score; one row per row of
the split, in its order).

  auc:  P(a positive scores above a negative), ties counting one half
        (rank sum with average ranks);
  uauc: the unweighted mean of the per-user AUCs over users with both labels.
"""
import numpy as np


def read_scores(path):
    """(uid, iid, label, score) arrays of a score file."""
    rows = [l.split("\t") for l in open(path).read().splitlines()[1:]]
    return (np.array([int(r[0]) for r in rows]), np.array([int(r[1]) for r in rows]),
            np.array([int(r[2]) for r in rows]), np.array([float(r[3]) for r in rows]))


def auc(y, s):
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # average rank (1-based) of each tie group
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def uauc(u, y, s):
    per_user = []
    for user in np.unique(u):
        m = u == user
        if 0 < y[m].sum() < m.sum():
            per_user.append(auc(y[m], s[m]))
    return float(np.mean(per_user))
