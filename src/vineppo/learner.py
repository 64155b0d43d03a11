"""What the RL update trains, and how: the policy (and PPO's value network) in one module, stepped
by plain Adam in this process or by a DeepSpeed engine (ZeRO 2/3, optimizer offload, bf16) across
processes. The loop calls the same three methods either way: forward, step, save/load."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vineppo import checkpoint as ckpt
from vineppo.config import Config, ConfigError
from vineppo.distributed import (
    World,
    deepspeed_config,
    full_parameters,
    join_single_process_group,
    patient_group,
)
from vineppo.rollout import token_logprobs
from vineppo.tasks import PromptFormat

AUTOCAST_CHOICES = ("auto", "bfloat16")


def resolve_autocast(setting: str | None, device: torch.device) -> str | None:
    """`rl.autocast` for this machine: 'auto' is bfloat16 where the hardware has bf16 arithmetic
    (AVX512-BF16 or AMX on CPU, Ampere or later on GPU) and fp32 elsewhere, where emulated bf16
    would be slower than fp32."""
    if setting is None or setting == "bfloat16":
        return setting
    if setting != "auto":
        from vineppo.config import ConfigError

        raise ConfigError(f"rl.autocast: '{setting}' is not one of null, {', '.join(AUTOCAST_CHOICES)}")
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else None
    cpu = getattr(torch, "cpu", None)
    has_bf16 = any(getattr(cpu, probe, lambda: False)()
                   for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return "bfloat16" if device.type == "cpu" and has_bf16 else None


def autocast(device: torch.device, dtype: str | None):
    """`rl.autocast`: a torch.autocast context for `device` in `dtype`, or a no-op for None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, dtype))


def use_eager_attention(*models: nn.Module | None) -> None:
    """Eager attention for training under CPU autocast: there the bf16 flash-attention backward is
    about 4x slower than fp32's, while eager attention's bf16 matmuls are faster than either
    (`benchmarks/iteration_speed.py`)."""
    for model in models:
        if model is not None:
            model.set_attn_implementation("eager")


class PolicyForward(nn.Module):
    """The policy's training forward: log pi of each target token, in fp32."""

    def __init__(self, policy: nn.Module, autocast_dtype: str | None = None, shared_prefix: bool = True):
        super().__init__()
        self.policy, self.autocast_dtype, self.shared_prefix = policy, autocast_dtype, shared_prefix

    def forward(self, mb: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
        with autocast(mb["input_ids"].device, self.autocast_dtype):
            return token_logprobs(self.policy, mb, temperature, self.shared_prefix)


class ValueForward(nn.Module):
    """PPO's value network's training forward: V of each state, in fp32."""

    def __init__(self, value_model: nn.Module, autocast_dtype: str | None = None):
        super().__init__()
        self.value_model, self.autocast_dtype = value_model, autocast_dtype

    def forward(self, mb: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(mb["input_ids"].device, self.autocast_dtype):
            return self.value_model(mb).float()


class Learner(nn.Module):
    """The trained modules in one: the policy's forward and PPO's value network's, which one
    optimizer updates together or two DeepSpeed engines apart (`Updater`)."""

    def __init__(self, policy: nn.Module, value_model: nn.Module | None, autocast_dtype: str | None = None,
                 shared_prefix: bool = True):
        super().__init__()
        self.policy_forward = PolicyForward(policy, autocast_dtype, shared_prefix)
        self.value_forward = ValueForward(value_model, autocast_dtype) if value_model is not None else None

    @property
    def policy(self) -> nn.Module:
        return self.policy_forward.policy

    @property
    def value_model(self) -> nn.Module | None:
        return self.value_forward.value_model if self.value_forward is not None else None

    def forward(self, mb: dict[str, torch.Tensor], temperature: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log pi of each target token, V of each state or None), in fp32 either way."""
        logp = self.policy_forward(mb, temperature)
        return logp, (self.value_forward(mb) if self.value_forward is not None else None)


def param_groups(learner: Learner, value_learning_rate: float | None) -> list[dict[str, Any]]:
    """Adam's parameter groups: the policy's parameters at `rl.learning_rate` (the optimizer's
    default) and PPO's value network at `value_learning_rate` where one is given. The paper trains
    both at one rate; a value network whose scalar head starts at zero may need a larger one to
    track the returns within a short run (results/README.md, critic_lr_hard/)."""
    if value_learning_rate is not None and not value_learning_rate > 0:
        from vineppo.config import ConfigError

        raise ConfigError(f"rl.value_learning_rate must be > 0 (or null), got {value_learning_rate}")
    value_params = ({id(p) for p in learner.value_model.parameters()}
                    if learner.value_model is not None and value_learning_rate is not None else set())
    policy = [p for p in learner.parameters() if p.requires_grad and id(p) not in value_params]
    value = [p for p in learner.parameters() if p.requires_grad and id(p) in value_params]
    return [{"params": policy}] + ([{"params": value, "lr": value_learning_rate}] if value else [])


LR_SCHEDULES = ("constant", "warmup_decay")


def lr_factor(step: int, total: int, warmup_ratio: float) -> float:
    """rl.lr_schedule=warmup_decay: the factor on the learning rate of optimizer step `step`
    (0-based) of `total`. The authors' schedule, DeepSpeed's WarmupDecayLR with its defaults: a
    log-rate warm-up from 0 over ceil(warmup_ratio * total) steps, then a linear decay to 0 at
    `total`; DeepSpeed sets step s's rate after step s - 1, so the first two steps run at 0."""
    warmup = math.ceil(total * warmup_ratio)
    i = step - 1
    if i < 0:
        return 0.0
    if warmup >= 2 and i < warmup:  # (DeepSpeed divides by log(1) = 0 for a 1-step warm-up)
        return math.log(i + 1) / math.log(warmup)
    return min(1.0, max(0.0, (total - i) / max(1.0, total - warmup)))


CLIP_SCOPES = ("per_model", "joint")


def clip_groups(learner: Learner, scope: str) -> list[tuple[str, list[nn.Parameter]]]:
    """The parameter sets whose gradient norms are clipped each on its own, named by the metric that
    logs their norm: the policy and PPO's value network apart ('per_model', as separate actor and
    critic optimizers), or all together ('joint')."""
    if scope not in CLIP_SCOPES:
        raise ConfigError(f"rl.grad_clip_scope must be one of {', '.join(CLIP_SCOPES)}, got '{scope}'")
    trainable = [p for p in learner.parameters() if p.requires_grad]
    if scope == "joint" or learner.value_model is None:
        return [("train/grad_norm", trainable)]
    value = {id(p) for p in learner.value_model.parameters()}
    return [("train/grad_norm", [p for p in trainable if id(p) not in value]),
            ("train/grad_norm_value", [p for p in trainable if id(p) in value])]


def _on_cpu(obj: Any) -> Any:
    """A copy of `obj` (nested dicts, lists, tuples) with every tensor copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_on_cpu(v) for v in obj)
    return copy.deepcopy(obj)


def zero_shards(tag_dir: Path) -> int:
    """How many processes wrote a DeepSpeed checkpoint folder: ZeRO cuts the optimizer state into one
    shard per process (0: none, as in a universal checkpoint or under ZeRO-0)."""
    return len(list(Path(tag_dir).glob("*optim_states.pt")))


def zero3_written(tag_dir: Path) -> bool:
    """Whether ZeRO-3 wrote a DeepSpeed checkpoint folder: it cuts the weights into one model-states
    file per process too, where stages 1 and 2 write one whole `mp_rank_00_model_states.pt`."""
    return any(Path(tag_dir).glob("zero_pp_rank_*_model_states.pt"))


def _optimizer_state(tag_dir: Path) -> dict[str, Any]:
    """Rank 0's ZeRO optimizer state in a checkpoint folder: the wrapped optimizer's state dict
    (its 'state' and 'param_groups'), under the key of ZeRO-3 or of stages 1-2."""
    sd = torch.load(sorted(Path(tag_dir).glob("*optim_states.pt"))[0], map_location="cpu", weights_only=False,
                    mmap=True)  # its tensors (gigabytes at scale) stay on disk
    inner = sd["optimizer_state_dict"]
    return inner.get("optimizer_state_dict") or inner["base_optimizer_state"]


def _fresh_universal(tag_dir: Path, out: Path) -> None:
    """The universal checkpoint of a snapshot with no optimizer state yet (RestEM's fresh start):
    each parameter's fp32 weights, zero moments and step 0, which is exactly the state torch's
    Adam (and DeepSpeed's CPU Adam) starts from. ds_to_universal stops on an empty ZeRO-3 state."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    weights = get_fp32_state_dict_from_zero_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
    zero = out / "zero"
    model_states = sorted(tag_dir.glob("*model_states.pt"))[0]
    shapes = torch.load(model_states, map_location="cpu", weights_only=False, mmap=True)["param_shapes"]
    for name in (n for group in shapes for n in group):
        (zero / name).mkdir(parents=True)
        w = weights[name].float()
        for key, t in (("fp32", w), ("exp_avg", torch.zeros_like(w)), ("exp_avg_sq", torch.zeros_like(w))):
            torch.save({"param": t, "cat_dim": 0}, zero / name / f"{key}.pt")
        torch.save(torch.tensor(0.0), zero / name / "step.pt")
    torch.save({"param_groups": _optimizer_state(tag_dir)["param_groups"]}, zero / "optimizer_state.pt")
    shutil.copy2(model_states, out / model_states.name)


def _both_layouts(universal: Path) -> None:
    """A universal checkpoint (being written, in `universal`) as every ZeRO stage reads it:
    ds_to_universal writes the source stage's layout only. ZeRO-3 reads Adam's step and
    hyperparameters under `optimizer_state_dict` and its metadata from rank 0's model-states file;
    stages 1-2 read `param_groups` and the writing DeepSpeed's version at the top, each parameter's
    tensors shaped in a dict, its step.pt, and their one model-states file. From a ZeRO-3 source the
    tensors come flat and without a step."""
    import deepspeed

    zero = universal / "zero"
    sd = torch.load(zero / "optimizer_state.pt", weights_only=False)
    sd.setdefault("ds_version", deepspeed.__version__)
    if "optimizer_state_dict" not in sd:
        steps = sorted(zero.glob("*/step.pt"))
        state = {0: {"step": torch.load(steps[0], weights_only=False)}} if steps else {}
        sd["optimizer_state_dict"] = {"state": state, "param_groups": sd["param_groups"]}
    torch.save(sd, zero / "optimizer_state.pt")
    step = sd["optimizer_state_dict"]["state"].get(0, {}).get("step")
    names = [universal / "mp_rank_00_model_states.pt", universal / "zero_pp_rank_0_mp_rank_00_model_states.pt"]
    have = next(n for n in names if n.exists())
    for n in names:
        if not n.exists():
            try:
                os.link(have, n)  # one file under both names
            except OSError:  # a file system without hard links
                shutil.copy2(have, n)
    shapes = torch.load(have, map_location="cpu", weights_only=False, mmap=True)["param_shapes"]
    for name, shape in ((n, sh) for group in shapes for n, sh in group.items()):
        if (zero / name / "step.pt").exists():
            continue  # written for stages 1-2 already (read by ZeRO-3 as it is)
        for file in (zero / name).glob("*.pt"):  # a ZeRO-3 source's flat tensors
            t = torch.load(file, weights_only=False)
            if isinstance(t, torch.Tensor):
                torch.save({"param": t.view(shape), "cat_dim": 0}, file)
        if step is not None:
            torch.save(step, zero / name / "step.pt")


def to_universal(tag_dir: Path) -> Path:
    """DeepSpeed's universal checkpoint of the ZeRO checkpoint in `tag_dir`, written once beside it
    (`<tag>-universal`, atomically): the optimizer state per parameter, whole, which any number of
    processes under any ZeRO stage of 1-3 reads back (`Updater` loads it so). What resumes a run on
    another number of GPUs, or with more or less of its state sharded."""
    from argparse import Namespace

    from deepspeed.checkpoint import ds_to_universal

    out = tag_dir.with_name(f"{tag_dir.name}-universal")
    if out.is_dir():
        return out
    tmp = tag_dir.with_name(f"{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if not _optimizer_state(tag_dir)["state"]:
            _fresh_universal(tag_dir, tmp)
        else:
            # inject_missing_state: our engines' checkpoints carry no Megatron-style parallelism record.
            workers = min(8, os.cpu_count() or 1)
            ds_to_universal.main(Namespace(input_folder=str(tag_dir), output_folder=str(tmp),
                                           num_extract_workers=workers, num_merge_workers=workers,
                                           keep_temp_folder=False, strict=True, inject_missing_state=True))
            (tag_dir.parent / "latest_universal").unlink(missing_ok=True)  # it names the temporary folder
        _both_layouts(tmp)
    except Exception as e:  # a damaged or foreign checkpoint: say which, and that it is left as it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"{tag_dir}: converting it to DeepSpeed's universal checkpoint failed "
                           f"({type(e).__name__}: {e}); the checkpoint is left as it was: resume it on the "
                           f"{zero_shards(tag_dir)} process(es) and the ZeRO stage that wrote it") from e
    os.replace(tmp, out)
    return out


def saved_value_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    """PPO's value network as a checkpoint of `Updater.save` holds it, as `ValueModel`'s state dict:
    in state.pt, or in a DeepSpeed engine's shards, where `state.pt` has no copy (its fp32 master
    weights, gathered from every process's shard; under ZeRO-0 the module's own weights). The
    engine is the value network's own (rl.grad_clip_scope=per_model) or the whole learner's
    (joint). DeepSpeed's files are unpickled as DeepSpeed reads them, so read only your own runs'."""
    checkpoint = Path(checkpoint)
    state = ckpt.load_state(checkpoint)
    if "value_model" in state:
        return state["value_model"]
    engines = ((Updater.ENGINE_DIRS["value"], "value_model."), (Updater.ENGINE_DIRS["all"], "value_forward.value_model."))
    found = next(((f, p) for f, p in engines if (checkpoint / f / "state").is_dir()), None)
    if found is None:
        raise FileNotFoundError(f"{checkpoint} holds no value network (neither state.pt nor a DeepSpeed folder "
                                "has one): only PPO's checkpoints do")
    folder, prefix = found
    tag_dir = checkpoint / folder / "state"
    try:
        if zero_shards(tag_dir) or zero3_written(tag_dir):
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

            with contextlib.redirect_stdout(sys.stderr):  # its progress lines
                weights = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint / folder), tag="state",
                                                                   lazy_mode=True)
        else:
            weights = torch.load(tag_dir / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False,
                                 mmap=True)["module"]
        value = {name[len(prefix):]: t for name, t in weights.items() if name.startswith(prefix)}
        # (lazy_mode: each tensor is read from the shards as it is taken, not the policy's with it)
        value = {name: (t.contiguous() if hasattr(t, "contiguous") else t).float() for name, t in value.items()}
    except Exception as e:  # a damaged or foreign checkpoint: say which
        raise RuntimeError(f"{tag_dir}: reading the value network from DeepSpeed's files failed "
                           f"({type(e).__name__}: {e})") from e
    if not value:
        raise FileNotFoundError(f"{tag_dir} holds no value network (no parameter under '{prefix}'): "
                                "only PPO's checkpoints do")
    return value


class Updater:
    """Adam over the learner's parameters, with gradient-norm clipping by `clip_groups`; through
    DeepSpeed when `deepspeed.enabled` (which averages gradients over processes and shards optimizer
    state). There PPO's policy and value network get an engine each when they are clipped per
    model, as the paper's actor and critic do; otherwise one engine updates the whole learner."""

    def __init__(self, learner: Learner, cfg: Config, world: World, device: torch.device, micro_batch: int):
        self.learner, self.world, self.grad_clip = learner, world, cfg.rl.grad_clip
        self.files = PromptFormat.of(cfg.task).files()  # saved beside the policy in each checkpoint
        self.clip_groups = clip_groups(learner, cfg.rl.grad_clip_scope)
        groups = param_groups(learner, cfg.rl.value_learning_rate)
        self.zero_stage = cfg.deepspeed.zero_stage if cfg.deepspeed.enabled else 0
        self.engines: dict[str, Any] = {}  # by the loss each one backpropagates: 'policy', 'value' or 'all'
        if cfg.deepspeed.enabled:
            if world.world_size == 1:
                join_single_process_group()
            import deepspeed

            def engine(module: nn.Module, params: list[dict[str, Any]], lr: float):
                conf = deepspeed_config(cfg.deepspeed, cfg.rl.grad_clip, lr, micro_batch, world.world_size,
                                        device.type == "cuda")
                return deepspeed.initialize(model=module, model_parameters=params, config=conf)[0]

            if len(self.clip_groups) == 2:
                (_, policy_params), (_, value_params) = self.clip_groups
                self.engines = {"policy": engine(learner.policy_forward, [{"params": policy_params}],
                                                 cfg.rl.learning_rate),
                                "value": engine(learner.value_forward, [{"params": value_params}],
                                                cfg.rl.value_learning_rate or cfg.rl.learning_rate)}
            else:
                self.engines = {"all": engine(learner, groups, cfg.rl.learning_rate)}
        else:
            # One fused kernel over all parameters instead of a Python loop over them.
            self.optimizer = torch.optim.Adam(groups, lr=cfg.rl.learning_rate, fused=True)
        self.base_lrs = [g["lr"] for g in self._param_groups()]
        self.stepped = True  # no gradients of this updater's yet

    def _param_groups(self) -> list[dict[str, Any]]:
        """Every optimizer's parameter groups (DeepSpeed's engines' wrap their own)."""
        optimizers = [e.optimizer for e in self.engines.values()] or [self.optimizer]
        return [g for opt in optimizers for g in opt.param_groups]

    def set_lr_factor(self, factor: float) -> float:
        """Run the next steps at `factor` times each group's configured rate (rl.lr_schedule);
        returns the policy's rate."""
        for g, base in zip(self._param_groups(), self.base_lrs, strict=True):
            g["lr"] = base * factor
        return self.base_lrs[0] * factor

    @property
    def norm_names(self) -> list[str]:
        """The metrics `step` returns: each clip group's gradient norm before clipping (DeepSpeed's
        plain fp32 optimizer, without ZeRO or bf16, does not report it)."""
        if not self.engines:
            return [name for name, _ in self.clip_groups]
        return [name for (name, _), e in zip(self.clip_groups, self.engines.values(), strict=True)
                if hasattr(e.optimizer, "_global_grad_norm")]

    def __call__(self, mb: dict[str, torch.Tensor], temperature: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        if "policy" in self.engines:
            return self.engines["policy"](mb, temperature), self.engines["value"](mb)
        return self.engines.get("all", self.learner)(mb, temperature)

    def backward(self, losses: dict[str, torch.Tensor], last: bool = True) -> None:
        """Add the gradients of the sum of `losses` ('policy', and 'value' for PPO, whose gradients
        reach disjoint parameters) to those since the last `step` (rl.micro_batch_size's
        accumulation). Through DeepSpeed `last` marks the step's final pass, its gradient
        accumulation boundary; every process runs as many passes (ZeRO reduces in each)."""
        if not self.engines:
            if self.stepped:  # the first backward pass since the last step: drop the gradients it stepped with
                self.optimizer.zero_grad(set_to_none=True)
                self.stepped = False
            sum(losses.values()).backward()
            return
        for part, e in self.engines.items():
            e.set_gradient_accumulation_boundary(last)
            e.backward(sum(losses.values()) if part == "all" else losses[part])

    def step(self, losses: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
        """One optimizer step on the gradients of `losses` (`backward`), or on those accumulated since
        the last step; the gradient norms before clipping (`norm_names`)."""
        if losses is not None:
            self.backward(losses)
        if not self.engines:
            norms = {name: torch.nn.utils.clip_grad_norm_(params, self.grad_clip) for name, params in self.clip_groups}
            self.optimizer.step()
            self.stepped = True
            return {name: float(n) for name, n in norms.items()}
        for e in self.engines.values():
            e.step()
        reported = {name: e.get_global_grad_norm() for (name, _), e in zip(self.clip_groups, self.engines.values(),
                                                                           strict=True)}
        return {name: float(reported[name]) for name in self.norm_names}

    def snapshot(self, directory: Path, tag: str) -> Any:
        """The trainable state now (weights and optimizer), to go back to with `restore`: copies in
        CPU memory (the device holds no second copy), or with DeepSpeed each engine's own checkpoint
        under `directory` (every process writes its shards; DeepSpeed's load puts back the fp32
        master weights and the optimizer)."""
        if self.engines:
            for part, e in self.engines.items():
                e.save_checkpoint(str(directory / self.ENGINE_DIRS[part]), tag=tag)
            return tag
        return _on_cpu(([m.state_dict() for m in self._modules()], self.optimizer.state_dict()))

    def initial(self, directory: Path, init: Callable[[], nn.Module] | None = None) -> Any:
        """A snapshot of a fresh start (the starting weights, an optimizer without state), for
        `restore`: RestEM fine-tuning rl.init afresh each iteration. Taken before `load`; `init`
        gives the starting model where this one was resumed from a checkpoint. With DeepSpeed it is
        written once, at the run's start, under `directory`, where a resumed run finds it."""
        if self.engines:
            if init is None:
                return self.snapshot(directory, "init")
            missing = [str(directory / d / "init") for d in {self.ENGINE_DIRS[p] for p in self.engines}
                       if not (directory / d / "init").is_dir()]
            if missing:
                raise ConfigError(f"{missing[0]} is missing: the run's fresh start (rl.restem_from=init), "
                                  "written when it began, is needed to continue it; start a new run_name")
            return "init"
        start = init() if init is not None else self.learner.policy
        return ([_on_cpu(start.state_dict())], _on_cpu(self.optimizer.state_dict()))

    def restore(self, directory: Path, snapshot: Any) -> None:
        """Back to the state `snapshot` recorded (then sync the rollout engine: loop.sync_engine)."""
        if self.engines:
            self._load_engines(directory, snapshot)
            return
        states, optimizer = snapshot
        for m, state in zip(self._modules(), states, strict=True):
            m.load_state_dict(state)
        self.optimizer.load_state_dict(optimizer)

    def _load_engines(self, directory: Path, tag: str) -> None:
        """Each engine's checkpoint `tag` under `directory`. One written by another number of
        processes (its ZeRO shards), or under ZeRO-3 and read under stage 1 or 2 or the other way
        round (ZeRO-3 cuts the weights too), is read as DeepSpeed's universal checkpoint, converted
        once by the first process (`to_universal`)."""
        for part, e in self.engines.items():
            tag_dir = directory / self.ENGINE_DIRS[part] / tag
            shards = zero_shards(tag_dir)
            written3, reading3 = zero3_written(tag_dir), self.zero_stage == 3
            universal = shards not in (0, self.world.world_size) or (shards > 0 and written3 != reading3)
            if universal:
                waiting = patient_group() if self.world.world_size > 1 else None  # the others wait as it converts
                if self.world.is_main:
                    stages = "" if written3 == reading3 else \
                        f" under {'ZeRO-3' if written3 else 'ZeRO-1/2'}, read under ZeRO-{self.zero_stage}"
                    print(f"{tag_dir}: written by {shards} process(es){stages}, read by {self.world.world_size} "
                          "as DeepSpeed's universal checkpoint", file=sys.stderr, flush=True)
                    to_universal(tag_dir)
                self.world.barrier(waiting)
                tag_dir = tag_dir.with_name(f"{tag}-universal")
                if not any((tag_dir / "zero").glob("*/exp_avg.pt")):
                    # A fresh start converted before `_fresh_universal` wrote its zero moments
                    # (weights only): DeepSpeed's universal load keeps the moments it finds no file
                    # for, where a plain load drops them.
                    e.optimizer.optimizer.state.clear()
            # DeepSpeed reads the universal layout where its config says so; only for this load.
            e._config.load_universal_checkpoint = universal
            own = [{k: v for k, v in g.items() if k != "params"} for g in e.optimizer.param_groups]
            try:
                e.load_checkpoint(str(tag_dir.parent), tag=tag_dir.name)
            finally:
                e._config.load_universal_checkpoint = False
            # Adam on the CPU (offload) and torch's Adam read each other's state; each keeps the
            # settings of its own that the other's groups lack (CPU Adam's bias_correction).
            for group, settings in zip(e.optimizer.param_groups, own, strict=True):
                for k, v in settings.items():
                    group.setdefault(k, v)

    def _modules(self) -> list[nn.Module]:
        """The trained modules: the policy, and PPO's value network."""
        value = self.learner.value_model
        return [self.learner.policy] + ([value] if value is not None else [])

    ENGINE_DIRS = {"all": "deepspeed", "policy": "deepspeed", "value": "deepspeed_value"}
    """Where each DeepSpeed engine keeps its per-process shards inside a checkpoint."""

    def save(self, directory: Path, step: int, tokenizer, state: dict[str, Any], keep: int) -> None:
        """Checkpoint `directory/step-N`: the policy in HF format, `state.pt`, and the optimizer
        (in `state.pt`, or each DeepSpeed engine's per-process shards in `ENGINE_DIRS`); committed
        atomically once every process has written its part."""
        world = self.world
        if world.is_main:
            ckpt.staging_dir(directory, step)
        world.barrier()
        tmp = ckpt.staging_path(directory, step)
        for part, e in self.engines.items():
            e.save_checkpoint(str(tmp / self.ENGINE_DIRS[part]), tag="state")
        if not self.engines:
            state = {**state, "optimizer": self.optimizer.state_dict()}
            if self.learner.value_model is not None:
                state["value_model"] = self.learner.value_model.state_dict()
        with full_parameters(self.learner.policy, self.zero_stage):
            if world.is_main:
                ckpt.write_model_and_state(tmp, step, self.learner.policy, tokenizer, state, self.files)
        world.barrier()
        if world.is_main:
            ckpt.commit_checkpoint(directory, step, keep)
            # A universal conversion served the resume from the checkpoint it sits in; the newer
            # checkpoint is in this run's own layout, so the conversion's gigabytes go.
            for converted in directory.glob("step-*/deepspeed*/*-universal"):
                if converted.parent.parent.name != f"step-{step}":
                    shutil.rmtree(converted, ignore_errors=True)
        world.barrier()

    def load(self, checkpoint: Path, state: dict[str, Any]) -> None:
        """Restore the optimizer (and value network) saved by `save`; the policy's weights were
        loaded from the checkpoint's HF folder already (DeepSpeed reloads its fp32 master copy).
        A checkpoint written with another engine layout is refused by name, before DeepSpeed reads it."""
        if self.engines:
            if not (checkpoint / "deepspeed").exists():
                raise FileNotFoundError(f"{checkpoint} has no deepspeed/ folder: it was written by a run "
                                        "without DeepSpeed; resume it with deepspeed.enabled=false")
            split = (checkpoint / self.ENGINE_DIRS["value"]).exists()
            if split != ("value" in self.engines):
                written, scope = (("separate policy and value engines", "per_model") if split
                                  else ("one DeepSpeed engine for policy and value network", "joint"))
                raise ConfigError(f"{checkpoint} was written with {written}; resume it with "
                                  f"rl.grad_clip_scope={scope}")
            self._load_engines(checkpoint, "state")
            return
        if "optimizer" not in state:
            raise FileNotFoundError(f"{checkpoint}/state.pt has no optimizer state: it was written by a "
                                    "DeepSpeed run; resume it with deepspeed.enabled=true")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.learner.value_model is not None:
            self.learner.value_model.load_state_dict(state["value_model"])
