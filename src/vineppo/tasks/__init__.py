"""Tasks: train/test examples `{id, question, answer, solution}`, their prompt and answer format.

`arith` / `arith_hard` are generated here (no download); `gsm8k` / `math` load real data.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vineppo.config import ConfigError, TaskConfig
from vineppo.grading import ANSWER_FORMAT, answer_format
from vineppo.inference.base import encode_prompt
from vineppo.tasks import arith as _arith
from vineppo.tasks.hub import DataError, load_hub, load_local, math500, prm800k_train

TASKS = tuple(ANSWER_FORMAT)

PROMPT = "Question: {question}\nAnswer:\n"
"""The tiny preset's prompt template; the response is the worked solution, one reasoning step per line."""


@dataclass(frozen=True)
class PromptFormat:
    """How a problem becomes a prompt, and a worked solution an SFT target: the format the model
    was trained on (task.prompt_template, task.response_template, task.prompt_bos). The
    authors' SFT checkpoints were trained on BOS + "[MATH_TASK] Problem:\n{question}\n\nSolution:"
    then "\n{solution}\n" + EOS (the paper preset); another format costs them accuracy."""

    template: str = PROMPT
    response: str = "{solution}"
    bos: bool = False
    stop: tuple[str, ...] = ()
    """Where a sampled response ends besides EOS (task.stop): how its text is read, not how the
    model was trained, so not part of `keys` or its record."""

    @classmethod
    def of(cls, cfg: TaskConfig) -> PromptFormat:
        return cls(cfg.prompt_template, cfg.response_template, cfg.prompt_bos, tuple(cfg.stop))

    def prompt(self, question: str) -> str:
        return self.template.replace("{question}", question)

    def target(self, solution: str) -> str:
        return self.response.replace("{solution}", solution)

    def encode(self, tokenizer, text: str) -> list[int]:
        """Token ids of a prompt (or a prompt and the start of its response): BOS first with
        `bos`, as the engines encode text prompts (`inference.encode_prompt`)."""
        return encode_prompt(tokenizer, text, self.bos)

    def keys(self) -> dict[str, Any]:
        """The config keys that set this format, with their values."""
        return {"task.prompt_template": self.template, "task.response_template": self.response,
                "task.prompt_bos": self.bos}

    def files(self) -> dict[str, str]:
        """What a model folder trained here records of its format (FORMAT_FILE), for `check`."""
        return {FORMAT_FILE: json.dumps(self.keys(), indent=2) + "\n"}

    def check(self, folder: str | Path, key: str) -> None:
        """ConfigError where the model at `folder` (named by `key`) was trained here in another
        prompt format than this one: prompted otherwise it loses most of its accuracy
        (tests/test_sft.py). A folder without FORMAT_FILE (a hub model, an older run) passes."""
        path = Path(folder) / FORMAT_FILE
        if not path.is_file():
            return
        try:
            saved = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not a prompt format record ({e})") from None
        if not isinstance(saved, dict):
            raise ConfigError(f"{path}: not a prompt format record (a JSON object of task.* keys)")
        mine = self.keys()
        differ = [f"{k}: {saved[k]!r} there, {mine[k]!r} now" for k in mine if k in saved and saved[k] != mine[k]]
        if differ:
            raise ConfigError(f"{key}={folder} was trained in another prompt format ({'; '.join(differ)}); "
                              "give the settings it was trained with")


FORMAT_FILE = "prompt_format.json"


TINY_FORMAT = PromptFormat()
"""The tiny preset's format (task.prompt_template etc. at their defaults)."""


@dataclass
class Task:
    name: str
    train: list[dict[str, str]]
    """RL prompts (and SFT data when `sft` is not set apart)."""
    test: list[dict[str, str]]
    sft: list[dict] | None = None
    """SFT data of its own (generated tasks with `task.num_sft` > 0, loaded `with_sft`); None: SFT
    on `train`."""
    format: PromptFormat = TINY_FORMAT
    """The prompt and SFT target format (task.prompt_template, ...)."""
    validation: list[dict[str, str]] = field(default_factory=list)
    """Held-out train problems (task.num_validation), never RL prompts."""

    @property
    def sft_data(self) -> list[dict]:
        return self.train if self.sft is None else self.sft

    @property
    def answer_format(self) -> str:
        return ANSWER_FORMAT[self.name]

    def prompt(self, question: str) -> str:
        return self.format.prompt(question)


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
            raise ConfigError(f"task.ops: unknown operation(s) {bad}; choose from {list(_arith.OPS)}")
        changes["ops"] = tuple(cfg.ops)
    spec = replace(base, **changes)
    if not 1 <= spec.min_steps <= spec.max_steps:
        raise ConfigError(f"task.min_steps/max_steps: need 1 <= min_steps <= max_steps, got "
                         f"{spec.min_steps}, {spec.max_steps}")
    if spec.max_operand < 1:
        raise ConfigError(f"task.max_operand must be >= 1, got {spec.max_operand}")
    return spec


def load_task(cfg: TaskConfig, with_sft: bool = False, with_train: bool = True) -> Task:
    """Build or load the task named by `cfg.name`; `with_sft` also generates the SFT pool (when
    `task.num_sft` > 0), which only SFT needs; without `with_train` a hub task's train split is
    not loaded (left empty: evaluating the test split needs no train file or download)."""
    if cfg.name not in ANSWER_FORMAT:
        raise ConfigError(f"task.name: unknown task '{cfg.name}'; available: {', '.join(TASKS)}")
    if cfg.name in ("arith", "arith_hard"):
        spec = arith_spec(cfg)
        train, test = _arith.generate_splits(spec, cfg.num_train, cfg.num_test, cfg.seed, prefix=cfg.name)
        if not 0.0 <= cfg.flaw_rate <= 1.0:
            raise ConfigError(f"task.flaw_rate must be in [0, 1], got {cfg.flaw_rate}")
        if cfg.num_sft < 0:
            raise ConfigError(f"task.num_sft must be >= 0, got {cfg.num_sft}")
        if not cfg.flaw_ops or set(cfg.flaw_ops) - set(_arith.FLAW_OF):
            raise ConfigError(f"task.flaw_ops must be a non-empty list of {', '.join(_arith.FLAW_OF)}, "
                             f"got {cfg.flaw_ops}")
        if cfg.flaw_rate > 0 and cfg.num_sft == 0:
            raise ConfigError("task.flaw_rate applies to the SFT pool only: set task.num_sft > 0")
        sft = (_arith.generate_sft_pool(spec, cfg.num_sft, cfg.seed, {e["question"] for e in train},
                                        cfg.flaw_rate, prefix=cfg.name, flaw_ops=tuple(cfg.flaw_ops))
               if cfg.num_sft and with_sft else None)
    elif cfg.name == "math" and cfg.math_split == "prm800k":  # the paper's split (tasks/hub.py)
        test = math500(cfg.test_path)
        train = [] if not with_train else load_local(cfg.train_path, "math") if cfg.train_path else \
            prm800k_train(test, cfg.hub_name, cfg.hub_config)
        sft = None
    else:
        def split(name: str, path: str | None) -> list[dict[str, str]]:
            if path:
                return load_local(path, cfg.name)
            return load_hub(cfg.name, name, cfg.hub_name, cfg.hub_config)

        train, test = split("train", cfg.train_path) if with_train else [], split("test", cfg.test_path)
        sft = None
    if cfg.limit_test is not None:
        test = test[: cfg.limit_test]
    validation: list[dict[str, str]] = []
    if cfg.num_validation and with_train:
        if cfg.num_validation >= len(train):
            raise ConfigError(f"task.num_validation={cfg.num_validation} leaves no train problems (the task "
                              f"has {len(train)})")
        # A draw, not the last N: a dataset's order can be by subject (MATH's is).
        held = set(random.Random(cfg.seed).sample(range(len(train)), cfg.num_validation))
        validation = [e for i, e in enumerate(train) if i in held]
        train = [e for i, e in enumerate(train) if i not in held]
    return Task(cfg.name, train, test, sft, PromptFormat.of(cfg), validation)


__all__ = ["ANSWER_FORMAT", "DataError", "PROMPT", "TASKS", "TINY_FORMAT", "PromptFormat", "Task", "answer_format", "load_task"]
