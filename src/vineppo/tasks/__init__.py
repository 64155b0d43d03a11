"""Tasks: train/test examples `{id, question, answer, solution}`, their prompt and answer format.

`arith` / `arith_hard` are generated here (no download); `gsm8k` / `math` load real data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vineppo.config import TaskConfig
from vineppo.grading import ANSWER_FORMAT, answer_format
from vineppo.tasks import arith as _arith
from vineppo.tasks.hub import DataError, load_hub, load_local

TASKS = tuple(ANSWER_FORMAT)

PROMPT = "Question: {question}\nAnswer:\n"
"""Prompt template; the response is the worked solution, one reasoning step per line."""


@dataclass
class Task:
    name: str
    train: list[dict[str, str]]
    test: list[dict[str, str]]

    @property
    def answer_format(self) -> str:
        return ANSWER_FORMAT[self.name]

    @staticmethod
    def prompt(question: str) -> str:
        return PROMPT.format(question=question)


def arith_spec(cfg: TaskConfig) -> _arith.ArithSpec:
    base = _arith.ARITH if cfg.name == "arith" else _arith.ARITH_HARD
    changes = {}
    if cfg.min_steps is not None:
        changes["min_steps"] = cfg.min_steps
    if cfg.max_steps is not None:
        changes["max_steps"] = cfg.max_steps
    if cfg.max_operand is not None:
        changes["max_operand"] = cfg.max_operand
    if cfg.max_start is not None:
        changes["max_start"] = cfg.max_start
    if cfg.ops is not None:
        bad = [op for op in cfg.ops if op not in _arith.OPS]
        if bad:
            raise ValueError(f"task.ops: unknown operation(s) {bad}; choose from {list(_arith.OPS)}")
        changes["ops"] = tuple(cfg.ops)
    spec = replace(base, **changes)
    if not 1 <= spec.min_steps <= spec.max_steps:
        raise ValueError(f"task.min_steps/max_steps: need 1 <= min_steps <= max_steps, got "
                         f"{spec.min_steps}, {spec.max_steps}")
    if spec.max_operand < 1:
        raise ValueError(f"task.max_operand must be >= 1, got {spec.max_operand}")
    return spec


def load_task(cfg: TaskConfig) -> Task:
    """Build or load the task named by `cfg.name`."""
    if cfg.name not in ANSWER_FORMAT:
        raise ValueError(f"task.name: unknown task '{cfg.name}'; available: {', '.join(TASKS)}")
    if cfg.name in ("arith", "arith_hard"):
        train, test = _arith.generate_splits(arith_spec(cfg), cfg.num_train, cfg.num_test,
                                             cfg.seed, prefix=cfg.name)
    else:
        def split(name: str, path: str | None) -> list[dict[str, str]]:
            if path:
                return load_local(path, cfg.name)
            return load_hub(cfg.name, name, cfg.hub_name, cfg.hub_config)

        train, test = split("train", cfg.train_path), split("test", cfg.test_path)
    if cfg.limit_test is not None:
        test = test[: cfg.limit_test]
    return Task(cfg.name, train, test)


__all__ = ["ANSWER_FORMAT", "DataError", "PROMPT", "TASKS", "Task", "answer_format", "load_task"]
