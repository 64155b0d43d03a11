"""Credit assignment where the miniature knows the answer (generated tasks).

A generated problem has one correct solution, so the first line of a response that differs from it
is the step that deserves the blame (`tasks.arith.first_error`). Two measures build on that:

- blame share: over wrong responses, how often an estimator gives that step its most negative
  advantage (step advantage A_t = V(s_{t+1}) - V(s_t), the value after the last step being the
  reward). GRPO's and RLOO's advantage is one number for the whole response, so every step ties
  and the share is 1 / (number of steps): chance.
  `blame_share_before_last` asks the same over the steps before the answer line.
- the credit-assignment dial: test accuracy by solution length, where longer chains leave more
  steps to share one reward.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from vineppo.tasks.arith import _step_lines

LENGTH_BUCKETS = ((2, 3), (4, 6), (7, 9))
"""Solution lengths (computation steps) of the dial: short, medium and long chains."""


def step_advantages(values: list[float], reward: float) -> list[float]:
    """A_t = V(s_{t+1}) - V(s_t) for each step t of a response with states s_0..s_{n-1}."""
    after = list(values[1:]) + [reward]
    return [b - a for a, b in zip(values, after, strict=True)]


def blame_share(advantages: list[float], wrong: int) -> float:
    """1 if step `wrong` alone has the most negative advantage, 1/m if it ties with m-1 other steps
    (a random pick among the ties), 0 otherwise."""
    if not 0 <= wrong < len(advantages):
        raise ValueError(f"wrong step {wrong} is outside the response's {len(advantages)} steps")
    low = min(advantages)
    ties = [i for i, a in enumerate(advantages) if a == low]
    return 1.0 / len(ties) if wrong in ties else 0.0


def blame_share_before_last(advantages: list[float], wrong: int) -> float | None:
    """`blame_share` over the steps before the last one (None when the wrong step is the last).

    A wrong response's reward of 0 arrives at its last step (the answer line), so an estimator whose
    values hardly vary from state to state gives that step its most negative advantage every time;
    leaving it out asks whether the values' variation before it points at the step that went wrong."""
    if wrong == len(advantages) - 1:
        return None
    return blame_share(advantages[:-1], wrong)


def line_start(text: str, line: int) -> int | None:
    """Character offset of computation line `line` (counted as `first_error` counts them) in `text`."""
    pos, seen = 0, 0
    for raw in text.split("\n"):
        if _step_lines(raw):
            if seen == line:
                return pos + (len(raw) - len(raw.lstrip()))
            seen += 1
        pos += len(raw) + 1
    return None


def step_of_offset(boundaries: list[int], offset: int) -> int:
    """Index of the step (starting at `boundaries[i]`) that holds character `offset`."""
    return max(i for i, b in enumerate(boundaries) if b <= offset)


def num_steps(solution: str) -> int:
    """Computation lines of a reference solution: the problem's chain length."""
    return len(_step_lines(solution))


def bucket_of(n: int, buckets: Iterable[tuple[int, int]] = LENGTH_BUCKETS) -> str | None:
    for lo, hi in buckets:
        if lo <= n <= hi:
            return f"{lo}-{hi}"
    return None


def mean_and_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    var = sum((v - m) ** 2 for v in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def accuracy_by_length(problems: list[dict], lengths: dict[str, int],
                       buckets: Iterable[tuple[int, int]] = LENGTH_BUCKETS) -> pd.DataFrame:
    """Greedy accuracy of one evaluation per length bucket (`lengths`: problem id -> chain length)."""
    rows = [{"bucket": bucket_of(lengths[p["id"]], buckets), "correct": p["greedy_correct"]} for p in problems]
    df = pd.DataFrame(rows).dropna(subset=["bucket"])
    return df.groupby("bucket").agg(accuracy=("correct", "mean"), problems=("correct", "size")).reset_index()


__all__ = ["LENGTH_BUCKETS", "accuracy_by_length", "blame_share", "bucket_of", "line_start", "mean_and_se",
           "num_steps", "step_advantages", "step_of_offset"]
