"""The policy-iteration loop, written once for every method.

Each iteration: sample prompts -> generate episodes -> grade -> what differs per method (PPO,
VinePPO, GRPO, RLOO: advantages for the clipped PPO objective + k3 KL; RestEM: the correct
responses for NLL; DPO+: correct/incorrect pairs) -> E epochs of mini-batch updates -> log,
evaluate, checkpoint. Everything random is seeded by (seed, iteration), so a run resumed from a
checkpoint continues exactly as an uninterrupted one would; with rl.save_every_steps, from inside an
iteration too (partial.py). With several processes (DeepSpeed),
rollouts and each mini-batch are split between them; see distributed.py.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vineppo import checkpoint as ckpt
from vineppo import partial
from vineppo import shared_prefix as prefix
from vineppo.algorithms import dpo_plus, grpo, ppo, restem, rloo, vineppo
from vineppo.algorithms.advantages import masked_mean, value_fit, whiten
from vineppo.algorithms.losses import k3_kl, ppo_policy_loss, value_loss
from vineppo.config import Config, ConfigError, RLConfig, check_unchanged, check_values, load_config, to_yaml
from vineppo.distributed import World, full_parameters, init_world, require_cuda, shards_of
from vineppo.evaluate import (
    correct_bits,
    correct_counts,
    evaluate,
    log_fields,
    record_bits,
    rewards,
    summarise,
)
from vineppo.grading import pop_timeouts, set_timeout, set_workers
from vineppo.inference import Completion, SamplingParams, make_engine
from vineppo.learner import (
    Learner,
    Updater,
    autocast,
    lr_factor,
    resolve_autocast,
    use_eager_attention,
)
from vineppo.memory import (
    available_bytes,
    check_run_fits,
    dtype_bytes,
    episodes_bytes,
    estimate,
    model_shape,
    vllm_bytes,
)
from vineppo.models import check_source, enable_gradient_checkpointing, load_model, load_tokenizer
from vineppo.rollout import Episode, chunked, collate_episodes, response_tokens, token_logprobs, trim_padding
from vineppo.runio import RunDir, atomic_write_json, atomic_write_text, git_commit, read_jsonl, truncate_jsonl
from vineppo.tasks import TINY_FORMAT, PromptFormat, load_task

ALGOS = ("ppo", "vineppo", "grpo", "rloo", "restem", "dpo_plus")
PPO_FAMILY = ("ppo", "vineppo", "grpo", "rloo")
# What a resumed (or extended) run may change: how long it trains, how often it evaluates and
# saves, and where and how fast it runs. Anything else would splice two different runs into one.
RESUME_FREE = ("rl.iterations", "rl.eval_every", "rl.save_every", "rl.save_every_steps", "rl.keep_checkpoints",
               "rl.rollout_batch_size", "eval.batch_size", "output_dir", "run_name", "device", "num_threads",
               "task.grade_timeout_s", "task.grade_workers", "sft.", "model.gradient_checkpointing",
               "rl.micro_batch_size", "deepspeed.zero_stage", "deepspeed.offload_optimizer")
"""Keys a resumed run may change: cadence, where it runs, and what does not change its numbers
(gradient checkpointing, micro-batches, a ZeRO stage of 1-3 and optimizer offload give the same
updates, tests/test_loop.py and tests/test_distributed.py, so a run may turn them on to fit)."""


def check_resume(run: RunDir, cfg: Config, step: int) -> None:
    """Refuse to continue a run to a step count below the one it has reached, or under settings
    that would change what it computes."""
    if step > cfg.rl.iterations:
        raise ConfigError(f"{run.path} has reached iteration {step}; rl.iterations={cfg.rl.iterations} would "
                          f"end it before that (give rl.iterations >= {step}, or a new run_name)")
    # The run-long schedule decays to 0 at the last iteration: another rl.iterations is another run.
    whole_run = cfg.rl.lr_schedule == "warmup_decay" and cfg.rl.algo in PPO_FAMILY
    check_unchanged(run.config, cfg, tuple(k for k in RESUME_FREE if not (whole_run and k == "rl.iterations")))
    # ZeRO stages 1-3 checkpoint Adam's state in shards that any of them reads back (learner.py); ZeRO-0 does not.
    if not run.config.exists():
        return
    was, now = load_config(run.config).deepspeed, cfg.deepspeed
    if was.enabled and now.enabled and was.zero_stage != now.zero_stage and 0 in (was.zero_stage, now.zero_stage):
        raise ConfigError(f"{run.path} was trained with deepspeed.zero_stage={was.zero_stage}; it resumes under "
                          f"stages 1-3 only from stages 1-3 (give deepspeed.zero_stage={was.zero_stage}, "
                          "or a new run_name)")


def resumed_shards(recorded: int | None, world: World, resume: Path) -> int:
    """The rollout shards of a run resumed with rl.rollout_shards=0 (one per process): the number
    it sampled in so far (each shard has its own seed, so the same shards draw the same episodes on
    any number of processes), where there are at least as many as processes now; else one per
    process, other episodes than the run would have drawn, as a message says."""
    if recorded is None or recorded == world.world_size:  # (checkpoints before it was recorded: as before)
        return world.world_size
    if recorded >= world.world_size:
        if world.is_main:
            print(f"{resume}: sampled in {recorded} rollout shards; {world.world_size} process(es) keep them "
                  "(rl.rollout_shards=0)", file=sys.stderr, flush=True)
        return recorded
    if world.is_main:
        print(f"{resume}: sampled in {recorded} rollout shards, fewer than the {world.world_size} processes: "
              f"{world.world_size} from here, so later iterations draw other episodes than a run on "
              f"{recorded} process(es) would", file=sys.stderr, flush=True)
    return world.world_size


def check_finite(name: str, x: torch.Tensor, iteration: int, run: RunDir) -> None:
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"{name} is not finite at iteration {iteration}; the last good "
                                 f"checkpoint is kept in {run.checkpoints}")


def minibatch_loss(rl: RLConfig, logp: torch.Tensor, values: torch.Tensor | None, mb: dict[str, torch.Tensor],
                   old_logp: torch.Tensor, ref_logp: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The method's loss on one mini-batch, from the learner's log-probs (and values), by the model
    it trains: 'policy', and PPO's 'value' (the updater steps on their sum). `ref_logp` is None for
    the methods without a KL penalty (RestEM, DPO+)."""
    logs: dict[str, float] = {}
    if ref_logp is not None:
        kl = masked_mean(k3_kl(logp, ref_logp), mb["mask"])
        logs["loss/kl"] = kl.item()
    if rl.algo == "restem":
        loss = restem.loss(logp, mb["mask"])
    elif rl.algo == "dpo_plus":
        loss = dpo_plus.loss(logp, old_logp, mb["mask"], rl.dpo_beta, rl.dpo_nll_coef, rl.dpo_positive_lambda)
    else:
        loss, stats = ppo_policy_loss(logp, old_logp, mb["advantages"], mb["mask"], rl.clip)
        logs["loss/clip_fraction"] = stats["clip_fraction"]
    logs["loss/policy"] = loss.item()
    if rl.algo in PPO_FAMILY:
        loss = loss + rl.kl_coef * kl
    losses = {"policy": loss}
    if values is not None:
        losses["value"] = value_loss(values, mb["old_values"], mb["returns"], mb["mask"], rl.value_clip)
        logs["loss/value"] = losses["value"].item()
    return losses, logs


def minibatches(units: list[tuple[int, ...]], per_step: int, gen: torch.Generator,
                seq_len: list[int] | None) -> list[list[int]]:
    """One epoch's mini-batches of unit indices: a random permutation cut in order; with `seq_len`
    (each episode's length), the shuffled units sorted by length first and the mini-batches then
    taken in random order, so a mini-batch pads to a length close to its own episodes'."""
    perm = torch.randperm(len(units), generator=gen).tolist()
    if seq_len is not None:
        perm.sort(key=lambda u: max(seq_len[j] for j in units[u]))  # stable: equal lengths stay shuffled
    cut = [perm[i:i + per_step] for i in range(0, len(perm), per_step)]
    if seq_len is not None:
        cut = [cut[k] for k in torch.randperm(len(cut), generator=gen).tolist()]
    return cut


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def loss_items(algo: str, mask: torch.Tensor) -> float:
    """What the method's loss averages over in a mini-batch: response tokens, or DPO+'s pairs."""
    return mask.shape[0] / 2 if algo == "dpo_plus" else float(mask.sum().clamp(min=1))


def longest_prompt(task, tokenizer) -> int:
    """Tokens in the task's longest RL prompt."""
    return max(len(ids) for ids in tokenizer([task.prompt(e["question"]) for e in task.train])["input_ids"])


def memory_parts(cfg: Config, prompt_tokens: int, train_problems: int, device: torch.device, num_processes: int,
                 gpu_bytes: int | None = None) -> tuple[dict[str, int], int]:
    """What an RL run of `cfg` holds on each of its `num_processes` devices, by part
    (`memory.estimate`), and the bytes of the iteration's episodes each holds in host memory: from
    rl.init's config alone (no weights loaded), the longest prompt's tokens and the number of RL
    problems. `gpu_bytes`: the GPU's memory, where it is not this machine's (`vineppo memory`)."""
    rl = cfg.rl
    n_params, hidden, layers, vocab = model_shape(rl.init)
    episodes = (rl.prompts_per_iter or train_problems) * rl.samples_per_prompt
    vllm_share = (vllm_bytes(device, cfg.vllm_memory, n_params * dtype_bytes(cfg.model.dtype), total=gpu_bytes)
                  if cfg.engine == "vllm" else None)
    parts = estimate(n_params, hidden, layers, dtype=cfg.model.dtype, algo=rl.algo, engine=cfg.engine,
                     minibatch_size=rl.minibatch_size, max_length=cfg.model.max_length,
                     micro_batch_size=rl.micro_batch_size,
                     zero_stage=cfg.deepspeed.zero_stage if cfg.deepspeed.enabled else 0,
                     num_processes=num_processes, offload=cfg.deepspeed.enabled and cfg.deepspeed.offload_optimizer,
                     gradient_checkpointing=cfg.model.gradient_checkpointing, vocab_size=vocab,
                     response_tokens=min(rl.max_new_tokens + 1, cfg.model.max_length), engine_bytes=vllm_share)
    return parts, episodes_bytes(rl.algo, episodes, min(prompt_tokens + 1 + rl.max_new_tokens, cfg.model.max_length))


def generate_shard(engine, tokenizer, examples: list[dict[str, str]], first_group: int, rl: RLConfig,
                   task: str, seed: int, rollout_reward,
                   fmt: PromptFormat = TINY_FORMAT) -> tuple[list[Episode], dict[str, float], float]:
    """Episodes of one rollout shard (samples_per_prompt per example), with advantages for the
    methods whose advantages come from their own samples (VinePPO's MC values, GRPO, RLOO), and
    the seconds spent on those advantages. Prompts in the model's format `fmt`, encoded as the
    engine encodes them (its BOS with task.prompt_bos)."""
    prompts = [fmt.prompt(e["question"]) for e in examples]
    sampling = SamplingParams(n=rl.samples_per_prompt, temperature=rl.temperature, top_p=rl.top_p,
                              max_new_tokens=rl.max_new_tokens, stop=list(fmt.stop), seed=seed)
    prompt_ids = [fmt.encode(tokenizer, p) for p in prompts]
    outputs = engine.generate(prompt_ids, sampling)
    graded = iter(rewards([(c, ex["answer"]) for ex, comps in zip(examples, outputs, strict=True) for c in comps], task))
    episodes = []
    for g, (ex, prompt, ids, comps) in enumerate(zip(examples, prompts, prompt_ids, outputs, strict=True)):
        for c in comps:
            response_ids, logprobs = response_tokens(c, tokenizer, rl.response_tokens)
            episodes.append(Episode(first_group + g, ex, prompt, ids, response_ids, c.text, c.finish_reason,
                                    next(graded), logprobs=logprobs))
    stats: dict[str, float] = {}
    t0 = time.time()
    if rl.algo == "vineppo":
        mc = SamplingParams(temperature=rl.temperature, top_p=rl.top_p, max_new_tokens=rl.max_new_tokens,
                            stop=list(fmt.stop), seed=seed + 500_000)
        stats = vineppo.assign_advantages(episodes, engine, tokenizer, task, rl.vine_k, rl.vine_max_steps, mc,
                                          rollout_reward, rl.vine_steps)
    elif rl.algo == "grpo":
        grpo.assign_advantages(episodes)
    elif rl.algo == "rloo":
        rloo.assign_advantages(episodes)
    return episodes, stats, time.time() - t0


def score(engine, examples: list[dict[str, str]], task, cfg: Config, world, seed: int,
          progress: bool = False) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """Evaluate `examples` (greedy, and rl.eval_samples samples each), each process scoring every
    W-th problem: the whole result summarised over every process's share, and the shares."""
    result = evaluate(engine, examples[world.rank::world.world_size], cfg.task.name,
                      batch_size=cfg.eval.batch_size, max_new_tokens=cfg.eval.max_new_tokens, progress=progress,
                      flaw_ops=tuple(cfg.task.flaw_ops), fmt=task.format, num_samples=cfg.rl.eval_samples,
                      temperature=cfg.eval.temperature, top_p=cfg.eval.top_p, seed=seed + world.rank)
    shares = world.gather(result["problems"])
    problems = [p for part in shares for p in part]
    return {**result, **summarise(problems), "problems": problems}, shares


def validation_accuracy(engine, policy, rollout_model, zero_stage: int, task, cfg: Config, world, done: int) -> float:
    """The current policy's accuracy on the validation split (task.num_validation): greedy, or the
    mean over rl.eval_samples samples (the authors' measure)."""
    sync_engine(engine, policy, rollout_model, zero_stage)
    policy.eval()
    whole, _ = score(engine, task.validation, task, cfg, world, seed=(cfg.seed * 1_000_003 + done) * 1_000 + 500)
    policy.train()
    return whole["sampled_accuracy" if cfg.rl.eval_samples else "greedy_accuracy"]


def merge_vine_stats(per_shard: list[dict[str, float]]) -> dict[str, float]:
    """Counts add up; the mean value is weighted by each shard's number of states."""
    if not per_shard or not per_shard[0]:
        return {}
    n = sum(s["vine/num_states"] for s in per_shard)
    return {"vine/num_states": n, "vine/num_unique_states": sum(s["vine/num_unique_states"] for s in per_shard),
            "vine/mean_value": sum(s["vine/mean_value"] * s["vine/num_states"] for s in per_shard) / max(n, 1)}


def sync_engine(engine, policy, rollout_model, zero_stage: int) -> None:
    """Give the engine the policy's current weights (gathered from every process under ZeRO-3,
    where the policy module itself holds only this process's shard)."""
    with full_parameters(policy, zero_stage):
        if rollout_model is not None:
            rollout_model.load_state_dict(policy.state_dict())
            engine.load_weights(rollout_model)
        else:
            engine.load_weights(policy)


def train_rl(cfg: Config, progress: bool = False) -> dict[str, Any]:
    rl, world = cfg.rl, init_world()
    check_values(cfg)  # a Config made otherwise than by make_config is checked too
    if rl.autocast not in (None, "auto") and cfg.deepspeed.enabled:
        raise ConfigError("rl.autocast with deepspeed.enabled: DeepSpeed has its own mixed precision "
                          "(deepspeed.bf16); set rl.autocast=null")
    if cfg.model.dtype != "float32" and not cfg.deepspeed.enabled and world.is_main:
        # Without DeepSpeed the trained modules are in model.dtype: bf16 weights resolve 0.4% of a
        # weight, so Adam's updates at the paper's lr 1e-6 mostly round away (fine for a throughput
        # measurement, benchmarks/gpu_throughput.py, not for a run whose accuracy counts).
        print(f"warning: model.dtype={cfg.model.dtype} without DeepSpeed trains {cfg.model.dtype} weights, whose "
              "small updates round away: deepspeed.enabled=true keeps fp32 master weights with "
              f"{cfg.model.dtype} passes; or model.dtype=float32 with rl.autocast=auto", file=sys.stderr, flush=True)
    if rl.value_clip is not None and not rl.value_clip > 0:
        raise ConfigError(f"rl.value_clip must be > 0 (or null: no clip), got {rl.value_clip}")
    if rl.init is None:
        raise ConfigError("rl.init: give the SFT checkpoint to start from (hub name or folder)")
    check_source(rl.init, "rl.init")
    PromptFormat.of(cfg.task).check(rl.init, "rl.init")  # the format the SFT model learned
    require_cuda(cfg.device)
    if world.world_size > 1 and not cfg.deepspeed.enabled:
        raise ConfigError(f"{world.world_size} processes: multi-process training runs through DeepSpeed; "
                          "set deepspeed.enabled=true")
    set_timeout(cfg.task.grade_timeout_s)
    set_workers(cfg.task.grade_workers)
    num_shards = rl.rollout_shards or world.world_size  # 0: one per process (a resumed run keeps its own)
    shards_of(world, num_shards)  # too few for the processes: said before any model loads
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    run = RunDir(Path(cfg.output_dir) / (cfg.run_name or f"{rl.algo}-{cfg.task.name}-s{cfg.seed}"))
    summary_path = run.path / "summary.json"
    finished = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if finished is not None and finished["iterations"] >= rl.iterations:
        return finished  # a finished run given more iterations continues from its last checkpoint
    resume = ckpt.latest_checkpoint(run.checkpoints)
    if finished is not None and resume is None:
        raise ConfigError(f"{run.path} finished at iteration {finished['iterations']} and keeps no checkpoint "
                          f"to continue from; give rl.iterations={finished['iterations']}, or a new run_name")
    reached = ckpt.checkpoint_step(resume) if resume is not None else 0
    inside = partial.latest(run.path, reached)  # rl.save_every_steps: a checkpoint inside a later iteration
    if inside is not None:
        reached, resume = inside[0] - 1, inside[1]
    if resume is not None:
        check_resume(run, cfg, reached)
    if world.is_main:
        atomic_write_text(run.config, to_yaml(cfg))
    commit = git_commit()
    task = load_task(cfg.task)
    if rl.prompts_per_iter > len(task.train):
        raise ConfigError(f"rl.prompts_per_iter={rl.prompts_per_iter} is more than the task's {len(task.train)} RL "
                          "prompts (its train problems less task.num_validation); 0 takes all of them")
    n_prompts = rl.prompts_per_iter or len(task.train)  # per iteration; 0: all of them, in a new order each
    device = world.device(cfg.device)
    # 'auto' defers to DeepSpeed's own bf16 when it is on.
    precision = resolve_autocast(None if cfg.deepspeed.enabled else rl.autocast, device)
    tokenizer = load_tokenizer(rl.init, "rl.init")
    zero_stage = cfg.deepspeed.zero_stage if cfg.deepspeed.enabled else 0
    # Before any model is loaded: will it fit? (`vineppo memory` prints the same estimate.)
    parts, held = memory_parts(cfg, longest_prompt(task, tokenizer), len(task.train), device, world.world_size)
    check_run_fits(parts, held, device, world.local_world_size, available_bytes)
    # DeepSpeed keeps fp32 master weights itself and casts the trained modules to bf16 when asked.
    train_dtype = "float32" if cfg.deepspeed.enabled else cfg.model.dtype
    start_key = "rl.init" if resume is None else "the run's last checkpoint"
    policy = load_model(resume or rl.init, train_dtype, str(device), start_key).train()
    reference = load_model(rl.init, cfg.model.dtype, str(device), "rl.init").eval().requires_grad_(False)
    value_model = (ppo.ValueModel(rl.init, rl.shared_prefix, rl.value_head_init, seed=cfg.seed).to(device)
                   if rl.algo == "ppo" else None)
    if precision is not None and device.type == "cpu":
        use_eager_attention(policy, reference, value_model.backbone if value_model is not None else None)
    if cfg.model.gradient_checkpointing:  # the trained models' activations recomputed in the backward pass
        enable_gradient_checkpointing(policy)
        if value_model is not None:
            enable_gradient_checkpointing(value_model.backbone)
    # Each process's share of a mini-batch (or rl.micro_batch_size): its training micro-batch, and
    # the rows of each chunk of its no-grad passes (so those, whose logits over the vocabulary are
    # the largest tensors they make, fit where a training step does).
    micro_batch = min(rl.micro_batch_size or rl.minibatch_size, max(rl.minibatch_size // world.world_size, 1))
    updater = Updater(Learner(policy, value_model, precision, rl.shared_prefix), cfg, world, device, micro_batch)
    # Under ZeRO-3 each process holds a shard of the policy; the hf engine samples from a whole copy.
    rollout_model = (load_model(resume or rl.init, cfg.model.dtype, str(device), start_key)
                     if zero_stage == 3 and cfg.engine == "hf" else None)
    # The vllm engine copies the policy's weights in as it starts: whole ones, gathered under ZeRO-3.
    with full_parameters(policy, zero_stage if rollout_model is None else 0):
        engine = make_engine(cfg.engine, rollout_model or policy, tokenizer, batch_size=rl.rollout_batch_size,
                             path=str(rl.init), bos=cfg.task.prompt_bos, vllm_memory=cfg.vllm_memory)
    # The hf engine's log-probs come from the same module and temperature as the training forward
    # (tests/test_loop.py checks they agree within 1e-5); vLLM's from its own kernels and after top-p;
    # under rl.autocast the training forward rounds differently from the fp32 sampler.
    engine_logprobs_exact = getattr(engine, "logprobs_exact", False) and precision is None

    # rl.restem_from=init: each RestEM iteration trains a fresh copy of rl.init (weights, optimizer).
    restem_init = (updater.initial(run.path / ".restem-init", None if resume is None else
                                   lambda: load_model(rl.init, train_dtype, "cpu", "rl.init"))
                   if rl.algo == "restem" and rl.restem_from == "init" else None)
    start, grad_steps, elapsed, within = 0, 0, 0.0, None
    if resume is not None:
        state = ckpt.load_state(resume)
        updater.load(resume, state)
        ckpt.set_rng_state(state["rng"])
        start, grad_steps, elapsed = reached, state["grad_steps"], state["elapsed_s"]
        within = state.get("within")  # resumed inside iteration start + 1: where in it
        written = len(within["per_process"]) if within is not None else world.world_size
        if world.is_main and written != world.world_size:
            print(f"{resume}: written by {written} process(es), this run has {world.world_size}; their parts "
                  "of the iteration's sums are taken up by process 0", file=sys.stderr, flush=True)
        if world.is_main:
            truncate_jsonl(run.metrics, state["num_records"])
            where = (f"{within['steps']} gradient steps into iteration {reached + 1}" if within is not None
                     else f"the end of iteration {reached}")
            print(f"{run.path}: resumed from {resume} ({where})", file=sys.stderr, flush=True)
        if not rl.rollout_shards:
            num_shards = resumed_shards(state.get("rollout_shards"), world, resume)
    else:
        ckpt.seed_everything(cfg.seed)
        if world.is_main:
            run.metrics.unlink(missing_ok=True)
    my_shards = shards_of(world, num_shards)
    if zero_stage == 3 or (cfg.deepspeed.enabled and cfg.engine == "vllm"):
        sync_engine(engine, policy, rollout_model, zero_stage)  # DeepSpeed may have cast or moved the weights

    def rollout_reward(items: list[tuple[str, Completion, dict[str, str]]]) -> list[float]:
        """VinePPO's continuations: the response prefix + continuation graded (0 if cut off)."""
        return rewards([(replace(c, text=prefix + c.text), ex["answer"]) for prefix, c, ex in items], cfg.task.name)

    def save_inside(it: int, epoch: int, done_in_epoch: int, order: torch.Tensor, steps: int,
                    stats: dict[str, float], t_train: float, counters: dict[str, Any]) -> None:
        """A partial checkpoint (rl.save_every_steps) in iteration it + 1, `done_in_epoch` steps into
        `epoch`, whose mini-batch order `order` (the generator's state at its start) draws."""
        extra = {"grad_steps": grad_steps, "elapsed_s": time.time() - t_start, "num_records": len(read_jsonl(run.metrics)),
                 "rollout_shards": num_shards,
                 "within": {"iteration": it + 1, "epoch": epoch, "steps_in_epoch": done_in_epoch, "generator": order,
                            "steps": steps, "stats": stats, "t_train": t_train, "per_process": world.gather(counters)}}
        updater.save(partial.iteration_dir(run.path, it + 1), grad_steps, tokenizer, extra, keep=1)
        if world.is_main:
            partial.clear(run.path, up_to=it)  # this iteration's checkpoint replaces the one before

    t_start = time.time() - elapsed
    for it in range(start, rl.iterations):
        if device.type == "cuda":  # this iteration's peak, against the estimate (summary's memory_estimate_gib)
            torch.cuda.reset_peak_memory_stats(device)
        if within is None:
            # 1. Sample prompts; this process generates its rollout shards (with VinePPO's MC values,
            #    or GRPO's / RLOO's group advantages); every process then holds all episodes.
            t0 = time.time()
            for model in (policy, value_model):  # sampling and the no-grad passes in eval mode (they share prefixes)
                if model is not None:
                    model.eval()
            examples = random.Random(cfg.seed * 1_000_003 + it).sample(task.train, n_prompts)
            bounds = [len(examples) * s // num_shards for s in range(num_shards + 1)]
            mine = {s: generate_shard(engine, tokenizer, examples[bounds[s]:bounds[s + 1]], bounds[s], rl,
                                      cfg.task.name, cfg.seed * 1_000_003 + it + s * 1_000_000_007, rollout_reward,
                                      task.format)
                    for s in my_shards}
            t_advantages = sum(out[2] for out in mine.values())
            shards = {s: out for part in world.gather(mine) for s, out in part.items()}
            episodes = [e for s in range(num_shards) for e in shards[s][0]]
            stats = merge_vine_stats([shards[s][1] for s in range(num_shards)])
            t_gen = time.time() - t0 - t_advantages

            # 2. Log-probs of the old policy (the sampler's own, where they are the training forward's)
            #    and of the reference (only for the methods with a KL penalty); PPO's values and GAE.
            t0 = time.time() - t_advantages  # value estimation time includes VinePPO's MC rollouts
            # The episodes stay in host memory (DPO+'s iteration holds hundreds of thousands); the
            # device gets one chunk or mini-batch of them at a time.
            batch = collate_episodes(episodes, tokenizer.pad_token_id)
            sampler_logp = batch.pop("sampler_logp", None)
            mc_values = batch.pop("mc_values", None)
            if mc_values is not None:  # VinePPO: how much of the returns' variance its MC values explain
                stats.update(value_fit(mc_values, batch["rewards"][:, None] * batch["mask"], batch["mask"]))
            # Each process computes its share of these passes (distributed.py); under ZeRO-3 the
            # sharded policy and value network run them in lockstep.
            with autocast(device, precision):  # the same numerics as the update's forward
                if rl.old_logprobs == "sampler" and sampler_logp is not None and engine_logprobs_exact:
                    old_logp = sampler_logp
                else:
                    old_logp = chunked(lambda b: token_logprobs(policy, b, rl.temperature, rl.shared_prefix), batch,
                                       micro_batch, world, lockstep=zero_stage == 3, device=device)
                ref_logp = (chunked(lambda b: token_logprobs(reference, b, rl.temperature, rl.shared_prefix), batch,
                                    micro_batch, world, device=device)
                            if rl.algo in PPO_FAMILY else None)
                if value_model is not None:
                    batch["advantages"], batch["returns"], batch["old_values"] = ppo.advantages_and_returns(
                        value_model, batch, rl.gamma, rl.lam, micro_batch, world, lockstep=zero_stage == 3,
                        device=device)
                    stats.update(value_fit(batch["old_values"], batch["returns"], batch["mask"]))
            if rl.whiten_advantages:
                batch["advantages"] = whiten(batch["advantages"], batch["mask"])
            check_finite("advantages", batch["advantages"], it + 1, run)
            t_value = time.time() - t0
            # What the update trains on: each episode, RestEM's correct ones, or DPO+'s (chosen, rejected) pairs.
            if rl.algo == "restem":
                units = restem.select(episodes)
            elif rl.algo == "dpo_plus":
                units = dpo_plus.pairs(episodes, rl.dpo_max_pairs, cfg.seed * 1_000_003 + it)
            else:
                units = [(i,) for i in range(len(episodes))]
            del episodes, shards, mine  # the batch's tensors hold what the update needs of them
        else:  # resumed inside this iteration (rl.save_every_steps): what it sampled and computed, as saved
            data = partial.load_data(run.path, it + 1)
            batch, old_logp, ref_logp, stats, t_gen, t_value = (data[k] for k in ("batch", "old_logp", "ref_logp",
                                                                                  "stats", "t_gen", "t_value"))
            units = [tuple(u) for u in data["units"].tolist()]

        # 3. E epochs of mini-batch updates. A unit is one episode, or a (chosen, rejected) pair.
        t0 = time.time() - (within["t_train"] if within is not None else 0.0)
        for model in (policy, value_model):  # and the updates in training mode: dropout, if the model has
            if model is not None:            # any, and model.gradient_checkpointing, which only engages there
                model.train()
        per_step = max(rl.minibatch_size // len(units[0]), 1) if units else 1
        per_micro = max(rl.micro_batch_size // len(units[0]), 1) if units and rl.micro_batch_size else per_step
        # rl.lr_schedule: over the run's steps for the methods that take the same number every
        # iteration, over this iteration's for RestEM and DPO+ (theirs depend on what was sampled),
        # as the authors' trainers count them (ppo_trainer, restem_trainer, dpo_positive_trainer).
        per_run = rl.algo in PPO_FAMILY
        horizon = (rl.iterations * rl.epochs * (n_prompts * rl.samples_per_prompt // rl.minibatch_size)
                   if per_run else rl.epochs * -(-len(units) // per_step))
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)
        sums: dict[str, float] = dict.fromkeys(("loss/policy", "loss/kl", "loss/value", "loss/clip_fraction",
                                                *updater.norm_names), 0.0)  # and the pre-clip gradient norms
        counters: dict[str, Any] = {"sums": sums, "grading_timeouts": 0.0}  # this process's part of the record
        steps, first_epoch, skip = 0, 0, 0
        seq_len = batch["attention_mask"].sum(1).tolist()
        select, previous = rl.algo == "restem" and rl.restem_select == "validation", None
        if within is not None:  # where the partial checkpoint was written
            first_epoch, skip, steps, stats = within["epoch"], within["steps_in_epoch"], within["steps"], within["stats"]
            gen.set_state(within["generator"])
            counters = partial.share(within["per_process"], world.rank, world.world_size)
            sums = counters["sums"]
            if select and first_epoch > 0:  # written at an epoch's end: the state the next epoch is measured against
                previous = updater.snapshot(run.path / ".restem-epoch", "previous")
        elif rl.save_every_steps:  # the iteration's data once, and a checkpoint before its first update
            if world.is_main:
                partial.save_data(run.path, it + 1, {"batch": batch, "old_logp": old_logp, "ref_logp": ref_logp,
                                                     "units": torch.tensor(units, dtype=torch.long), "stats": stats,
                                                     "t_gen": t_gen, "t_value": t_value})
            counters["grading_timeouts"] += pop_timeouts()
            save_inside(it, 0, 0, gen.get_state(), steps, stats, time.time() - t0, counters)
        if restem_init is not None and units and (first_epoch, skip) == (0, 0):
            updater.restore(run.path / ".restem-init", restem_init)  # this iteration's samples fine-tune rl.init afresh
        for epoch in range(first_epoch, rl.epochs if units else 0):
            order = gen.get_state()
            batches = minibatches(units, per_step, gen, seq_len if rl.minibatch_by_length else None)
            for k, step_units in enumerate(batches):
                if epoch == first_epoch and k < skip:
                    continue  # taken before the partial checkpoint this run resumed from
                # Data parallel: this process takes every W-th unit of the mini-batch and weighs its
                # loss by its share of what the loss averages over; the gradient averaged over
                # processes is then the whole mini-batch's.
                mine_units = step_units[world.rank::world.world_size]
                all_items = loss_items(rl.algo, batch["mask"][torch.tensor([j for u in step_units for j in units[u]])])
                mine_share = 0.0
                # rl.micro_batch_size: the share in micro-batches of whole units, gradients accumulated.
                # Every process runs as many passes as the busiest (ZeRO reduces gradients in each):
                # one with fewer units takes one unit at weight 0 for each pass it lacks.
                groups = chunks(mine_units, per_micro)
                passes = max(-(-len(step_units[r::world.world_size]) // per_micro) for r in range(world.world_size))
                for p in range(passes):
                    group = groups[p] if p < len(groups) else step_units[:1]
                    idx = torch.tensor([j for u in group for j in units[u]])
                    mb, mb_old, mb_ref = trim_padding({k: v[idx] for k, v in batch.items()}, old_logp[idx],
                                                      ref_logp[idx] if ref_logp is not None else None)
                    mb = {k: v.to(device) for k, v in mb.items()}
                    mb_old, mb_ref = mb_old.to(device), mb_ref.to(device) if mb_ref is not None else None
                    share = loss_items(rl.algo, mb["mask"]) / all_items if p < len(groups) else 0.0
                    # Under ZeRO-3 every forward is collective: each process's share takes the
                    # shared-prefix path only where every process's does.
                    with prefix.lockstep(world if zero_stage == 3 else None):
                        logp, values = updater(mb, rl.temperature)
                    losses, micro_logs = minibatch_loss(rl, logp, values, mb, mb_old, mb_ref)
                    for part, loss in losses.items():
                        check_finite(f"loss ({part})", loss, it + 1, run)
                    updater.backward({part: loss * (share * world.world_size) for part, loss in losses.items()},
                                     last=p == passes - 1)
                    mine_share += share
                    for name, v in micro_logs.items():
                        sums[name] += v * share
                if rl.lr_schedule == "warmup_decay":
                    stats["train/learning_rate"] = updater.set_lr_factor(
                        lr_factor(grad_steps if per_run else steps, horizon, rl.warmup_ratio))
                for name, v in updater.step().items():  # the pre-clip gradient norms
                    sums[name] += v * mine_share
                grad_steps += 1
                steps += 1
                last = epoch == rl.epochs - 1 and k == len(batches) - 1  # the iteration's checkpoint follows
                if rl.save_every_steps and not select and steps % rl.save_every_steps == 0 and not last:
                    counters["grading_timeouts"] += pop_timeouts()
                    save_inside(it, epoch, k + 1, order, steps, stats, time.time() - t0, counters)
            if select:  # RestEM's epoch choice (rl.restem_select): on while validation accuracy rises
                acc = validation_accuracy(engine, policy, rollout_model, zero_stage, task, cfg, world, done=it + 1)
                stats[f"restem/validation_accuracy_e{epoch + 1}"] = acc
                if epoch > 0 and not acc > stats["restem/validation_accuracy"]:
                    updater.restore(run.path / ".restem-epoch", previous)  # back to the epoch before
                    break
                stats["restem/epochs_kept"], stats["restem/validation_accuracy"] = epoch + 1, acc
                if epoch + 1 < rl.epochs:
                    previous = updater.snapshot(run.path / ".restem-epoch", "previous")
                    if rl.save_every_steps:  # at the epoch's end, the state `previous` holds
                        counters["grading_timeouts"] += pop_timeouts()
                        save_inside(it, epoch + 1, 0, gen.get_state(), steps, stats, time.time() - t0, counters)
        within = None
        if previous is not None and updater.engines:  # DeepSpeed's shards of the epoch before
            world.barrier()
            if world.is_main:
                shutil.rmtree(run.path / ".restem-epoch", ignore_errors=True)
        totals = dict(zip(sums, world.sum(list(sums.values())), strict=True))  # each step's mini-batch mean
        logs = {k: v / steps for k, v in totals.items() if steps and (k != "loss/value" or value_model is not None)
                and (k != "loss/clip_fraction" or rl.algo in PPO_FAMILY)}
        sync_engine(engine, policy, rollout_model, zero_stage)  # the next rollouts (and this eval) use the new policy
        t_train = time.time() - t0

        done = it + 1
        record: dict[str, Any] = {
            "iteration": done, "train/reward": batch["rewards"].mean().item(),
            "train/grad_steps": grad_steps, "train/episodes": len(batch["rewards"]),
            "train/tokens_generated": int(batch["mask"].sum().item()),
            "train/tokens_trained": int(batch["attention_mask"].sum().item()),
            **({"train/kl_ref": masked_mean(old_logp - ref_logp, batch["mask"]).item()} if ref_logp is not None else {}),
            "time/generation_s": t_gen, "time/value_estimation_s": t_value, "time/training_s": t_train,
            "time/elapsed_s": time.time() - t_start, "train/num_units": len(units), **stats, **logs,
            "train/grading_timeouts": world.sum([counters["grading_timeouts"] + pop_timeouts()])[0],
        }
        if done % rl.eval_every == 0 or done == rl.iterations:  # each process scores every W-th problem
            t_eval = time.time()
            policy.eval()
            whole, shares = score(engine, task.test, task, cfg, world, seed=(cfg.seed * 1_000_003 + done) * 1_000,
                                  progress=progress and world.is_main)
            record.update(log_fields(whole))
            if world.is_main:  # every evaluation's per-problem bits; the last one's answers too
                test_ids = [e["id"] for e in task.test]
                record_bits(run.eval_file("greedy_correct"), done, correct_bits(shares), test_ids)
                if rl.eval_samples:  # the sampled measure's per-problem counts, for the same analyses
                    record_bits(run.eval_file("sampled_correct"), done, correct_counts(shares), test_ids,
                                samples=rl.eval_samples)
                if done == rl.iterations:
                    atomic_write_json(run.eval_file("test"), whole)
            record["time/eval_s"] = time.time() - t_eval  # in later iterations' elapsed_s, not in this one's
        if device.type == "cuda":  # the most this process had allocated through torch in the iteration
            record["memory/peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        if world.is_main:
            run.log(record)
        if done % rl.save_every == 0 or done == rl.iterations:
            extra = {"grad_steps": grad_steps, "elapsed_s": time.time() - t_start, "rollout_shards": num_shards,
                     "num_records": len(read_jsonl(run.metrics))}
            updater.save(run.checkpoints, done, tokenizer, extra, keep=rl.keep_checkpoints or 10**9)
            if world.is_main:
                partial.clear(run.path, up_to=done)

    if world.is_main:  # the policy after the last iteration, as a model folder of its own
        last = ckpt.latest_checkpoint(run.checkpoints)
        assert last is not None and ckpt.checkpoint_step(last) == rl.iterations, last
        ckpt.export_model(last, run.final)
    records = read_jsonl(run.metrics)
    last_eval = next((r for r in reversed(records) if "eval/greedy_accuracy" in r), {})
    summary = {"algo": rl.algo, "task": cfg.task.name, "seed": cfg.seed, "iterations": rl.iterations,
               "grad_steps": records[-1]["train/grad_steps"] if records else 0,
               "test_greedy_accuracy": last_eval.get("eval/greedy_accuracy"), "final_model": str(run.final),
               **({"test_sampled_accuracy": last_eval["eval/sampled_accuracy"], "eval_samples": rl.eval_samples}
                  if "eval/sampled_accuracy" in last_eval else {}),
               "seconds_per_iteration": (records[-1]["time/elapsed_s"] / len(records)) if records else None,
               "commit": commit, "processes": world.world_size, "autocast": precision,
               "memory_estimate_gib": round(sum(parts.values()) / 2**30, 3)}  # per device, `vineppo memory`
    if finished is not None:  # extended: where the earlier part came from
        summary["extended_from"] = [*finished.get("extended_from", []),
                                    {k: finished.get(k) for k in ("iterations", "commit", "test_greedy_accuracy")}]
    world.barrier()
    if world.is_main:
        atomic_write_json(summary_path, summary)
    return summary
