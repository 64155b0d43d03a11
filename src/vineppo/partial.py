"""Checkpoints inside an iteration (rl.save_every_steps).

A RestEM or DPO+ iteration at paper scale is hours long (slurm/README.md), and the loop's regular
checkpoints fall at iteration ends, so a job stopped inside one would redo it. A partial
checkpoint of iteration i is two things under `.partial/iteration-i/`: `data.pt`, the iteration's
samples as tensors with their log-probs, advantages and training units (written once, before
the first update), and `step-G/`, a regular checkpoint (`Updater.save`) of the trained state after
G gradient steps of the run, whose state.pt holds `within`: where in the iteration it is (epoch,
steps into it, the mini-batch order's generator at the epoch's start) and the per-process sums
the iteration's record is made of. Resumed from it, the loop takes the iteration from there and
logs what an uninterrupted run logs (tests/test_partial.py), on the number of processes that
wrote it or on another (`share`; the optimizer's shards through learner.to_universal).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from vineppo import checkpoint as ckpt

FOLDER = ".partial"


def iteration_dir(run_path: Path, iteration: int) -> Path:
    """Where iteration `iteration` (1-based: the one in progress) keeps its partial checkpoints."""
    return Path(run_path) / FOLDER / f"iteration-{iteration}"


def save_data(run_path: Path, iteration: int, data: dict[str, Any]) -> None:
    """The iteration's samples and what was computed from them, written atomically."""
    folder = iteration_dir(run_path, iteration)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".tmp-data.pt"
    with open(tmp, "wb") as f:  # on disk before the rename makes it data.pt (as runio's writes)
        torch.save(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / "data.pt")


def load_data(run_path: Path, iteration: int) -> dict[str, Any]:
    """`save_data`'s dict, read with weights_only=True (tensors and plain containers only)."""
    return torch.load(iteration_dir(run_path, iteration) / "data.pt", weights_only=True)


def latest(run_path: Path, iterations_done: int) -> tuple[int, Path] | None:
    """The newest whole partial checkpoint of an iteration after `iterations_done` (the last
    regular checkpoint's), as (iteration, checkpoint folder); None if there is none."""
    root = Path(run_path) / FOLDER
    found = []
    for folder in root.glob("iteration-*") if root.exists() else []:
        it = int(folder.name.split("-")[1])
        last = ckpt.latest_checkpoint(folder)
        if it > iterations_done and last is not None and (folder / "data.pt").exists():
            found.append((it, ckpt.checkpoint_step(last), last))
    return max(found)[0::2] if found else None


def share(per_process: list[dict[str, Any]], rank: int, world_size: int) -> dict[str, Any]:
    """Process `rank`'s part of the iteration's running sums (each process's losses and counts,
    added over processes when the iteration is logged), from a partial checkpoint's parts. Written
    by another number of processes (a job requeued on fewer or more GPUs), process 0 takes up
    their total and the others start from zero: the logged sum over processes is the same."""
    if len(per_process) == world_size:
        return per_process[rank]

    def total(parts: list[Any]) -> Any:
        if isinstance(parts[0], dict):
            return {k: total([p[k] for p in parts]) for k in parts[0]}
        return sum(parts) if rank == 0 else 0.0 * parts[0]

    return total(per_process)


def clear(run_path: Path, up_to: int) -> None:
    """Remove the partial checkpoints of iterations up to `up_to`: a later checkpoint replaces them."""
    root = Path(run_path) / FOLDER
    for folder in root.glob("iteration-*") if root.exists() else []:
        if int(folder.name.split("-")[1]) <= up_to:
            shutil.rmtree(folder, ignore_errors=True)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
