"""Data parallelism for RL: one process per GPU (or per CPU core with gloo), DeepSpeed ZeRO for the update.

Processes are started by `torchrun`/`deepspeed` on a machine, or by a Slurm allocation through
submitit (`launch.py` exports the same variables: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT). A process with none of them is world size 1 and never touches torch.distributed.

What each process does in an iteration (see loop.py):
- rollouts: the iteration's prompts are cut into `rl.rollout_shards` shards; process r generates
  (and for VinePPO, estimates MC values for) shards r, r + W, ...; then every process gathers all
  episodes, in shard order. A shard's samples depend only on (seed, iteration, shard), so the same
  `rollout_shards` gives the same episodes on 1, 2 or 8 processes.
- old / reference log-probs and PPO's values: the iteration's no-grad passes are cut into chunks
  and process r computes chunks r, r + W, ...; a sum over processes then gives every process the
  whole result (each entry computed once, the others adding zeros), so the passes cost 1/W each
  instead of being repeated on every process. Under ZeRO-3 a sharded module's forward is collective
  (each layer gathers its weights from every process), so there every process must run the same
  number of forwards of the same shape of call: each runs as many chunks as the busiest one (a
  spare one runs a chunk again and drops it), and every forward takes the shared-prefix path only
  where every process's batch would (`shared_prefix.lockstep`), in these passes and in the update.
- update: each mini-batch (the same permutation on every process) is split across processes, and
  each process's loss is weighted by its share of the mini-batch's tokens (or pairs), so the
  averaged gradient equals the single-process gradient of the whole mini-batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as torch_dist

from vineppo.config import ConfigError, DeepSpeedConfig


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    """Processes on this node (they share its RAM)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """`auto`/`cuda` -> this process's GPU (cuda:LOCAL_RANK among the visible ones) when there is
        one, else the CPU."""
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        require_cuda(name)
        if name == "cuda":  # a task that sees only its own GPU (Slurm via launch.py) has it as cuda:0
            index = self.local_rank % torch.cuda.device_count()
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
        return torch.device(name)

    def barrier(self, group: Any = None) -> None:
        """Every process waits for the others (in `group`: a `patient_group`, for a long wait)."""
        if self.world_size > 1:
            torch_dist.barrier(group=group)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order, on every process (picklable objects)."""
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(out, obj)
        return out

    def sum_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of a tensor over processes (in place; returned for convenience). NCCL
        reduces GPU tensors only: a host tensor makes the trip through this process's GPU."""
        if self.world_size > 1:
            if torch_dist.get_backend() == "nccl" and t.device.type != "cuda":
                t.copy_(self.sum_tensor(t.to(torch.cuda.current_device())))
            else:
                torch_dist.all_reduce(t)
        return t

    def all(self, flag: bool) -> bool:
        """True on every process if `flag` is true on every process (one all-reduce)."""
        if self.world_size == 1:
            return flag
        return self.sum([float(flag)])[0] == self.world_size

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of a list of floats over processes."""
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64,
                         device="cuda" if torch_dist.get_backend() == "nccl" else "cpu")
        torch_dist.all_reduce(t)
        return t.tolist()


def patient_group(timeout: timedelta = timedelta(hours=6)) -> Any:
    """A gloo group of every process whose collectives wait up to `timeout`: for a barrier at which
    one process works alone for long (converting a checkpoint, tens of minutes at 7B size), beyond
    the default group's timeout (DeepSpeed's 30 minutes, after which the job is ended and, requeued,
    would convert again). All processes create it together, before the long work starts."""
    return torch_dist.new_group(backend="gloo", timeout=timeout)


def require_cuda(device: str) -> None:
    """A ConfigError naming `device` where it asks for a GPU that torch cannot see (instead of
    torch's assertion deep inside the first tensor moved there)."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        why = "a build without CUDA" if torch.version.cuda is None else "no GPU visible"
        raise ConfigError(f"device={device}: torch {torch.__version__} sees no CUDA GPU here ({why}); "
                          "use device=cpu or device=auto")


def init_world() -> World:
    """This process's place, from the launcher's environment; joins the process group if W > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return World()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    # torchrun, DeepSpeed's launcher and submitit export it; without it, count them all on this node.
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    if not torch_dist.is_initialized():
        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's CPU accelerator (gloo)
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return World(rank, world_size, local_rank, local_world_size)


def join_single_process_group() -> None:
    """DeepSpeed needs a process group even for one process; make a private one on a free local
    port (DeepSpeed's default, port 29500, would clash between runs sharing a machine). One process
    started by a launcher (`torchrun --nproc_per_node=1`) joins the group it set up instead: under
    torchrun a group on a port of its own waits forever for torchrun's store. A launcher exports
    WORLD_SIZE with MASTER_ADDR/MASTER_PORT; those two alone (left exported in a shell) are not one,
    and two runs on a machine would clash on that port."""
    if torch_dist.is_initialized():
        return
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if all(key in os.environ for key in ("WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        torch_dist.init_process_group(backend, init_method="env://", world_size=1, rank=0)
        return
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(key, value)  # DeepSpeed reads these
    torch_dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", world_size=1, rank=0)


def shards_of(world: World, num_shards: int) -> list[int]:
    """The rollout shards this process generates."""
    if num_shards < world.world_size:
        raise ConfigError(f"rl.rollout_shards={num_shards} is fewer than the {world.world_size} processes")
    return list(range(world.rank, num_shards, world.world_size))


def deepspeed_config(ds: DeepSpeedConfig, grad_clip: float, learning_rate: float, micro_batch: int,
                     world_size: int, on_gpu: bool) -> dict[str, Any]:
    """The DeepSpeed config of the RL update: Adam (the loop's optimizer), ZeRO stage, offload, bf16."""
    if ds.zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"deepspeed.zero_stage must be 0, 1, 2 or 3, got {ds.zero_stage}")
    choice = str(ds.bf16).lower()
    if choice not in ("auto", "true", "false"):
        raise ConfigError(f"deepspeed.bf16 must be auto, true or false, got '{ds.bf16}'")
    bf16 = on_gpu if choice == "auto" else choice == "true"
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    adam: dict[str, Any] = {"lr": learning_rate, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}
    if ds.offload_optimizer:
        if ds.zero_stage == 0:
            raise ConfigError("deepspeed.offload_optimizer needs deepspeed.zero_stage >= 1")
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    else:
        adam["torch_adam"] = True  # torch.optim.Adam: the same update as a run without DeepSpeed
    return {
        "train_micro_batch_size_per_gpu": max(micro_batch, 1), "gradient_accumulation_steps": 1,
        "train_batch_size": max(micro_batch, 1) * world_size,
        "gradient_clipping": grad_clip, "zero_optimization": zero, "bf16": {"enabled": bf16},
        "optimizer": {"type": "Adam", "params": adam}, "steps_per_print": 10**9, "wall_clock_breakdown": False,
    }


@contextmanager
def full_parameters(module: torch.nn.Module, zero_stage: int) -> Iterator[torch.nn.Module]:
    """`module` with every parameter whole on this process: ZeRO-3 gathers its shards (all
    processes must enter together); other stages hold whole parameters already."""
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            yield module
    else:
        with nullcontext():
            yield module
