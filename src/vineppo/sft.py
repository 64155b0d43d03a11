"""Supervised fine-tuning on the task's worked solutions: the starting point of every RL method.

Loss is next-token cross-entropy on the solution tokens only (the prompt is context). The batch at
step s is a pure function of (seed, s), so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vineppo import checkpoint as ckpt
from vineppo.config import Config, check_unchanged, to_yaml
from vineppo.evaluate import evaluate, log_fields
from vineppo.grading import set_timeout
from vineppo.inference import make_engine
from vineppo.learner import autocast
from vineppo.models import (
    build_tiny_model,
    build_tokenizer,
    enable_gradient_checkpointing,
    load_model,
    load_tokenizer,
    num_parameters,
    resolve_device,
)
from vineppo.runio import RunDir, atomic_write_json, atomic_write_text, git_commit, read_jsonl, truncate_jsonl
from vineppo.tasks import TINY_FORMAT, PromptFormat, load_task

TOKENIZER_TEXTS = 10_000
"""SFT examples the tiny tokenizer is trained on: plenty for a 512-token vocabulary."""


def encode_examples(examples: list[dict[str, str]], tokenizer, max_length: int,
                    fmt: PromptFormat = TINY_FORMAT) -> list[tuple[list[int], int]]:
    """(token ids of prompt + target + EOS, number of prompt tokens) for each example, in the
    format `fmt` (task.prompt_template, task.response_template, task.prompt_bos)."""
    prompts = [fmt.encode(tokenizer, fmt.prompt(e["question"])) for e in examples]
    responses = tokenizer([fmt.target(e["solution"]) for e in examples], add_special_tokens=False)["input_ids"]
    out = []
    for e, prompt, response in zip(examples, prompts, responses, strict=True):
        ids = prompt + response + [tokenizer.eos_token_id]
        if len(ids) > max_length:
            raise ValueError(f"example {e['id']} is {len(ids)} tokens, over model.max_length={max_length}")
        out.append((ids, len(prompt)))
    return out


def collate(batch: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 on prompt and padding). Training
    passes no attention mask: with right padding, causal attention already keeps every real token
    from seeing a pad, and the unmasked causal kernel is faster (same loss)."""
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (ids, n_prompt) in enumerate(batch):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, n_prompt:len(ids)] = torch.tensor(ids[n_prompt:])
        mask[i, :len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> list[int]:
    """Indices of the examples in the batch at optimizer step `step` (epochs of fresh permutations)."""
    per_epoch = max(n // batch_size, 1)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return perm[pos * batch_size:(pos + 1) * batch_size].tolist()


def lr_lambda(step: int, total: int, warmup_ratio: float) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warmup = max(int(total * warmup_ratio), 1)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# What a resumed SFT run may change: its evaluation / saving / logging cadence, evaluation batch
# size, where and how fast it runs (and the RL settings it does not read).
RESUME_FREE = ("sft.eval_every", "sft.save_every", "sft.log_every", "eval.batch_size", "output_dir", "run_name",
               "device", "num_threads", "task.grade_timeout_s", "task.grade_workers", "rl.", "deepspeed.", "engine",
               "model.gradient_checkpointing")


def sft_steps(s, examples: int) -> int:
    """Optimizer steps: sft.epochs passes over the `examples` SFT examples in batches of
    sft.batch_size where sft.epochs is set (the authors' SFT: 2 epochs), else sft.max_steps."""
    return math.ceil(s.epochs * examples / s.batch_size) if s.epochs else s.max_steps


def run_name(cfg: Config) -> str:
    return cfg.run_name or f"sft-{cfg.task.name}-s{cfg.seed}"


def train_sft(cfg: Config, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) an SFT run; returns the run's summary. The final model is in `<run>/final`."""
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    run = RunDir(Path(cfg.output_dir) / run_name(cfg))
    summary_path = run.path / "summary.json"
    if summary_path.exists() and (run.final / "config.json").exists():
        import json

        return json.loads(summary_path.read_text())
    if ckpt.latest_checkpoint(run.checkpoints) is not None:
        check_unchanged(run.config, cfg, RESUME_FREE)
    atomic_write_text(run.config, to_yaml(cfg))
    commit = git_commit()
    device = str(resolve_device(cfg.device))  # auto: the GPU where there is one (the paper preset's)
    task = load_task(cfg.task, with_sft=True)
    set_timeout(cfg.task.grade_timeout_s)

    # Weights and AdamW's state in fp32, the forward and backward passes in model.dtype where it is
    # bf16 or fp16 (autocast): updates of lr 1e-5 (the authors' SFT rate) would mostly round away
    # in bf16 weights, whose 8-bit mantissa resolves 0.4% of a weight.
    precision = None if cfg.model.dtype == "float32" else cfg.model.dtype
    resume = ckpt.latest_checkpoint(run.checkpoints)
    if resume is not None:
        tokenizer = load_tokenizer(resume)
        model = load_model(resume, "float32", device)
    elif cfg.model.name_or_path is None:
        texts = [task.prompt(e["question"]) + task.format.target(e["solution"]) for e in task.sft_data[:TOKENIZER_TEXTS]]
        tokenizer = build_tokenizer(texts, cfg.model.vocab_size)
        model = build_tiny_model(cfg.model, tokenizer, cfg.seed).to(device)
    else:
        tokenizer = load_tokenizer(cfg.model.name_or_path)
        model = load_model(cfg.model.name_or_path, "float32", device)
    model.train()
    if cfg.model.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    data = encode_examples(task.sft_data, tokenizer, cfg.model.max_length, task.format)
    s = cfg.sft
    steps = sft_steps(s, len(data))
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay,
                                  betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_lambda(k, steps, s.warmup_ratio))
    on = torch.device(device).type
    scaler = torch.amp.GradScaler(on, enabled=precision == "float16" and on == "cuda")  # fp16's loss scaling
    start, elapsed = 0, 0.0
    if resume is not None:
        state = ckpt.load_state(resume)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        start, elapsed = state["step"], state["elapsed_s"]
        truncate_jsonl(run.metrics, state["num_records"])
    else:
        ckpt.seed_everything(cfg.seed)
        run.metrics.unlink(missing_ok=True)

    engines = []  # made once, on the first evaluation; later ones load the newer weights

    def eval_now(limit: int | None, num_samples: int) -> dict[str, Any]:
        model.eval()
        if engines:
            engines[0].load_weights(model)
        else:
            engines.append(make_engine(cfg.engine, model, tokenizer, cfg.eval.batch_size, bos=cfg.task.prompt_bos,
                                       vllm_memory=cfg.vllm_memory))
        engine = engines[0]
        result = evaluate(engine, task.test[:limit] if limit else task.test, cfg.task.name,
                          batch_size=cfg.eval.batch_size, max_new_tokens=cfg.eval.max_new_tokens,
                          num_samples=num_samples, temperature=cfg.eval.temperature, top_p=cfg.eval.top_p,
                          seed=cfg.seed, progress=progress, flaw_ops=tuple(cfg.task.flaw_ops), fmt=task.format)
        model.train()
        return result

    t0 = time.time() - elapsed
    bar = tqdm(range(start, steps), desc=f"sft {cfg.task.name}", disable=not progress, initial=start, total=steps)
    for step in bar:
        batch = collate([data[i] for i in batch_indices(step, len(data), s.batch_size, cfg.seed)],
                        tokenizer.pad_token_id)
        with autocast(torch.device(device), precision):
            loss = model(input_ids=batch["input_ids"].to(device), labels=batch["labels"].to(device)).loss.float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SFT loss is {loss.item()} at step {step}; the last good "
                                     f"checkpoint is kept in {run.checkpoints}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        done = step + 1
        if done % s.log_every == 0 or done == steps:
            run.log({"step": done, "train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0],
                     "time/elapsed_s": time.time() - t0})
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if s.eval_every and done % s.eval_every == 0 and done < steps:
            result = eval_now(limit=200, num_samples=0)
            run.log({"step": done, **log_fields(result), "eval/num_problems": result["num_problems"],
                     "time/elapsed_s": time.time() - t0})
        if done % s.save_every == 0 and done < steps:
            ckpt.save_checkpoint(run.checkpoints, done, model, tokenizer, {
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "elapsed_s": time.time() - t0, "num_records": len(read_jsonl(run.metrics))},
                files=task.format.files())
    train_time = time.time() - t0

    ckpt.save_model_atomic(run.final, model, tokenizer, task.format.files())
    result = eval_now(limit=None, num_samples=cfg.eval.num_samples)
    atomic_write_json(run.eval_file("test"), result)
    summary = {
        "task": cfg.task.name, "seed": cfg.seed, "num_parameters": num_parameters(model),
        "train_steps": steps, "train_time_s": round(train_time, 1),
        "final_train_loss": next((r["train/loss"] for r in reversed(read_jsonl(run.metrics))
                                  if "train/loss" in r), None),
        "test_greedy_accuracy": result["greedy_accuracy"],
        "test_greedy_unparsed": result["greedy_unparsed"],
        "test_greedy_flawed": result.get("greedy_flawed"),
        "test_sampled_accuracy": result.get("sampled_accuracy"),
        "test_pass_at_k": result.get("pass_at_k"),
        "num_test": result["num_problems"], "final_model": str(run.final), "commit": commit,
    }
    atomic_write_json(summary_path, summary)
    return summary
