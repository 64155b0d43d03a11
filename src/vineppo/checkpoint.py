"""Atomic checkpoints and exact resume.

A checkpoint is a folder `checkpoints/step-N/` holding the model and tokenizer in HF format plus
`state.pt` (optimizer, scheduler, RNG states, step, anything the loop needs). It is written under a
temporary name and renamed when complete, so a folder named `step-N` is always whole.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # numpy's key array as a plain list, so that state.pt holds only what torch.load(weights_only=True)
    # reads without running any code the file names (load_state).
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), pos, has_gauss, cached),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(directory: str | Path, step: int, model, tokenizer, state: dict[str, Any],
                    keep: int = 2, files: dict[str, str] | None = None) -> Path:
    """Write `directory/step-{step}` atomically (with `files`, name -> text, beside the model) and
    keep only the newest `keep` checkpoints."""
    tmp = staging_dir(directory, step)
    write_model_and_state(tmp, step, model, tokenizer, state, files)
    return commit_checkpoint(directory, step, keep)


def staging_path(directory: str | Path, step: int) -> Path:
    """Where checkpoint `step-N` is written before its commit renames it into place."""
    return Path(directory) / f".tmp-step-{step}"


def staging_dir(directory: str | Path, step: int) -> Path:
    """An empty `.tmp-step-N` folder that becomes `step-N` on commit (the parts of a checkpoint that
    several processes write, e.g. DeepSpeed's optimizer shards, go here before the commit)."""
    tmp = staging_path(directory, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_model(tmp: Path, model, tokenizer, files: dict[str, str] | None = None) -> None:
    """The model, tokenizer and `files` (name -> text, e.g. the prompt format it is trained in)."""
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)


def write_model_and_state(tmp: Path, step: int, model, tokenizer, state: dict[str, Any],
                          files: dict[str, str] | None = None) -> None:
    write_model(tmp, model, tokenizer, files)
    torch.save({"step": step, "rng": rng_state(), **state}, tmp / "state.pt")


def commit_checkpoint(directory: str | Path, step: int, keep: int) -> Path:
    """Rename the staged `.tmp-step-N` to `step-N`, then keep only the newest `keep` checkpoints."""
    directory = Path(directory)
    final = directory / f"step-{step}"
    shutil.rmtree(final, ignore_errors=True)
    staging_path(directory, step).rename(final)
    for old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    directory = Path(directory)
    if not directory.exists():
        return []
    found = [p for p in directory.glob("step-*") if p.is_dir() and (p / "state.pt").exists()]
    return sorted(found, key=checkpoint_step)


def checkpoint_step(checkpoint: str | Path) -> int:
    """N of a `step-N` folder: the iterations (or SFT steps) done when it was saved."""
    return int(Path(checkpoint).name.split("-")[1])


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def export_model(checkpoint: str | Path, path: str | Path) -> Path:
    """`path` (e.g. an RL run's final/): the model and tokenizer files of `checkpoint`, without its
    training state (state.pt, DeepSpeed shards), as a folder AutoModelForCausalLM loads. Files are
    hard links where the file system allows (no second copy of a 7B model's weights; a checkpoint
    file is never rewritten in place, so the link stays the checkpoint's content), copies elsewhere;
    the folder is renamed into place when whole."""
    checkpoint, path = Path(checkpoint), Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in sorted(checkpoint.iterdir()):
        if f.is_file() and f.name != "state.pt":
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


# What checkpoints written before rng_state kept numpy's key array as a list need besides tensors
# and plain containers: numpy's array and dtype reconstruction, nothing that runs other code.
NUMPY_ARRAY = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load_state(checkpoint: str | Path) -> dict[str, Any]:
    """state.pt, unpickled with weights_only=True: a checkpoint from elsewhere cannot run code here."""
    with torch.serialization.safe_globals(NUMPY_ARRAY):
        return torch.load(Path(checkpoint) / "state.pt", weights_only=True)


def save_model_atomic(path: str | Path, model, tokenizer, files: dict[str, str] | None = None) -> Path:
    """Save a model (and tokenizer, and `files`) folder atomically, e.g. a run's final SFT checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_model(tmp, model, tokenizer, files)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path
