"""The parts of a recipe checkpoint's fused score on valid, for the bench
scripts that refit the fusion another way (bench/fusion_objective.sh,
bench/seed_ensemble.sh). They read the files fusion_objective.sh writes in
P = WORK/fusion-objective: fit.json (`collm fit-score --dry-run --json` on
valid_small), fused.tsv (`collm eval --scores` on valid) and partK.tsv
(`collm eval-cf --scores` on valid: part0 the checkpoint's own encoder, then
each extra in the checkpoint's order).

  score = llm + sum_k w_k part_k        (fit-score's weights w, stored in fit.json)

so the LLM's own score is the fused one less the weighted parts.
"""
import json

import numpy as np

from auc import auc, read_scores

def newton(A, target, weight, l2):
    """L2-regularised logistic regression of target on the columns of A by
    Newton's method, rows weighted (weight: a sum of weighted BCEs; the L2
    covers every column, a bias column too); returns the coefficients."""
    b = np.zeros(A.shape[1])
    for _ in range(30):
        pr = 1 / (1 + np.exp(-A @ b))
        g = A.T @ (weight * (pr - target)) + l2 * b
        H = (A * (weight * pr * (1 - pr))[:, None]).T @ A + l2 * np.eye(len(b))
        b -= np.linalg.solve(H, g)
    return b


# fit-score's grid of weights (collm_fit_score_weights)
GRID = [0, .05, .1, .2, .3, .5, .7, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 100]


class Parts:
    """u, y: the valid rows' users and labels; llm; parts (list of arrays);
    stored (fit-score's weights); kinds (part 0 "cf", then the extras');
    small: valid_small's rows inside valid (by uid, iid, timestamp);
    cold: the rows whose not_cold column is 0."""

    def __init__(self, P, data):
        fit = json.load(open(f"{P}/fit.json"))
        self.u, self.iid, self.y, fused = read_scores(f"{P}/fused.tsv")
        self.parts = [self.read_part(f"{P}/part{p}.tsv") for p in range(len(fit["extras"]) + 1)]
        self.kinds = ["cf"] + [e["kind"] for e in fit["extras"]]
        self.stored = [fit["cf_weight"]] + [e["weight"] for e in fit["extras"]]
        self.fused = fused
        self.llm = fused - sum(w * p for w, p in zip(self.stored, self.parts))
        key = lambda f: (f[0], f[1], f[3])
        small = {key(l.split("\t")) for l in open(f"{data}/valid_small.tsv").read().splitlines()[1:]}
        rows = [l.split("\t") for l in open(f"{data}/valid.tsv").read().splitlines()[1:]]
        assert len(rows) == len(self.y), "valid.tsv and the score files differ in rows"
        self.small = np.array([key(f) in small for f in rows])
        self.cold = np.array([f[5] == "0" for f in rows])
        assert self.small.any() and (~self.small).any()

    def read_part(self, path):
        """The scores of a score file whose rows are the checkpoint's (checked)."""
        pu, pi, _, ps = read_scores(path)
        assert (pu == self.u).all() and (pi == self.iid).all(), f"{path}'s rows differ from the checkpoint's"
        return ps

    def ascend(self, objective, parts=None):
        """fit-score's coordinate ascent over GRID (collm_fit_score_weights),
        objective(score) the value to raise; returns the weights."""
        parts = self.parts if parts is None else parts
        n = len(parts)
        w, best = [0.0] * n, -1.0
        for _ in range(8):
            changed = False
            for p in range(n):
                base = self.llm + sum(w[q] * parts[q] for q in range(n) if q != p)
                bw, bv = w[p], -1.0
                for g in GRID:
                    v = objective(base + g * parts[p])
                    if v > bv or (v == bv and g < bw): bv, bw = v, g
                if bw != w[p] and bv > best: changed = True
                if bv >= best: w[p], best = bw, bv
            if not changed: break
        return w

    def ascend_auc(self, parts=None):
        m = self.small
        return self.ascend(lambda s: auc(self.y[m], s[m]), parts)

    def score(self, w, parts=None):
        parts = self.parts if parts is None else parts
        return self.llm + sum(a * b for a, b in zip(w, parts))
