"""GSM8K and MATH: from the hub by name through `datasets`, or from local JSONL / Parquet files.

MATH comes in the paper's split by default (task.math_split=prm800k): the 500 test problems of
Lightman et al.'s PRM800K split (MATH500) and the other 12,000 of MATH to train on; `original` is
MATH's own 7,500 / 5,000.

Rows are checked one by one so that a malformed row fails with the file, row number and field,
never deep inside training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vineppo.grading import last_boxed


class DataError(ValueError):
    """A malformed data file or row; the message names the file, row and field."""


# Each dataset's column layout on the hub: which column holds the problem and the worked solution.
LAYOUTS = {
    "gsm8k": {"question": "question", "solution": "answer"},
    "math": {"question": "problem", "solution": "solution"},
}
HUB_DEFAULTS = {
    "gsm8k": ("openai/gsm8k", "main"),
    # MATH's 12,500 problems (7,500 train, 5,000 test), one config per subject. The dataset this
    # repo first named, hendrycks/competition_math, was taken off the hub in January 2025.
    "math": ("EleutherAI/hendrycks_math", None),
}
MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")
"""EleutherAI/hendrycks_math's configs; without task.hub_config all of them are loaded, in this order."""
MATH500 = ("HuggingFaceH4/MATH-500", None)
"""The 500 test problems of the PRM800K split (Lightman et al., 2023), the paper's MATH test set."""
MATH_SPLITS = ("prm800k", "original")


def answer_from_solution(solution: str, task: str) -> str | None:
    """The reference answer inside a worked solution: after `####` (GSM8K) or the last `\\boxed{}` (MATH)."""
    if task == "gsm8k":
        if "####" not in solution:
            return None
        return solution.rsplit("####", 1)[1].strip().replace(",", "")
    return last_boxed(solution)


def _example(row: Any, task: str, source: str, index: int) -> dict[str, str]:
    """Validate one raw row and turn it into {id, question, answer, solution}."""
    where = f"{source}, row {index + 1}"
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    layout = LAYOUTS[task]
    out = {}
    for key in ("question", "solution"):
        col = layout[key]
        # Accept our own field names too, so files written by this repo load back.
        value = row.get(col, row.get(key))
        if value is None:
            raise DataError(f"{where}: missing field '{col}'")
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field '{col}' must be a non-empty string")
        out[key] = value
    answer = row.get("answer") if task == "math" and isinstance(row.get("answer"), str) else None
    answer = answer or answer_from_solution(out["solution"], task)
    if not answer:
        marker = "'#### <answer>'" if task == "gsm8k" else "'\\boxed{...}'"
        raise DataError(f"{where}: field '{layout['solution']}' has no final answer ({marker})")
    solution = CALCULATOR.sub("", out["solution"]) if task == "gsm8k" else out["solution"]
    return {"id": str(row.get("id", row.get("unique_id", f"{task}-{index}"))),
            "question": out["question"].strip(), "solution": solution, "answer": answer}


CALCULATOR = re.compile(r"<<.*?>>", re.DOTALL)
"""GSM8K's calculator annotations (`48/2 = <<48/2=24>>24`): not part of a written solution, and
removed from the SFT targets as the authors removed them for their SFT checkpoints."""


def read_rows(path: str | Path) -> list[Any]:
    """Raw rows of a local .jsonl / .json / .parquet file, with line numbers in JSON errors."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        try:
            text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not a row
        except UnicodeDecodeError as e:
            line = path.read_bytes()[:e.start].count(b"\n") + 1
            raise DataError(f"{path}, line {line}: not UTF-8 text (byte {e.start})") from e
    if suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.split("\n")):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, row {i + 1}: invalid JSON ({e.msg} at column {e.colno})") from e
        return rows
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from e
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows")
        return data
    if suffix == ".parquet":
        import datasets

        return list(datasets.load_dataset("parquet", data_files=str(path), split="train"))
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .json or .parquet)")


def load_local(path: str | Path, task: str) -> list[dict[str, str]]:
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    return [_example(row, task, str(path), i) for i, row in enumerate(rows)]


def _hub_rows(task: str, name: str, config: str | None, split: str, key: str) -> list[Any]:
    """One split of one hub dataset (needs network or a populated HF cache); `key` is the
    task.*_path setting that replaces it with a local file."""
    import datasets

    try:
        return list(datasets.load_dataset(name, config, split=split))
    except (OSError, ConnectionError, ValueError) as e:  # offline and not cached, no such dataset or split
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"task {task}: could not load {name}" + (f" ({config})" if config else "")
                        + f" [{split}] from the hub or its cache ({type(e).__name__}: {first}); give local files "
                        f"with {key}=FILE (JSONL, JSON or Parquet), or another dataset with "
                        "task.hub_name") from e


def _source(task: str, split: str, hub_name: str | None, hub_config: str | None, key: str) -> list[dict[str, str]]:
    """A split of the task's dataset as published: GSM8K's, or MATH's 7,500 / 5,000 (every subject
    config of the default dataset unless task.hub_config names one)."""
    name, config = HUB_DEFAULTS[task]
    name, config = hub_name or name, hub_config or config
    if task == "math" and name == HUB_DEFAULTS["math"][0] and config is None:
        return [_example(dict(row), task, f"{name} ({subject})[{split}]", i) | {"id": f"{split}/{subject}/{i}"}
                for subject in MATH_SUBJECTS
                for i, row in enumerate(_hub_rows(task, name, subject, split, key))]
    return [_example(dict(row), task, f"{name}[{split}]", i)
            for i, row in enumerate(_hub_rows(task, name, config, split, key))]


def problem_key(question: str) -> str:
    """A problem's text up to whitespace: how one dataset's copy of a problem is found in another's."""
    return " ".join(question.split())


def math500(test_path: str | None) -> list[dict[str, str]]:
    """The PRM800K split's 500 test problems: a local file, else HuggingFaceH4/MATH-500."""
    if test_path:
        return load_local(test_path, "math")
    name, config = MATH500
    return [_example(dict(row), "math", f"{name}[test]", i)
            for i, row in enumerate(_hub_rows("math", name, config, "test", "task.test_path"))]


def prm800k_train(test: list[dict[str, str]], hub_name: str | None, hub_config: str | None) -> list[dict[str, str]]:
    """The PRM800K split's train problems: all of MATH (train, then test) but the test problems,
    about 12,000. Every test problem must be one of MATH's test problems (else this is not that split
    and a test problem could be trained on); all copies of one are removed."""
    source_test = _source("math", "test", hub_name, hub_config, "task.train_path")
    held = {problem_key(e["question"]) for e in test}
    missing = held - {problem_key(e["question"]) for e in source_test}
    if missing:
        name = hub_name or HUB_DEFAULTS["math"][0]
        raise DataError(f"task math: {len(missing)} of the {len(held)} test problems are not test problems of "
                        f"{name} (e.g. {sorted(missing)[0][:60]!r}); task.math_split=prm800k trains on MATH "
                        "without its MATH500 test problems: give MATH500 as task.test_path, or "
                        "task.math_split=original, or the train split as task.train_path")
    source = _source("math", "train", hub_name, hub_config, "task.train_path") + source_test
    return [e for e in source if problem_key(e["question"]) not in held]


def load_hub(task: str, split: str, hub_name: str | None, hub_config: str | None) -> list[dict[str, str]]:
    """A split of the task's dataset as published (GSM8K; MATH's original 7,500 / 5,000), from the
    hub by name (needs network or a populated HF cache)."""
    return _source(task, split, hub_name, hub_config, f"task.{split}_path")
