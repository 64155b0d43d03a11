"""GSM8K and MATH: from the hub by name through `datasets`, or from local JSONL / Parquet files.

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
    "math": ("hendrycks/competition_math", None),
}


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


def load_hub(task: str, split: str, hub_name: str | None, hub_config: str | None) -> list[dict[str, str]]:
    """Load a split from the hub by name (needs network or a populated HF cache)."""
    import datasets

    name, config = HUB_DEFAULTS[task]
    name, config = hub_name or name, hub_config or config
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except (OSError, ConnectionError, ValueError) as e:  # offline and not cached, no such dataset or split
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"task {task}: could not load {name}" + (f" ({config})" if config else "")
                        + f" [{split}] from the hub or its cache ({type(e).__name__}: {first}); give local files "
                        f"with task.{split}_path=FILE (JSONL, JSON or Parquet), or another dataset with "
                        "task.hub_name") from e
    return [_example(dict(row), task, f"{name}[{split}]", i) for i, row in enumerate(ds)]
