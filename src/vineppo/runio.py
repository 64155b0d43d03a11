"""Run folders and atomic writes: a killed process never leaves a half-written file that looks whole.

Whole files are written to a temporary name in the same folder, fsynced, then renamed over the
target (`os.replace` is atomic on POSIX). Metrics are JSON lines written with one `write` each; a
reader drops a final line without its newline (the only thing a kill can leave).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; a trailing partial line (a killed writer) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # the last element is '' when the file ends with a newline
    return [json.loads(line) for line in complete if line.strip()]


def truncate_jsonl(path: str | Path, keep: int) -> None:
    """Keep the first `keep` records (resume drops metrics logged after the last checkpoint)."""
    records = read_jsonl(path)[:keep]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


class RunDir:
    """One folder per run: config.yaml, metrics.jsonl, checkpoints/, eval/, final/."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        return self.path / "final"

    def eval_file(self, name: str) -> Path:
        return self.path / "eval" / f"{name}.json"

    def log(self, record: dict[str, Any]) -> None:
        append_jsonl(self.metrics, record)


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the code that ran (recorded in run folders and results), "-dirty" when a tracked
    file outside results/ differs from it or a new, not ignored .py / .sh file is there (a script not
    yet committed): rewriting reference outputs, or writing run folders, is not a code change."""
    import subprocess

    cwd = where or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=cwd)
        if out.returncode != 0:
            return None
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=5,
                             cwd=cwd).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                  ":(exclude)results"], capture_output=True, text=True, timeout=5,
                                 cwd=top or cwd).stdout.strip()
        # New code only: run folders written outside runs/ are untracked too, and are not code.
        new_code = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", "*.py", "*.sh",
                                   ":(exclude)results"], capture_output=True, text=True, timeout=5,
                                  cwd=top or cwd).stdout.strip()
        return out.stdout.strip() + ("-dirty" if changed or new_code else "")
    except (OSError, subprocess.SubprocessError):
        return None
