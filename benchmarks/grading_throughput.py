"""Grading an iteration's outputs in this process vs spread over a pool (`task.grade_workers`).

    .venv/bin/python benchmarks/grading_throughput.py

Two workloads of model outputs, made here from a fixed seed: MATH-format answers that need a
symbolic comparison (math-verify: surds, polynomials in another order, multiples of pi, with
equal and unequal ones mixed), and plain-number answers (GSM8K-like, settled without sympy).
Each is graded by `grading.grade_many` with 1 worker and with `--workers` (default: one per CPU
this process may use, at most 8), `--repeats` times each (median), alternating. The pool is
started before timing (it lives as long as the process, as in a run). The plain-number workload
shows the pool is left alone where it would not pay. Every verdict of both settings is checked
against the one the workload was built with. Prints a table and, as its last line, one JSON object with the speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time

from vineppo import grading


def symbolic_workload(n: int, seed: int = 0) -> list[tuple[str, str, float]]:
    """(completion, reference, right verdict): answers equal, or not, only symbolically."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        a, b, c = rng.randint(2, 9), rng.choice([2, 3, 5, 6, 7, 10, 11]), rng.randint(2, 9)
        same = rng.random() < 0.5
        kind = i % 4
        if kind == 0:  # a surd written two ways
            reference = f"\\frac{{{a}\\sqrt{{{b}}}}}{{{c}}}"
            answer = f"\\frac{{{a}}}{{{c}}}\\sqrt{{{b}}}" if same else f"\\frac{{{a + 1}}}{{{c}}}\\sqrt{{{b}}}"
        elif kind == 1:  # a polynomial in another order
            reference = f"x^{{2}}+{a}x+{c}"
            answer = f"{c}+{a}x+x^2" if same else f"{c}+{a}x+2x^2"
        elif kind == 2:  # a multiple of pi
            reference = f"{a}\\pi"
            answer = f"\\pi \\cdot {a}" if same else f"\\pi \\cdot {a + 1}"
        else:  # a square root to simplify
            reference = f"{a}\\sqrt{{{b}}}"
            answer = f"\\sqrt{{{a * a * b}}}" if same else f"\\sqrt{{{a * a * b + 1}}}"
        pairs.append((f"Working through the steps.\nSo the answer is $\\boxed{{{answer}}}$.", reference, float(same)))
    return pairs


def number_workload(n: int, seed: int = 0) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x, same = rng.randint(1, 500), rng.random() < 0.5
        out.append((f"Adding up: {x - 3} + 3 = {x}.\n#### {x if same else x + 1}", str(x), float(same)))
    return out


def timed(pairs: list[tuple[str, str]], task: str, workers: int) -> tuple[float, list[float]]:
    grading.set_workers(workers)
    t0 = time.perf_counter()
    verdicts = grading.grade_many(pairs, task)
    return time.perf_counter() - t0, verdicts


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000, help="gradings per workload")
    ap.add_argument("--workers", type=int, default=-1, help="pool size (-1: one per CPU, at most 8)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    grading.set_workers(args.workers)
    workers = grading._workers
    result: dict = {"workers": workers, "n": args.n, "repeats": args.repeats,
                    "device": f"cpu ({platform.machine()}, {os.cpu_count()} cpus)"}
    if workers < 2:
        print(f"one CPU available ({workers} worker): no pool to compare; nothing measured")
        result["skipped"] = "fewer than 2 CPUs"
        print(json.dumps(result))
        return result
    grading.grade_many([(c, r) for c, r, _ in symbolic_workload(8 * grading.POOL_MIN, seed=99)], "math")  # start the pool

    print(f"{'workload':<10} {'workers':>7} {'s (median)':>11} {'gradings/s':>11} {'symbolic':>9}")
    for name, task, cases in (("symbolic", "math", symbolic_workload(args.n)),
                              ("numbers", "gsm8k", number_workload(args.n))):
        pairs = [(c, r) for c, r, _ in cases]
        times: dict[int, list[float]] = {1: [], workers: []}
        verdicts: dict[int, list[float]] = {}
        for _ in range(args.repeats):
            for w in (1, workers):
                seconds, verdicts[w] = timed(pairs, task, w)
                times[w].append(seconds)
        for w in (1, workers):
            wrong = sum(v != e for v, (_, _, e) in zip(verdicts[w], cases, strict=True))
            if wrong:
                raise SystemExit(f"{name}: {wrong} of {len(cases)} verdicts with {w} worker(s) are wrong")
        symbolic = sum(grading._settled(r, grading.extract_math(c) or "") is None for c, r in pairs) \
            if task == "math" else 0
        for w in (1, workers):
            s = statistics.median(times[w])
            print(f"{name:<10} {w:>7} {s:>11.3f} {len(pairs) / s:>11.0f} {symbolic:>9}")
        result[f"{name}_speedup"] = round(statistics.median(times[1]) / statistics.median(times[workers]), 2)
        result[f"{name}_s"] = {str(w): round(statistics.median(t), 3) for w, t in times.items()}
    grading.shutdown_pool()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
