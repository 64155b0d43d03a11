"""The policy-iteration loop, written once for every method.

Each iteration: sample prompts -> generate episodes -> grade -> what differs per method (PPO,
VinePPO, GRPO, RLOO: advantages for the clipped PPO objective + k3 KL; RestEM: the correct
responses for NLL; DPO+: correct/incorrect pairs) -> E epochs of mini-batch updates -> log,
evaluate, checkpoint. Everything random is seeded by (seed, iteration), so a run resumed from a
checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import torch

from vineppo import checkpoint as ckpt
from vineppo.algorithms import dpo_plus, grpo, ppo, restem, rloo, vineppo
from vineppo.algorithms.advantages import masked_mean, whiten
from vineppo.algorithms.losses import k3_kl, ppo_policy_loss, value_loss
from vineppo.config import Config, ConfigError, RLConfig, to_yaml
from vineppo.evaluate import evaluate, reward
from vineppo.grading import grade
from vineppo.inference import Completion, SamplingParams, make_engine
from vineppo.memory import available_bytes, check_fits, estimate, model_shape
from vineppo.models import load_model, load_tokenizer, resolve_device
from vineppo.rollout import Episode, collate_episodes, token_logprobs, trim_padding
from vineppo.runio import RunDir, atomic_write_json, atomic_write_text, git_commit, read_jsonl, truncate_jsonl
from vineppo.tasks import PROMPT, load_task

ALGOS = ("ppo", "vineppo", "grpo", "rloo", "restem", "dpo_plus")
PPO_FAMILY = ("ppo", "vineppo", "grpo", "rloo")


def check_finite(name: str, x: torch.Tensor, iteration: int, run: RunDir) -> None:
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"{name} is not finite at iteration {iteration}; the last good "
                                 f"checkpoint is kept in {run.checkpoints}")


def minibatch_loss(rl: RLConfig, policy, value_model, mb: dict[str, torch.Tensor], old_logp: torch.Tensor,
                   ref_logp: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The method's loss on one mini-batch (rows of `mb`, with their old and reference log-probs)."""
    logp = token_logprobs(policy, mb, rl.temperature)
    kl = masked_mean(k3_kl(logp, ref_logp), mb["mask"])
    logs = {"loss/kl": kl.item()}
    if rl.algo == "restem":
        loss = restem.loss(logp, mb["mask"])
    elif rl.algo == "dpo_plus":
        loss = dpo_plus.loss(logp, old_logp, mb["mask"], rl.dpo_beta, rl.dpo_nll_coef)
    else:
        loss, stats = ppo_policy_loss(logp, old_logp, mb["advantages"], mb["mask"], rl.clip)
        logs["loss/clip_fraction"] = stats["clip_fraction"]
    logs["loss/policy"] = loss.item()
    if rl.algo in PPO_FAMILY:
        loss = loss + rl.kl_coef * kl
    if value_model is not None:
        v_loss = value_loss(value_model(mb), mb["old_values"], mb["returns"], mb["mask"], rl.value_clip)
        logs["loss/value"] = v_loss.item()
        loss = loss + v_loss
    return loss, logs


def train_rl(cfg: Config, progress: bool = False) -> dict[str, Any]:
    rl = cfg.rl
    if rl.algo not in ALGOS:
        raise ConfigError(f"rl.algo: unknown algorithm '{rl.algo}'; available: {', '.join(ALGOS)}")
    if rl.init is None:
        raise ConfigError("rl.init: give the SFT checkpoint to start from (hub name or folder)")
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    run = RunDir(Path(cfg.output_dir) / (cfg.run_name or f"{rl.algo}-{cfg.task.name}-s{cfg.seed}"))
    summary_path = run.path / "summary.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text())
    atomic_write_text(run.config, to_yaml(cfg))
    commit = git_commit()
    task = load_task(cfg.task)
    resume = ckpt.latest_checkpoint(run.checkpoints)
    device = resolve_device(cfg.device)
    n_params, hidden, layers = model_shape(rl.init)  # before anything is loaded: will it fit?
    check_fits(estimate(n_params, hidden, layers, dtype=cfg.model.dtype, algo=rl.algo, engine=cfg.engine,
                        minibatch_size=rl.minibatch_size, max_length=cfg.model.max_length),
               available_bytes(device), str(device))
    tokenizer = load_tokenizer(rl.init)
    policy = load_model(resume or rl.init, cfg.model.dtype, str(device)).train()
    reference = load_model(rl.init, cfg.model.dtype, str(device)).eval().requires_grad_(False)
    value_model = ppo.ValueModel(rl.init).to(device) if rl.algo == "ppo" else None
    params = list(policy.parameters()) + (list(value_model.parameters()) if value_model else [])
    optimizer = torch.optim.Adam(params, lr=rl.learning_rate)
    engine = make_engine(cfg.engine, policy, tokenizer, batch_size=rl.rollout_batch_size, path=str(rl.init))

    start, grad_steps, elapsed = 0, 0, 0.0
    if resume is not None:
        state = ckpt.load_state(resume)
        optimizer.load_state_dict(state["optimizer"])
        if value_model is not None:
            value_model.load_state_dict(state["value_model"])
        ckpt.set_rng_state(state["rng"])
        start, grad_steps, elapsed = state["step"], state["grad_steps"], state["elapsed_s"]
        truncate_jsonl(run.metrics, state["num_records"])
    else:
        ckpt.seed_everything(cfg.seed)
        run.metrics.unlink(missing_ok=True)

    def rollout_reward(prefix: str, cont: Completion, example: dict[str, str]) -> float:
        if cont.finish_reason == "length":
            return 0.0
        return grade(prefix + cont.text, example["answer"], cfg.task.name)

    t_start = time.time() - elapsed
    for it in range(start, rl.iterations):
        # 1. Sample prompts and generate episodes with the current policy.
        t0 = time.time()
        policy.eval()
        examples = random.Random(cfg.seed * 1_000_003 + it).sample(task.train, rl.prompts_per_iter)
        prompts = [PROMPT.format(question=e["question"]) for e in examples]
        sampling = SamplingParams(n=rl.samples_per_prompt, temperature=rl.temperature, top_p=rl.top_p,
                                  max_new_tokens=rl.max_new_tokens, seed=cfg.seed * 1_000_003 + it)
        completions = engine.generate(prompts, sampling)
        episodes = []
        for g, (ex, prompt, comps) in enumerate(zip(examples, prompts, completions, strict=True)):
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            for c in comps:
                episodes.append(Episode(g, ex, prompt, prompt_ids, c.token_ids, c.text, c.finish_reason,
                                        reward(c, ex["answer"], cfg.task.name)))
        t_gen = time.time() - t0

        # 2. Advantages: the one place the methods differ.
        t0 = time.time()
        stats: dict[str, float] = {}
        if rl.algo == "vineppo":
            mc = SamplingParams(temperature=rl.temperature, top_p=rl.top_p, max_new_tokens=rl.max_new_tokens,
                                seed=cfg.seed * 1_000_003 + it + 500_000)
            stats = vineppo.assign_advantages(episodes, engine, tokenizer, cfg.task.name, rl.vine_k,
                                              rl.vine_max_steps, mc, rollout_reward)
        elif rl.algo == "grpo":
            grpo.assign_advantages(episodes)
        elif rl.algo == "rloo":
            rloo.assign_advantages(episodes)
        batch = {k: v.to(device) for k, v in collate_episodes(episodes, tokenizer.pad_token_id).items()}
        with torch.no_grad():
            old_logp = token_logprobs(policy, batch, rl.temperature)
            ref_logp = token_logprobs(reference, batch, rl.temperature)
        if value_model is not None:
            batch["advantages"], batch["returns"], batch["old_values"] = ppo.advantages_and_returns(
                value_model, batch, rl.gamma, rl.lam)
        batch["advantages"] = whiten(batch["advantages"], batch["mask"])
        check_finite("advantages", batch["advantages"], it + 1, run)
        t_value = time.time() - t0

        # 3. E epochs of mini-batch updates. A unit is one episode, or a (chosen, rejected) pair.
        t0 = time.time()
        policy.train()
        if rl.algo == "restem":
            units = restem.select(episodes)
        elif rl.algo == "dpo_plus":
            units = dpo_plus.pairs(episodes)
        else:
            units = [(i,) for i in range(len(episodes))]
        per_step = max(rl.minibatch_size // len(units[0]), 1) if units else 1
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + it)
        logs: dict[str, list[float]] = {"loss/policy": [], "loss/kl": [], "loss/value": [], "loss/clip_fraction": []}
        for _ in range(rl.epochs if units else 0):
            perm = torch.randperm(len(units), generator=gen).tolist()
            for i in range(0, len(units), per_step):
                idx = torch.tensor([j for u in perm[i:i + per_step] for j in units[u]], device=device)
                mb, mb_old, mb_ref = trim_padding({k: v[idx] for k, v in batch.items()}, old_logp[idx], ref_logp[idx])
                loss, step_logs = minibatch_loss(rl, policy, value_model, mb, mb_old, mb_ref)
                check_finite("loss", loss, it + 1, run)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, rl.grad_clip)
                optimizer.step()
                grad_steps += 1
                for k, v in step_logs.items():
                    logs[k].append(v)
        engine.load_weights(policy)  # the next rollouts (and this iteration's eval) use the new policy
        t_train = time.time() - t0

        done = it + 1
        record: dict[str, Any] = {
            "iteration": done, "train/reward": batch["rewards"].mean().item(),
            "train/grad_steps": grad_steps, "train/tokens_generated": int(batch["mask"].sum().item()),
            "train/kl_ref": masked_mean(old_logp - ref_logp, batch["mask"]).item(),
            "time/generation_s": t_gen, "time/value_estimation_s": t_value, "time/training_s": t_train,
            "time/elapsed_s": time.time() - t_start, "train/num_units": len(units), **stats,
            **{k: sum(v) / len(v) for k, v in logs.items() if v},
        }
        if done % rl.eval_every == 0 or done == rl.iterations:
            policy.eval()
            result = evaluate(engine, task.test, cfg.task.name, batch_size=cfg.eval.batch_size,
                              max_new_tokens=cfg.eval.max_new_tokens, progress=progress)
            record["eval/greedy_accuracy"] = result["greedy_accuracy"]
        run.log(record)
        if done % rl.save_every == 0 or done == rl.iterations:
            extra = {"optimizer": optimizer.state_dict(), "grad_steps": grad_steps,
                     "elapsed_s": time.time() - t_start, "num_records": len(read_jsonl(run.metrics))}
            if value_model is not None:
                extra["value_model"] = value_model.state_dict()
            ckpt.save_checkpoint(run.checkpoints, done, policy, tokenizer, extra, keep=rl.keep_checkpoints or 10**9)

    records = read_jsonl(run.metrics)
    last_eval = next((r["eval/greedy_accuracy"] for r in reversed(records) if "eval/greedy_accuracy" in r), None)
    summary = {"algo": rl.algo, "task": cfg.task.name, "seed": cfg.seed, "iterations": rl.iterations,
               "grad_steps": records[-1]["train/grad_steps"] if records else 0,
               "test_greedy_accuracy": last_eval,
               "seconds_per_iteration": (records[-1]["time/elapsed_s"] / len(records)) if records else None,
               "commit": commit}
    atomic_write_json(summary_path, summary)
    return summary
