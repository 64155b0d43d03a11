"""How much of a gap between two methods is the test set's own noise?

Every method is scored on one fixed set of N test problems, and each seed's runs of two methods
share their SFT start and first episodes. The usual standard error (over seeds, paired) asks
"would the gap hold with other seeds on these N problems?". A reader also wants "... and on
another N problems of the same kind?": with accuracies near the ceiling a gap of half a point can
be a handful of problems that every seed happens to agree on.

With d[s, i] = method's correctness minus baseline's on problem i in seed s (each 0 or 1), the gap
is the mean of d, and seeds and problems are two crossed random factors:
d[s, i] = gap + a[s] + b[i] + e[s, i]. The variance of the mean is
Var(a)/S + Var(b)/N + Var(e)/(S N), estimated without bias (two-way ANOVA, method of moments) by

    se_both^2 = se_seeds^2 + se_problems^2 - MS_e / (S N)

where se_seeds is the standard error of the S seed means (the paired s.e. over seeds the other
analyses use), se_problems that of the N problem means, and MS_e the residual mean square (each of
the first two carries Var(e)/(S N) once; the last term takes the second copy out).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def gap_noise(d: np.ndarray) -> dict[str, float]:
    """Gap and standard errors of a seeds x problems matrix of paired differences (see the module
    docstring). With one seed only the problems' part is known (se_seeds and se_both are nan)."""
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[1] < 2 or d.shape[0] < 1:
        raise ValueError(f"need a seeds x problems matrix with at least 2 problems, got shape {d.shape}")
    S, N = d.shape
    grand = float(d.mean())
    seed_means, problem_means = d.mean(axis=1), d.mean(axis=0)
    se_problems = math.sqrt(problem_means.var(ddof=1) / N)
    out = {"seeds": S, "problems": N, "gap": grand, "se_problems": se_problems,
           "discordant": float((d != 0).mean())}
    if S < 2:
        return {**out, "se_seeds": float("nan"), "se_both": float("nan")}
    se_seeds = math.sqrt(seed_means.var(ddof=1) / S)
    resid = d - seed_means[:, None] - problem_means[None, :] + grand
    ms_e = float((resid ** 2).sum() / ((S - 1) * (N - 1)))
    # A method-of-moments estimate can fall below either part alone when the interaction is large
    # and the seeds few: never report less noise than the larger of the two one-way errors.
    var_both = max(se_seeds ** 2 + se_problems ** 2 - ms_e / (S * N), se_seeds ** 2, se_problems ** 2)
    return {**out, "se_seeds": se_seeds, "se_both": math.sqrt(var_both)}


def paired_matrix(method: dict[int, Any], baseline: dict[int, Any]) -> tuple[np.ndarray, list[int]]:
    """The seeds x problems difference matrix of two methods from {seed: '0110...'} correctness
    strings (one character per test problem, in the test set's order), or {seed: [0.25, 1.0, ...]}
    per-problem scores (the sampled measure's share of correct samples), over the seeds both have."""
    seeds = sorted(set(method) & set(baseline))
    if not seeds:
        raise ValueError("the two methods share no seed")
    lengths = {len(s) for s in (*method.values(), *baseline.values())}
    if len(lengths) != 1:
        raise ValueError(f"correctness strings of different lengths {sorted(lengths)}: not one test set")

    def bits(s: str | list[float]) -> np.ndarray:
        if not isinstance(s, str):
            return np.asarray(s, dtype=float)
        return np.frombuffer(s.encode(), dtype=np.uint8).astype(float) - ord("0")

    return np.stack([bits(method[s]) - bits(baseline[s]) for s in seeds]), seeds


def two_in_a_row(points: list[tuple[int, float, float]]) -> dict:
    """The repository's separation rule over (iteration, gap, s.e.) points in iteration order:
    separated where the gap is beyond 2 s.e., the same way, at two evaluations in a row (one point
    beyond 2 s.e. among many is expected by chance). ahead: +1 / -1 for the direction where they
    separate, 0 if never or both ways (crossing)."""
    beyond = [(it, (g > 2 * se) - (g < -2 * se)) for it, g, se in points if not math.isnan(se)]
    pairs = [(a, b) for a, b in zip(beyond, beyond[1:], strict=False) if a[1] == b[1] != 0]
    directions = {a[1] for a, _ in pairs}
    return {"separated": bool(pairs), "ahead": directions.pop() if len(directions) == 1 else 0,
            "at": [[a[0], b[0]] for a, b in pairs]}


def separation_with_test_set(bits: dict[str, dict[int, dict[int, str]]], method: str, baseline: str) -> dict | None:
    """The two-in-a-row rule on `method` - `baseline` with the test set's noise counted: at each
    evaluation both have (bits[label][iteration][seed] = '0110...'), paired over their shared seeds
    (two at least), the gap against twice se_both. None when either method has no bits (runs from
    before they were kept), so that callers fall back to the seeds' error alone."""
    if not bits.get(method) or not bits.get(baseline):
        return None
    rows = []
    for it in sorted(set(bits[method]) & set(bits[baseline])):
        a, b = bits[method][it], bits[baseline][it]
        if len(set(a) & set(b)) < 2:
            continue
        n = gap_noise(paired_matrix(a, b)[0])
        rows.append({"iteration": it, "gap": n["gap"], "two_se": 2 * n["se_both"], "seeds": n["seeds"]})
    rule = two_in_a_row([(r["iteration"], r["gap"], r["two_se"] / 2) for r in rows])
    return {**rule, "points": rows}


MEASURES = ("greedy", "sampled")


def run_bits(run_dir: Path, measure: str = "greedy") -> dict[int, str] | dict[int, list[float]] | None:
    """A run's per-problem scores at each evaluation: greedy bits ({iteration: '0110...'}) from its
    eval/greedy_correct.json, or with measure='sampled' each problem's share of correct samples
    ({iteration: [0.25, 1.0, ...]}) from eval/sampled_correct.json; None for a run without them."""
    path = run_dir / "eval" / f"{measure}_correct.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if measure == "greedy":
            return {int(k): v for k, v in data["iterations"].items()}
        return {int(k): [c / data["samples"] for c in v] for k, v in data["iterations"].items()}
    except (KeyError, ValueError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: not a {measure}_correct.json ({e})") from None
