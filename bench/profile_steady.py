"""Where a training step's time goes, from a `perf record -g` of it
(bench/profile_step.sh runs it). Reads `perf script -F tid,time,ip,sym`
(a header line "TID TIME:" per sample, then its frames innermost first,
one "ADDR SYMBOL" per line, a blank line after each sample) and prints:

  busy       the share of the threads' wall time they were on a core:
             the samples of the steady half seconds over what THREADS
             threads sampled at HZ could give in them (and busy_window:
             the same over every half second of the steps, steady or not);
  gemm       the share of those samples inside a matrix product (collm's
             kernel and packing, OpenBLAS's kernels and copies: GEMM_PREFIXES);
  passes     the other leaves (norms, SwiGLU, AdamW, copies, ...), largest first;
  idle       each thread's gaps between samples longer than 1.5 periods,
             summed per (the frames before, the frames after) the gap;
  products   the rate the products ran at as a share of the sgemm 2048^3
             rate of the same run: the step's useful GFLOP/s over
             (busy x gemm x sgemm), that is, what the step would reach if
             nothing but its products ran.

A half second counts when it lies between the end of the first update of
the optimizer (STEP_MARKERS; that update touches the optimizer's state
for the first time: page faults) and its last sample, holds no sample of
the evaluation, the prompts' encoding or a checkpoint or resume-state write (OTHER_MARKERS,
anywhere in a stack) and holds at least STEADY (0.85) of the samples the
threads could give: the start, the epoch ends and the end fall out.

  usage: profile_steady.py PERF_SCRIPT_TXT THREADS HZ [USEFUL_GFLOPS SGEMM_GFLOPS]
Prints a report, then one JSON line (busy, gemm, passes, idle, and with
the two rates useful_gflops, sgemm_gflops, fraction_of_sgemm, products_of_sgemm).
"""
import collections
import json
import sys

GEMM_PREFIXES = ("gemm_", "sgemm_", "collm_ops_gemm", "collm_ops_wpack")
STEP_MARKERS = ("optim_task", "collm_optim_")
OTHER_MARKERS = ("collm_llm_trainer_score", "collm_encode", "collm_tok_", "collm_model_save", "write_resume",
                 "collm_checkpoint_fill", "collm_llm_model_write", "collm_gguf_writer")
STEADY = 0.85
BUCKET = 0.5  # seconds


def read_samples(path):
    """[(tid, time, [frame symbols, innermost first])] of a perf script text."""
    samples, cur = [], None
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
            continue
        if cur is None:
            head = line.split()
            if len(head) < 2 or not head[1].endswith(":"):
                raise ValueError(f"{path}: not a `perf script -F tid,time,ip,sym` header: {line.strip()!r}")
            cur = (head[0], float(head[1].rstrip(":")), [])
        else:
            frame = line.split(None, 1)
            cur[2].append(frame[1].strip().split("+0x")[0] if len(frame) > 1 else "[unknown]")
    if cur:
        samples.append(cur)
    if not samples:
        raise ValueError(f"{path}: no samples")
    return samples


def is_gemm(sym):
    return sym.startswith(GEMM_PREFIXES)


def context(frames, depth=3):
    """The first `depth` frames of collm's own code: the task a sample ran for."""
    own = [f for f in frames if not f.startswith(("gemm_", "sgemm_", "collm_ops_", "_", "[")) and f.isidentifier()]
    return " < ".join(own[:depth]) or "(no frame of collm)"


def analyse(samples, threads, hz, useful=None, sgemm=None):
    t0 = min(s[1] for s in samples)
    bucket = lambda t: int((t - t0) / BUCKET)
    marked = lambda s, prefixes: any(f.startswith(prefixes) for f in s[2])
    steps = sorted(s[1] for s in samples if marked(s, STEP_MARKERS))
    if not steps:
        raise ValueError(f"no sample of the optimizer ({', '.join(STEP_MARKERS)}): not a training run")
    # the updates come in bursts, one per step: the window opens after the first burst
    first_end = next((a for a, b in zip(steps, steps[1:]) if b - a > 0.05), steps[-1])
    first, last = bucket(first_end) + 1, bucket(steps[-1])
    other = {bucket(s[1]) for s in samples if marked(s, OTHER_MARKERS)}
    per_bucket = collections.Counter(bucket(s[1]) for s in samples)
    full = threads * hz * BUCKET  # samples a half second holds when every thread runs
    window = [b for b in range(first, last + 1) if b not in other]  # the steps' half seconds
    steady_b = {b for b in window if per_bucket[b] >= STEADY * full}
    if not steady_b:
        raise ValueError(f"no steady half second of training steps (the busiest half second holds "
                         f"{max(per_bucket.values())} of the {full:.0f} samples {threads} threads give)")
    steady = [s for s in samples if bucket(s[1]) in steady_b]
    busy = len(steady) / (len(steady_b) * full)
    leaves = collections.Counter(s[2][0] if s[2] else "[unknown]" for s in steady)
    gemm = sum(n for sym, n in leaves.items() if is_gemm(sym)) / len(steady)
    passes = [(sym, n / len(steady)) for sym, n in leaves.most_common() if not is_gemm(sym)]
    # idle: the gaps in each thread's samples inside steady half seconds
    period = 1.0 / hz
    by_tid = collections.defaultdict(list)
    for s in steady:
        by_tid[s[0]].append(s)
    gaps, span = collections.Counter(), 0.0
    for ss in by_tid.values():
        ss.sort(key=lambda s: s[1])
        for a, b in zip(ss, ss[1:]):
            if bucket(b[1]) != bucket(a[1]):
                continue  # (a gap across half seconds may span an unsteady one)
            span += b[1] - a[1]
            if b[1] - a[1] > 1.5 * period:
                gaps[context(a[2]) + "  ->  " + context(b[2])] += b[1] - a[1] - period
    # busy over every half second of the steps, the unsteady ones too (the steady share can only be >= STEADY)
    busy_window = sum(per_bucket[b] for b in window) / (len(window) * full)
    out = {"steady_seconds": len(steady_b) * BUCKET, "window_seconds": len(window) * BUCKET, "samples": len(steady),
           "busy": busy, "busy_window": busy_window, "gemm": gemm,
           "passes": passes, "idle": sum(gaps.values()) / span if span else 0.0,
           "idle_by_context": [(k, v / span) for k, v in gaps.most_common()]}
    if useful and sgemm:
        out.update(useful_gflops=useful, sgemm_gflops=sgemm, fraction_of_sgemm=useful / sgemm)
        if gemm > 0:
            out["products_of_sgemm"] = useful / (busy * gemm * sgemm)
    return out


def report(r, top=15):
    print(f"steady: {r['steady_seconds']:.1f} of the steps' {r['window_seconds']:.1f} s, {r['samples']} samples; "
          f"threads busy {100 * r['busy']:.1f}% of the steady wall time ({100 * r['busy_window']:.1f}% of all the "
          f"steps'); idle gaps {100 * r['idle']:.1f}% of the threads' time")
    print(f"matrix products (collm's kernel and packing, OpenBLAS's): {100 * r['gemm']:.1f}% of the busy samples")
    print("everything else, by leaf (share of the busy samples):")
    for sym, f in r["passes"][:top]:
        print(f"  {100 * f:5.2f}%  {sym}")
    print("idle gaps, by the frames before and after them (share of the threads' time):")
    for k, f in r["idle_by_context"][:8]:
        print(f"  {100 * f:5.2f}%  {k}")
    if "products_of_sgemm" in r:
        print(f"useful {r['useful_gflops']:.1f} GFLOP/s = {100 * r['fraction_of_sgemm']:.1f}% of sgemm "
              f"{r['sgemm_gflops']:.1f}; the products ran at {100 * r['products_of_sgemm']:.1f}% of the sgemm rate "
              f"(useful / (busy x products' share x sgemm))")


def main(argv):
    if len(argv) not in (4, 6):
        sys.exit("usage: profile_steady.py PERF_SCRIPT_TXT THREADS HZ [USEFUL_GFLOPS SGEMM_GFLOPS]")
    try:
        threads, hz = int(argv[2]), float(argv[3])
        rates = [float(a) for a in argv[4:6]] or [None, None]
        if threads < 1 or not hz > 0 or any(x is not None and not x > 0 for x in rates):
            raise ValueError(f"THREADS {argv[2]}, HZ {argv[3]} and the rates must be positive")
        r = analyse(read_samples(argv[1]), threads, hz, *rates)
    except (OSError, ValueError) as e:
        sys.exit(f"profile_steady: {e}")
    report(r)
    keys = ["busy", "busy_window", "gemm", "idle", "useful_gflops", "sgemm_gflops", "fraction_of_sgemm",
            "products_of_sgemm"]
    line = {k: round(r[k], 4) for k in keys if k in r}
    line["passes"] = {sym: round(f, 4) for sym, f in r["passes"][:10]}
    print(json.dumps(line))


if __name__ == "__main__":
    main(sys.argv)
