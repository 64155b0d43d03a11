"""Throughput of VinePPO's value-estimation workload: naive `model.generate` vs the engines.

The workload is what one tiny-preset VinePPO iteration asks for: episodes sampled from the SFT
policy, every step boundary of every episode (capped at `--max-steps`), K continuations per state.
All engines run the same states with the same model and sampling settings in this one process.

    .venv/bin/python benchmarks/rollout_throughput.py --init runs/sft-arith-s0/final

Each engine runs `--repeats` times (3) and is timed by its median. Engines that are not installed
(vllm outside `.venv-vllm`) are skipped, and the output says so and why. Prints a table and, as its
last line, one JSON object with the speedups, the device and what was skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from vineppo.config import TaskConfig
from vineppo.inference import HFEngine, SamplingParams
from vineppo.models import load_model, load_tokenizer, resolve_device
from vineppo.steps import step_boundaries
from vineppo.tasks import PROMPT, load_task


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory of the phase on CUDA; on CPU, the process's peak RSS so far (monotone)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def value_states(model, tok, args) -> list[str]:
    """Prompt + response prefix at each step boundary of `args.episodes` sampled episodes."""
    task = load_task(TaskConfig(name=args.task, seed=0))
    examples = random.Random(0).sample(task.train, args.episodes)
    prompts = [PROMPT.format(question=e["question"]) for e in examples]
    episodes = HFEngine(model, tok, batch_size=256).generate(prompts, SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=0))
    states = {}
    for prompt, comps in zip(prompts, episodes, strict=True):
        text = comps[0].text
        for off in (step_boundaries(text, args.task) or [0])[:args.max_steps]:
            states.setdefault(prompt + text[:off], None)
    return list(states)


def vllm_missing() -> str | None:
    """Why the vllm engine cannot run here, or None. vllm itself is what may be missing: our
    engine module imports without it, so importing that proves nothing."""
    try:
        import vllm  # noqa: F401
    except ImportError as e:
        return f"vllm is not installed in this environment ({e}); bash scripts/ensure_vllm_env.sh makes .venv-vllm"
    return None


def run_naive(model, tok, states, args, device) -> int:
    """One `model.generate` call per state with num_return_sequences=K; returns tokens generated."""
    torch.manual_seed(0)
    tokens = 0
    for s in states:
        enc = tok(s, return_tensors="pt", add_special_tokens=False).to(device)
        out = model.generate(**enc, do_sample=True, temperature=args.temperature, top_p=args.top_p,
                             num_return_sequences=args.k, max_new_tokens=args.max_new_tokens,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        for row in new.tolist():
            tokens += row.index(tok.eos_token_id) + 1 if tok.eos_token_id in row else len(row)
    return tokens


def run_engine(engine, states, args) -> int:
    out = engine.generate(states, SamplingParams(n=args.k, temperature=args.temperature, top_p=args.top_p,
                                                 max_new_tokens=args.max_new_tokens, seed=0))
    return sum(len(c.token_ids) for comps in out for c in comps)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default="runs/sft-arith-s0/final", help="SFT checkpoint (make tiny writes it)")
    ap.add_argument("--task", default="arith")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--k", type=int, default=9, help="MC continuations per state (paper: 9)")
    ap.add_argument("--max-steps", type=int, default=25)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--temperature", type=float, default=0.6)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--batch-size", type=int, default=256, help="hf engine: sequences in flight")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each engine; the median is reported")
    args = ap.parse_args(argv)
    if not Path(args.init).exists() and args.init.startswith((".", "/", "runs")):
        sys.exit(f"checkpoint {args.init} not found: run `make tiny` first, or pass --init")

    device = resolve_device(args.device)
    model, tok = load_model(args.init, args.dtype, str(device)).eval(), load_tokenizer(args.init)
    states = value_states(model, tok, args)
    print(f"workload: {args.episodes} episodes, {len(states)} unique states, K={args.k}, "
          f"{len(states) * args.k} continuations, device={device}")

    rows = {}
    candidates = [("naive", lambda: run_naive(model, tok, states, args, device)),
                  ("hf", lambda: run_engine(HFEngine(model, tok, batch_size=args.batch_size), states, args))]
    skipped = {}
    why = vllm_missing()
    if why is None:
        from vineppo.inference.vllm import VLLMEngine

        vllm_engine = VLLMEngine.from_checkpoint(args.init, batch_size=args.batch_size)
        candidates.append(("vllm", lambda: run_engine(vllm_engine, states, args)))
    else:
        skipped["vllm"] = why
        print(f"skipping vllm: {why}")
    for name, fn in candidates:
        reset_peak(device)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                tokens = fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        dt = statistics.median(times)
        rows[name] = {"seconds": dt, "runs": times, "tokens": tokens, "tokens_per_s": tokens / dt,
                      "states_per_s": len(states) / dt, "peak_memory_mb": peak_memory_mb(device)}

    print(f"{'engine':<8}{'seconds (median)':>17}{'runs':>22}{'tokens':>9}{'tokens/s':>10}{'states/s':>10}"
          f"{'peak MB':>9}")
    for name, r in rows.items():
        runs = " ".join(f"{t:.1f}" for t in r["runs"])
        print(f"{name:<8}{r['seconds']:>17.2f}{runs:>22}{r['tokens']:>9}{r['tokens_per_s']:>10.0f}"
              f"{r['states_per_s']:>10.2f}{r['peak_memory_mb']:>9.0f}")
    if device.type == "cpu":
        print("(peak MB on CPU is the process's peak RSS so far, so it only grows down the table)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    naive = rows["naive"]["seconds"]
    result = {
        "hf_speedup_vs_naive": round(naive / rows["hf"]["seconds"], 2),
        "vllm_speedup_vs_naive": round(naive / rows["vllm"]["seconds"], 2) if "vllm" in rows else None,
        "device": name, "states": len(states), "k": args.k, "episodes": args.episodes,
        "tokens_per_s": {k: round(v["tokens_per_s"], 1) for k, v in rows.items()}, "skipped": skipped,
        "repeats": args.repeats,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
