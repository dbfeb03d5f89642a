#!/usr/bin/env python3
"""Why does the LLM's pointwise "Yes" logit order retrieved candidates badly?

Reads the candidates that `collm eval-topk --dump FILE` wrote (one line per
user and candidate: retrieval score, LLM logit, relevant 0/1) and the dataset
folder, and prints, averaged over users (docs/topk.md quotes the output):

  * candidate AUC: P(a relevant candidate scores above an irrelevant one),
    split by what the irrelevant one is: an item the user rated in the split
    and did not like ("watched, disliked": what training contrasts with) or an
    item the user did not rate in the split ("unwatched": what top-K needs);
  * Spearman correlation of each score with the item's popularity (rows in
    train) and with its like rate in train, and between the two scores;
  * NDCG@10 of the candidates ordered by each score, by popularity, and by
    the fused z(llm) + lambda z(retrieval) for a few lambda.

  usage: bench/topk_analysis.py DUMP.tsv DATA_DIR [SPLIT]   (SPLIT: valid)
Pure Python (no numpy), a few seconds for 300 users x 100 candidates.
"""
import csv
import math
import sys
from collections import defaultdict


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def ranks(xs):
    """Average ranks (1-based) with ties sharing their mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    saa = sum((x - ma) ** 2 for x in ra)
    sbb = sum((y - mb) ** 2 for y in rb)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else float("nan")


def auc(pos, neg):
    if not pos or not neg:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def zs(xs):
    n = len(xs)
    m = sum(xs) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / n)
    return [(x - m) / sd if sd > 0 else 0.0 for x in xs]


def ndcg10(scores, items, rel, n_rel):
    # score descending, then item id ascending (collm_topk_rank); the
    # retrieval score as the second key is left out here: ties are rare
    order = sorted(range(len(items)), key=lambda i: (-scores[i], items[i]))
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(order[:10]) if rel[i])
    idcg = sum(1 / math.log2(r + 2) for r in range(min(10, n_rel)))
    return dcg / idcg


def mean(xs):
    xs = [x for x in xs if not math.isnan(x)]
    return sum(xs) / len(xs) if xs else float("nan"), len(xs)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    dump, data = sys.argv[1], sys.argv[2]
    split = sys.argv[3] if len(sys.argv) > 3 else "valid"
    pop = defaultdict(int)
    likes = defaultdict(int)
    for r in read_tsv(f"{data}/train.tsv"):
        pop[r["iid"]] += 1
        likes[r["iid"]] += r["label"] == "1"
    disliked = defaultdict(set)  # user -> items rated in the split with label 0
    n_rel_user = defaultdict(set)
    for r in read_tsv(f"{data}/{split}.tsv"):
        if r["label"] == "0":
            disliked[r["uid"]].add(r["iid"])
    users = defaultdict(list)
    for r in read_tsv(dump):
        users[r["uid"]].append(r)
        if r["relevant"] == "1":
            n_rel_user[r["uid"]].add(r["iid"])
    # the number of relevant items of a user, for IDCG: all of them, not only
    # those among the candidates (as eval-topk); read from the split
    from_split = defaultdict(set)
    train_items = defaultdict(set)
    for r in read_tsv(f"{data}/train.tsv"):
        train_items[r["uid"]].add(r["iid"])
    first = {}
    rows = read_tsv(f"{data}/{split}.tsv")
    for i, r in enumerate(rows):
        key = (int(r["timestamp"]), i)
        if r["uid"] not in first or key < first[r["uid"]][0]:
            first[r["uid"]] = (key, r)
    for r in rows:
        u = r["uid"]
        if u not in first:
            continue
        excl = set(first[u][1]["his"].split(",")) | train_items[u] | {"0"}
        if r["label"] == "1" and r["iid"] not in excl:
            from_split[u].add(r["iid"])

    acc = defaultdict(list)
    lambdas = [0, 0.5, 1, 2, 4, 1000]
    for u, cs in users.items():
        items = [int(c["iid"]) for c in cs]
        ret = [float(c["retrieval"]) for c in cs]
        llm = [float(c["llm"]) for c in cs]
        rel = [c["relevant"] == "1" for c in cs]
        p = [pop[c["iid"]] for c in cs]
        like_rate = [(likes[c["iid"]] + 1) / (pop[c["iid"]] + 2) for c in cs]
        watched_neg = [c["iid"] in disliked[u] for c in cs]
        for name, s in (("llm", llm), ("retrieval", ret), ("popularity", p)):
            pos = [x for x, r in zip(s, rel) if r]
            acc[f"auc_vs_unwatched[{name}]"].append(
                auc(pos, [x for x, r, w in zip(s, rel, watched_neg) if not r and not w]))
            acc[f"auc_vs_disliked[{name}]"].append(
                auc(pos, [x for x, r, w in zip(s, rel, watched_neg) if not r and w]))
        acc["spearman(llm, retrieval)"].append(spearman(llm, ret))
        acc["spearman(llm, popularity)"].append(spearman(llm, p))
        acc["spearman(retrieval, popularity)"].append(spearman(ret, p))
        acc["spearman(llm, like rate)"].append(spearman(llm, like_rate))
        acc["spearman(retrieval, like rate)"].append(spearman(ret, like_rate))
        n_rel = len(from_split[u])
        if n_rel == 0:
            continue
        acc["ndcg@10[retrieval]"].append(ndcg10(ret, items, rel, n_rel))
        acc["ndcg@10[llm]"].append(ndcg10(llm, items, rel, n_rel))
        acc["ndcg@10[popularity]"].append(ndcg10([float(x) for x in p], items, rel, n_rel))
        zl, zr = zs(llm), zs(ret)
        for lam in lambdas:
            acc[f"ndcg@10[fused lambda={lam}]"].append(
                ndcg10([a + lam * b for a, b in zip(zl, zr)], items, rel, n_rel))
        zp = zs([math.log1p(x) for x in p])
        acc["ndcg@10[z(retrieval) + z(log pop)]"].append(
            ndcg10([a + b for a, b in zip(zr, zp)], items, rel, n_rel))
        acc["ndcg@10[z(llm) + z(log pop)]"].append(ndcg10([a + b for a, b in zip(zl, zp)], items, rel, n_rel))
    print(f"{len(users)} users, {sum(len(c) for c in users.values())} candidates from {dump}")
    for k, v in acc.items():
        m, n = mean(v)
        print(f"{k:40s} {m:8.4f}  ({n} users)")


if __name__ == "__main__":
    main()
