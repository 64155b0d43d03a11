"""Side by side with TRL: GRPO and RLOO, ours and TRL's, on the same model, prompts, reward and budget.

    .venv/bin/python benchmarks/vs_trl.py --init runs/table1/sft-arith/final

TRL (pinned in the `trl` extra, installed in .venv by scripts/ensure_env.sh) gets the same tiny SFT
checkpoint, the same `arith` training prompts, our reward function (grade(prompt + completion),
0 for a completion cut off by the length limit), and the same per-iteration budget (the tiny preset's): 32 prompts x 8
samples sampled at T = 0.6, top-p 0.9, up to 160 new tokens, 2 epochs in mini-batches of 64
(8 optimizer steps per iteration), Adam at a constant 3e-5, grad-norm clip 1, clip 0.2, k3 KL to
the SFT model with coefficient 1e-4, float32 on both sides (ours with rl.autocast=null, whatever
the preset says), the same number of torch threads. In TRL terms:
per_device_train_batch_size=64, steps_per_generation=4, num_generations=8, num_iterations=2,
beta=1e-4, epsilon=0.2, max_steps = 8 x iterations, lr_scheduler_type=constant,
gradient_checkpointing=False (TRL's GRPO and RLOO default to True; our loop does not checkpoint).

Order, in one invocation, for each of `--seeds` in turn: TRL GRPO, our GRPO, TRL RLOO, our RLOO,
then our PPO and VinePPO for context. Each run is a fresh child process (so each has its own peak
memory). Iteration 1 is warm-up and left out of the per-iteration timing for every run; a row's
seconds per iteration are the median over its seeds' iterations. Test accuracy after the budget:
greedy, on the task's test set, by the same `evaluate` for every run; mean and spread over seeds.

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ITER_STEPS = 8
"""Optimizer steps per iteration: 256 episodes x 2 epochs / mini-batches of 64 (the tiny preset)."""


def settings(args) -> dict:
    """The shared budget, from our tiny preset (so the two sides read the same numbers)."""
    from vineppo.config import make_config

    cfg = make_config(["preset=tiny", f"rl.init={args.init}"])
    rl = cfg.rl
    assert rl.prompts_per_iter * rl.samples_per_prompt * rl.epochs // rl.minibatch_size == ITER_STEPS, \
        "the preset's batch shape changed; update ITER_STEPS and the TRL mapping"
    return {"prompts": rl.prompts_per_iter, "samples": rl.samples_per_prompt, "epochs": rl.epochs,
            "minibatch": rl.minibatch_size, "lr": rl.learning_rate, "temperature": rl.temperature,
            "top_p": rl.top_p, "max_new_tokens": rl.max_new_tokens, "clip": rl.clip, "kl": rl.kl_coef,
            "grad_clip": rl.grad_clip, "eval_max_new_tokens": cfg.eval.max_new_tokens}


def test_accuracy(model, tok, task_name: str, max_new_tokens: int) -> float:
    from vineppo.config import TaskConfig
    from vineppo.evaluate import evaluate
    from vineppo.inference import HFEngine
    from vineppo.tasks import load_task

    task = load_task(TaskConfig(name=task_name))
    model.eval()
    return evaluate(HFEngine(model, tok), task.test, task_name, max_new_tokens=max_new_tokens)["greedy_accuracy"]


def run_ours(algo: str, args, s: dict) -> dict:
    """Our loop (`vineppo.loop.train_rl`) for `args.iterations` iterations."""
    from vineppo.checkpoint import latest_checkpoint
    from vineppo.config import make_config
    from vineppo.loop import train_rl
    from vineppo.models import load_model, load_tokenizer
    from vineppo.runio import read_jsonl

    with tempfile.TemporaryDirectory() as out:
        cfg = make_config(["preset=tiny", f"rl.algo={algo}", f"rl.init={args.init}", f"task.name={args.task}",
                           f"rl.iterations={args.iterations}", f"rl.eval_every={args.iterations}",
                           f"rl.save_every={args.iterations}", f"num_threads={args.threads}",
                           f"output_dir={out}", "run_name=run", f"seed={args.seed}", "rl.autocast=null"])
        train_rl(cfg)
        records = read_jsonl(Path(out) / "run" / "metrics.jsonl")
        elapsed = [r["time/elapsed_s"] for r in records]
        per_iter = [b - a for a, b in zip([0.0] + elapsed[:-1], elapsed, strict=True)]
        tokens = [r["train/tokens_generated"] for r in records]
        last = latest_checkpoint(Path(out) / "run" / "checkpoints")
        acc = test_accuracy(load_model(last), load_tokenizer(last), args.task, s["eval_max_new_tokens"])
    return {"per_iter": per_iter, "tokens": tokens, "acc": acc}


def trl_config(algo: str, args, s: dict, output_dir: str):
    """The shared budget in TRL's terms: one generation batch of prompts x samples completions per
    iteration, reused for `epochs` passes (num_iterations) in mini-batches of `minibatch`."""
    from trl import GRPOConfig, RLOOConfig

    common = dict(output_dir=output_dir, report_to="none", save_strategy="no", logging_strategy="no",
                  use_cpu=True, bf16=False, seed=args.seed, data_seed=args.seed,
                  per_device_train_batch_size=s["minibatch"], gradient_accumulation_steps=1,
                  steps_per_generation=s["prompts"] * s["samples"] // s["minibatch"],
                  num_generations=s["samples"], num_iterations=s["epochs"], max_steps=ITER_STEPS * args.iterations,
                  learning_rate=s["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                  max_grad_norm=s["grad_clip"], beta=s["kl"], epsilon=s["clip"], temperature=s["temperature"],
                  top_p=s["top_p"], max_completion_length=s["max_new_tokens"], dataloader_num_workers=0,
                  # TRL's GRPO / RLOO checkpoint activations by default (recomputing the forward in
                  # the backward); our loop does not, so neither side does here.
                  gradient_checkpointing=False)
    if algo == "grpo":
        # Advantages standardised within each group, loss averaged over the mini-batch's tokens: ours.
        return GRPOConfig(**common, scale_rewards="group", loss_type="dapo")
    # Leave-one-out baseline; advantages then normalised over the batch, as our loop whitens them.
    return RLOOConfig(**common, normalize_advantages=True)


def run_trl(algo: str, args, s: dict) -> dict:
    """TRL's GRPOTrainer / RLOOTrainer with the shared budget mapped onto its settings."""
    import datasets
    from transformers import TrainerCallback
    from trl import GRPOTrainer, RLOOTrainer

    from vineppo.config import TaskConfig
    from vineppo.grading import grade
    from vineppo.models import load_model, load_tokenizer
    from vineppo.tasks import PROMPT, load_task

    tok = load_tokenizer(args.init)
    task = load_task(TaskConfig(name=args.task))
    ds = datasets.Dataset.from_list([{"prompt": PROMPT.format(question=e["question"]), "answer": e["answer"]}
                                     for e in task.train])
    tokens_per_iter: list[int] = []

    def reward(prompts, completions, completion_ids, answer, **_) -> list[float]:
        """Ours: 1 if the final answer is right; 0 if wrong, unparseable or cut off by the length limit."""
        tokens_per_iter.append(sum(len(ids) for ids in completion_ids))
        return [0.0 if tok.eos_token_id not in ids else grade(p + c, a, args.task)
                for p, c, ids, a in zip(prompts, completions, completion_ids, answer, strict=True)]

    marks: list[float] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            marks.append(time.perf_counter())

        def on_step_end(self, a, state, *rest, **k):
            if state.global_step % ITER_STEPS == 0:
                marks.append(time.perf_counter())

    trainer_cls = GRPOTrainer if algo == "grpo" else RLOOTrainer
    config = trl_config(algo, args, s, tempfile.mkdtemp())
    model = load_model(args.init)
    trainer = trainer_cls(model=model, reward_funcs=reward, args=config, train_dataset=ds, processing_class=tok,
                          callbacks=[Clock()])
    trainer.train()
    per_iter = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    acc = test_accuracy(trainer.model, tok, args.task, s["eval_max_new_tokens"])
    return {"per_iter": per_iter, "tokens": tokens_per_iter, "acc": acc}


def child(impl: str, algo: str, args, s: dict, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    try:
        out = (run_trl if impl == "trl" else run_ours)(algo, args, s)
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        queue.put(out)
    except Exception as e:  # noqa: BLE001 - report it in the parent, with the run's name
        queue.put({"error": f"{type(e).__name__}: {e}"})
        raise


def run_child(impl: str, algo: str, args, s: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=child, args=(impl, algo, args, s, queue))
    p.start()
    out = queue.get()
    p.join()
    if "error" in out:
        sys.exit(f"{impl} {algo} (seed {args.seed}) failed: {out['error']}")
    return out


def summarise(impl: str, algo: str, outs: list[dict]) -> dict:
    """One row from one run per seed: iteration times pooled (warm-up left out), accuracy per seed."""
    steady, steady_tokens, accs = [], [], []
    for out in outs:
        times = out["per_iter"][1:] or out["per_iter"]  # iteration 1 is warm-up
        steady += times
        steady_tokens += out["tokens"][1:len(times) + 1] if len(out["per_iter"]) > 1 else out["tokens"]
        accs.append(out["acc"])
    return {"impl": impl, "algo": algo, "median_s": statistics.median(steady), "min_s": min(steady),
            "max_s": max(steady), "iterations": len(outs[0]["per_iter"]), "seeds": len(outs),
            "tokens_per_s": sum(steady_tokens) / sum(steady), "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
            "acc": statistics.fmean(accs), "acc_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "accs": accs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default="runs/table1/sft-arith/final", help="the tiny SFT checkpoint")
    ap.add_argument("--task", default="arith")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--no-context", action="store_true", help="skip our PPO and VinePPO rows")
    args = ap.parse_args()
    if not Path(args.init).exists():
        sys.exit(f"checkpoint {args.init} not found: run `make tiny` (or pass --init)")
    try:
        import trl
        trl_version, skipped = trl.__version__, {}
    except ImportError as e:
        trl_version = None
        skipped = {"trl": f"TRL is not installed in this environment ({e}); bash scripts/ensure_env.sh "
                          "installs the pinned `trl` extra"}
        print(f"skipping TRL's rows: {skipped['trl']}")
    s = settings(args)
    plan = [("trl", "grpo"), ("ours", "grpo"), ("trl", "rloo"), ("ours", "rloo")]
    plan = [(impl, algo) for impl, algo in plan if impl not in skipped]
    if not args.no_context:
        plan += [("ours", "ppo"), ("ours", "vineppo")]
    outs: dict[tuple[str, str], list[dict]] = {key: [] for key in plan}
    for seed in args.seeds:
        for impl, algo in plan:
            print(f"running {impl} {algo} seed {seed} ({args.iterations} iterations)...", flush=True)
            out = run_child(impl, algo, argparse.Namespace(**{**vars(args), "seed": seed}), s)
            outs[impl, algo].append(out)
            print(f"  median {statistics.median(out['per_iter'][1:] or out['per_iter']):.2f} s/iteration, "
                  f"test accuracy {out['acc']:.3f}", flush=True)
    rows = [summarise(impl, algo, outs[impl, algo]) for impl, algo in plan]

    print(f"\n{'impl':<6}{'algo':<9}{'s/iter (median)':>16}{'min-max':>14}{'tokens/s':>10}{'peak RSS MB':>13}"
          f"{'test acc (mean +- sd)':>23}  per seed")
    for r in rows:
        print(f"{r['impl']:<6}{r['algo']:<9}{r['median_s']:>16.2f}{r['min_s']:>7.2f}-{r['max_s']:<6.2f}"
              f"{r['tokens_per_s']:>10.0f}{r['peak_rss_mb']:>13.0f}{r['acc']:>15.3f} +- {r['acc_sd']:.3f}"
              f"  {' '.join(f'{a:.3f}' for a in r['accs'])}")
    get = {(r["impl"], r["algo"]): r for r in rows}
    import torch

    def ratio(algo: str) -> float | None:
        if ("trl", algo) not in get:
            return None
        return round(get["trl", algo]["median_s"] / get["ours", algo]["median_s"], 2)

    def accuracy(algo: str) -> dict:
        return {impl: {"mean": round(get[impl, algo]["acc"], 4), "sd": round(get[impl, algo]["acc_sd"], 4),
                       "seeds": get[impl, algo]["accs"]} for impl in ("ours", "trl") if (impl, algo) in get}

    print(json.dumps({
        "grpo_speedup_vs_trl": ratio("grpo"), "rloo_speedup_vs_trl": ratio("rloo"),
        "grpo_acc": accuracy("grpo"), "rloo_acc": accuracy("rloo"), "seeds": args.seeds,
        "device": f"cpu ({platform.processor() or platform.machine()}, {args.threads} threads)",
        "trl": trl_version, "torch": torch.__version__, "iterations": args.iterations, "skipped": skipped,
    }))


if __name__ == "__main__":
    main()
