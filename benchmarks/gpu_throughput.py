"""PPO and VinePPO iterations at RhoMath-1.1B's size: generation and training tokens/s, and MFU.

    python benchmarks/gpu_throughput.py                    # on a GPU: RhoMath-1.1B's architecture
    python benchmarks/gpu_throughput.py --scale tiny       # anywhere: a small model, to check the script

No download: the model is RhoMath-1.1B's architecture (a Llama: 22 layers, hidden 2048, MLP 5632,
32 heads, 4 KV heads, vocabulary 32,000) built from its config with random weights, bf16 on a GPU;
the tokenizer is built here from the `arith` task's text. A random model writes to the length limit,
so every response is `--max-new-tokens` long: this measures the machinery at a known length, not
a trained model's behaviour. Each method runs `--iterations` iterations of the real training loop
with the `hf` engine; the first iteration is warm-up and left out.

Reported per method, from the run's own metrics (time/generation_s, time/value_estimation_s,
time/training_s; tokens from train/tokens_generated and train/tokens_trained):
- generation tokens/s: response tokens sampled per second of rollout generation;
- VinePPO MC tokens/s: MC continuation tokens per second of value estimation (estimated as
  states x K x the mean remaining length);
- training tokens/s: (prompt + response) tokens x epochs per second of the update;
- MFU: model FLOPs of the iteration's forward/backward passes (see `iteration_flops`) over its
  wall-clock time x the GPU's peak bf16 FLOP/s (`--peak-tflops`, else a table by device name).

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

RHO_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
          "num_key_value_heads": 4, "vocab_size": 32000}
"""RhoMath-1.1B (TinyLlama-1.1B's architecture)."""
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 512}

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}
"""Dense bf16 peak by device-name substring (SXM parts; a PCIe H100 is lower: pass --peak-tflops)."""


def forward_flops(num_params: int, tokens: int) -> float:
    """2 x parameters x tokens: one forward pass (the usual estimate; attention's extra is small at
    these lengths and left out)."""
    return 2.0 * num_params * tokens


def iteration_flops(algo: str, num_params: int, gen_tokens: int, trained_tokens: int, epochs: int,
                    mc_tokens: int = 0) -> float:
    """Model FLOPs of one iteration: sampling (one forward per generated token), the old and reference
    log-prob passes, `epochs` forward + backward passes (3x a forward); PPO adds its value network's
    pass for GAE and its forward + backward in every epoch; VinePPO adds its MC continuations."""
    flops = forward_flops(num_params, gen_tokens + mc_tokens)
    flops += 2 * forward_flops(num_params, trained_tokens)
    flops += epochs * 3 * forward_flops(num_params, trained_tokens)
    if algo == "ppo":
        flops += forward_flops(num_params, trained_tokens) + epochs * 3 * forward_flops(num_params, trained_tokens)
    return flops


def peak_flops(device_name: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return tflops * 1e12
    return None


def build_checkpoint(arch: dict, folder: Path, dtype: str) -> int:
    """Save a random model of `arch` and a tokenizer built from arith text; returns the parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from vineppo.config import TaskConfig
    from vineppo.models import build_tokenizer
    from vineppo.tasks import PROMPT, load_task

    task = load_task(TaskConfig(name="arith", num_train=2000, num_test=64))
    tok = build_tokenizer([PROMPT.format(question=e["question"]) + e["solution"] for e in task.train],
                          min(arch["vocab_size"], 2000))
    config = LlamaConfig(**arch, max_position_embeddings=4096, tie_word_embeddings=False,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def run_method(algo: str, init: Path, out: Path, args) -> tuple[list[dict], dict]:
    from vineppo.config import make_config
    from vineppo.loop import train_rl
    from vineppo.runio import read_jsonl

    cfg = make_config([
        "preset=tiny", "task.name=arith", "task.num_train=2000", "task.num_test=64", f"rl.init={init}",
        f"rl.algo={algo}", f"rl.iterations={args.iterations}", f"rl.eval_every={10**6}",
        f"rl.prompts_per_iter={args.prompts}", f"rl.samples_per_prompt={args.samples}",
        f"rl.minibatch_size={args.minibatch}", "rl.epochs=2", f"rl.max_new_tokens={args.max_new_tokens}",
        f"rl.vine_k={args.k}", f"rl.vine_max_steps={args.vine_max_steps}", f"rl.rollout_batch_size={args.rollout_batch}",
        f"model.dtype={args.dtype}", f"model.max_length={args.max_new_tokens + 256}", "rl.save_every=1000000",
        f"output_dir={out}", f"run_name={algo}", f"device={args.device}", "eval.max_new_tokens=16",
        "eval.batch_size=64", *args.set,
    ])
    summary = train_rl(cfg)
    return read_jsonl(out / algo / "metrics.jsonl"), summary


def summarise(algo: str, records: list[dict], num_params: int, epochs: int, k: int, peak: float | None,
              estimate_gib: float | None = None) -> dict:
    rows = records[1:] or records  # iteration 1 is warm-up
    gen_tokens = statistics.fmean(r["train/tokens_generated"] for r in rows)
    trained = statistics.fmean(r["train/tokens_trained"] for r in rows)
    t_gen = statistics.fmean(r["time/generation_s"] for r in rows)
    t_val = statistics.fmean(r["time/value_estimation_s"] for r in rows)
    t_train = statistics.fmean(r["time/training_s"] for r in rows)
    # MC continuation tokens: each state's K continuations write the rest of a response; a random
    # model always writes to the limit, so about half a response per state on average.
    mc_tokens = 0
    if algo == "vineppo":
        states = statistics.fmean(r["vine/num_unique_states"] for r in rows)
        episodes = statistics.fmean(r["train/num_units"] for r in rows)
        mc_tokens = int(states * k * (gen_tokens / episodes) / 2)
    flops = iteration_flops(algo, num_params, int(gen_tokens), int(trained), epochs, mc_tokens)
    total = t_gen + t_val + t_train
    return {
        "method": algo, "s_per_iteration": round(total, 2),
        "generation_tokens_per_s": round(gen_tokens / t_gen, 1),
        "mc_tokens_per_s": round(mc_tokens / t_val, 1) if mc_tokens else None,
        "training_tokens_per_s": round(trained * epochs / t_train, 1),
        "model_tflops_per_s": round(flops / total / 1e12, 3),
        "mfu": round(flops / total / peak, 4) if peak else None,
        # The before-start memory estimate (vineppo.memory) against what torch allocated at most
        # on the GPU (memory/peak_gib; absent on the CPU).
        "memory_estimate_gib": estimate_gib,
        "memory_peak_gib": round(max(r["memory/peak_gib"] for r in records), 2)
        if all("memory/peak_gib" in r for r in records) else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["rho-1b", "tiny"], default="rho-1b")
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--minibatch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--vine-max-steps", type=int, default=4)
    ap.add_argument("--rollout-batch", type=int, default=512)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on a GPU, float32 on the CPU")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--methods", nargs="+", default=["ppo", "vineppo"])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override for every run (repeatable), e.g. rl.shared_prefix=false")
    args = ap.parse_args()
    from vineppo.config import ConfigError, make_config

    try:  # a bad --set stops here, before minutes of building and loading
        make_config(["preset=tiny", *args.set])
    except ConfigError as e:
        ap.error(f"--set: {e}")

    import torch

    on_gpu = torch.cuda.is_available() and args.device != "cpu"
    args.dtype = args.dtype or ("bfloat16" if on_gpu else "float32")
    device_name = torch.cuda.get_device_name(0) if on_gpu else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"
    peak = peak_flops(device_name, args.peak_tflops) if on_gpu or args.peak_tflops else None
    arch = RHO_1B if args.scale == "rho-1b" else TINY
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        init = Path(tmp) / "init"
        num_params = build_checkpoint(arch, init, args.dtype)
        for algo in args.methods:
            records, summary = run_method(algo, init, Path(tmp) / "runs", args)
            results.append(summarise(algo, records, num_params, 2, args.k, peak, summary.get("memory_estimate_gib")))
    print(f"{'method':<9} {'s/iter':>7} {'gen tok/s':>10} {'MC tok/s':>10} {'train tok/s':>12} {'TFLOP/s':>8} {'MFU':>6} "
          f"{'GiB est.':>9} {'GiB peak':>9}")
    for r in results:
        mc = f"{r['mc_tokens_per_s']:.0f}" if r["mc_tokens_per_s"] else "-"
        mfu = f"{r['mfu']:.3f}" if r["mfu"] is not None else "-"
        peak_gib = f"{r['memory_peak_gib']:.2f}" if r["memory_peak_gib"] is not None else "-"
        print(f"{r['method']:<9} {r['s_per_iteration']:>7} {r['generation_tokens_per_s']:>10.0f} {mc:>10} "
              f"{r['training_tokens_per_s']:>12.0f} {r['model_tflops_per_s']:>8} {mfu:>6} "
              f"{r['memory_estimate_gib']:>9} {peak_gib:>9}")
    print(json.dumps({"device": device_name, "scale": args.scale, "parameters": num_params, "dtype": args.dtype,
                      "torch": torch.__version__, "overrides": args.set, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
