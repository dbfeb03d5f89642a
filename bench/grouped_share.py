#!/usr/bin/env python3
"""Share of a whole prompt's forward FLOPs that batches of stage-1 prompts
compute when each prompt's leading run shared with an earlier prompt of its
batch runs once (as collm's trainer does), with shuffled batches and with
grouped ones (collm train --batch-order grouped: one user's rows with one
history side by side, the groups in random order). The FLOP count is
bench/train_speed.sh's and collm_llm_trainer_forward_flops's (the bench's
model: d 256, 4 layers, n_ff 688).

  usage: bench/grouped_share.py PROMPTS TRAIN_TSV [BATCHES]
PROMPTS: s1_train.txt written by `collm encode` over TRAIN_TSV (all rows, in
order; bench/train_speed.sh writes one to build/bench/train_speed/peer/ with
ROWS=0). Prints one JSON line."""
import json
import random
import sys

C, Q, KV, F, L, H = 256, 256, 256, 688, 4, 4
W = C * (Q + 2 * KV) + Q * C + 3 * C * F


def own_flops(T, k):  # forward FLOPs of positions [k, T) of a T-token prompt
    keys = (T * (T + 1) - k * (k + 1)) / 2
    return ((L - 1) * (2 * W * (T - k) + 4 * Q * keys) + 2 * C * KV * (T - k) + 2 * Q * T + 2 * H * C * T
            + 2 * Q * C + 2 * (C * Q + Q * C + 3 * C * F) + 2 * C)


def common(a, b):  # leading positions a shares with b, short of a's last
    n, i = min(len(a) - 1, len(b)), 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def share(prompts, order, n_batches, batch=32):
    done = whole = 0.0
    for b0 in range(0, min(len(order), n_batches * batch), batch):
        bt = [prompts[i] for i in order[b0:b0 + batch]]
        P = min(common(x, bt[0]) for x in bt[1:]) if len(bt) > 1 else 0  # the batch's common prefix, once
        done += (L - 1) * (2 * W * P + 4 * Q * P * (P + 1) / 2) + 2 * C * KV * P
        for j, x in enumerate(bt):
            k = max([P] + [common(x, y) for y in bt[:j]])
            done += own_flops(len(x), k)
            whole += own_flops(len(x), 0)
    return done / whole


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    prompts = [tuple(line.split("|", 1)[1].split()) for line in open(sys.argv[1])]
    rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[2])]
    head, rows = rows[0], rows[1:]
    if len(rows) != len(prompts):
        sys.exit(f"grouped_share: {len(prompts)} prompts for {len(rows)} rows of {sys.argv[2]}")
    uid, his = head.index("uid"), head.index("his")
    n_batches = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    rng = random.Random(0)
    shuffled = list(range(len(rows)))
    rng.shuffle(shuffled)
    groups = {}
    for i, r in enumerate(rows):
        groups.setdefault((r[uid], r[his]), []).append(i)
    g = list(groups.values())
    rng.shuffle(g)
    grouped = [i for members in g for i in members]
    print(json.dumps({"rows": len(rows), "groups": len(g), "batches": n_batches,
                      "shuffled": round(share(prompts, shuffled, n_batches), 4),
                      "grouped": round(share(prompts, grouped, n_batches), 4)}))


main()
