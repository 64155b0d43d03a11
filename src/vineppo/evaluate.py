"""Test accuracy: greedy (one answer per problem) and sampled (mean over samples), in batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from vineppo.grading import extract_answer, grade, grade_many
from vineppo.inference import Completion, Engine, SamplingParams
from vineppo.runio import atomic_write_json
from vineppo.tasks import TINY_FORMAT, PromptFormat
from vineppo.tasks.arith import first_error

GENERATED = ("arith", "arith_hard")
"""Tasks whose problems carry a unique reference solution, so a wrong step can be located."""


def reward(completion: Completion, reference: str, task: str) -> float:
    """SPEC.md: a response cut off by the length limit scores 0, as does an unparseable one."""
    if completion.finish_reason == "length":
        return 0.0
    return grade(completion.text, reference, task)


def rewards(pairs: list[tuple[Completion, str]], task: str) -> list[float]:
    """`reward` over (completion, reference) pairs, graded together (`grading.grade_many`)."""
    graded = grade_many([(c.text, ref) for c, ref in pairs if c.finish_reason != "length"], task)
    it = iter(graded)
    return [0.0 if c.finish_reason == "length" else next(it) for c, _ in pairs]


def evaluate(engine: Engine, examples: list[dict[str, str]], task: str, *, batch_size: int = 64,
             max_new_tokens: int = 256, num_samples: int = 0, temperature: float = 0.6,
             top_p: float = 0.9, seed: int = 0, desc: str = "eval", progress: bool = True,
             flaw_ops: tuple[str, ...] = ("sub",), fmt: PromptFormat = TINY_FORMAT) -> dict[str, Any]:
    """Greedy accuracy, and sampled accuracy over `num_samples` samples per problem when > 0;
    on generated tasks also where each greedy answer first goes wrong (`flaw_ops`: task.flaw_ops).
    Prompts in the model's format `fmt` (its BOS, if any, is the engine's to add)."""
    rows: list[dict[str, Any]] = []
    batches = range(0, len(examples), batch_size)
    for b in tqdm(batches, desc=desc, disable=not progress, leave=False):
        chunk = examples[b:b + batch_size]
        prompts = [fmt.prompt(e["question"]) for e in chunk]
        greedy = engine.generate(prompts, SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens,
                                                         stop=list(fmt.stop)))
        sampled = [[] for _ in chunk]
        if num_samples > 0:
            sampled = engine.generate(prompts, SamplingParams(
                n=num_samples, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                stop=list(fmt.stop), seed=seed + b))
        graded = iter(rewards([(c, e["answer"]) for e, g, s in zip(chunk, greedy, sampled, strict=True)
                               for c in (g[0], *s)], task))
        for e, g, s in zip(chunk, greedy, sampled, strict=True):
            row = {
                "id": e["id"], "answer": e["answer"],
                "greedy": g[0].text, "greedy_correct": next(graded),
                "greedy_parsed": g[0].finish_reason != "length" and extract_answer(g[0].text, task) is not None,
                "sampled_correct": [next(graded) for _ in s],
            }
            if task in GENERATED and not e.get("flawed_steps"):  # where the greedy answer first goes
                # wrong, against a correct reference solution (see tasks/arith.py)
                row["first_error_step"], row["first_error_kind"] = first_error(g[0].text, e["solution"], flaw_ops)
            rows.append(row)
    result: dict[str, Any] = {"task": task, **summarise(rows)}
    if num_samples > 0:
        result["num_samples"], result["temperature"], result["top_p"] = num_samples, temperature, top_p
    result["problems"] = rows
    return result


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Greedy accuracy and unparseable share of per-problem rows (one process's, or all gathered),
    the share whose first wrong step is the flaw where every row could be located, and where the
    rows were sampled too, the sampled accuracy (mean over each problem's samples, then problems:
    pass@1 estimated from k samples) and pass@k."""
    n = max(len(rows), 1)
    out = {"num_problems": len(rows), "greedy_accuracy": sum(r["greedy_correct"] for r in rows) / n,
           "greedy_unparsed": sum(not r["greedy_parsed"] for r in rows) / n}
    if rows and all(r.get("sampled_correct") for r in rows):
        out["sampled_accuracy"] = sum(sum(r["sampled_correct"]) / len(r["sampled_correct"]) for r in rows) / n
        out["pass_at_k"] = sum(max(r["sampled_correct"]) for r in rows) / n
    if rows and all("first_error_kind" in r for r in rows):
        out["greedy_flawed"] = sum(r["first_error_kind"] == "flaw" for r in rows) / n
    return out


def log_fields(result: dict[str, Any]) -> dict[str, float]:
    """An evaluation's numbers as metrics.jsonl logs them."""
    keys = ("greedy_accuracy", "greedy_unparsed", "greedy_flawed", "sampled_accuracy", "pass_at_k")
    return {f"eval/{k}": result[k] for k in keys if k in result}


def in_test_order(shares: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The processes' shares of an evaluation's problems back in the test set's order (process r
    of W scored problems r, r + W, r + 2W, ...; by position, so repeated ids in a user's data do
    not matter)."""
    world, n = len(shares), sum(len(s) for s in shares)
    if any(len(s) != len(range(r, n, world)) for r, s in enumerate(shares)):
        raise ValueError(f"shares of {[len(s) for s in shares]} problems are not a strided split of {n}")
    out: list[dict[str, Any]] = [{}] * n
    for r, share in enumerate(shares):
        for k, p in enumerate(share):
            out[r + k * world] = p
    return out


def correct_bits(shares: list[list[dict[str, Any]]]) -> str:
    """Each test problem's greedy correctness as one '0'/'1' character, in the test set's order:
    500 bytes per evaluation, enough to count the test set's own noise at every evaluation
    (`analysis/test_noise.py`)."""
    return "".join("1" if p["greedy_correct"] else "0" for p in in_test_order(shares))


def correct_counts(shares: list[list[dict[str, Any]]]) -> list[int]:
    """Each test problem's number of correct samples (of rl.eval_samples), in the test set's order:
    the sampled measure's per-problem scores, for the same noise count."""
    return [int(sum(p["sampled_correct"])) for p in in_test_order(shares)]


def record_bits(path: Path, iteration: int, bits: str | list[int], test_ids: list[str], **extra: Any) -> None:
    """Add (or, for a resumed run that evaluates an iteration again, replace) one evaluation's
    `correct_bits` (or `correct_counts`, with `samples=N` in `extra`) in `path`:
    {"problem_ids": [...], **extra, "iterations": {"<iteration>": "0110..." or [3, 0, ...]}}."""
    data = json.loads(path.read_text()) if path.exists() else {"problem_ids": test_ids, **extra, "iterations": {}}
    if data["problem_ids"] != test_ids or any(data.get(k) != v for k, v in extra.items()):
        raise ValueError(f"{path}: written for another test set or sample count than this run's")
    data["iterations"][str(iteration)] = bits
    atomic_write_json(path, data)
