"""Will the paper table's jobs fit? The RL memory check (`loop.memory_parts`) for every method of
`sweep=table1 preset=paper` on both base models, with each job's own settings (the preset, its
per-task and per-method sections, the base's per_algo ones) and its profile's process count.

    python scripts/paper_memory.py                 # a Markdown table
    python scripts/paper_memory.py --gpu-gib 80 --prompt-tokens gsm8k=256 math=512

No download: each base model is its architecture's config.json (the shapes below), written to a
temporary folder; nothing else of a checkpoint is read. The datasets are not read either: the
longest prompt and the number of RL problems are given (`--prompt-tokens`; 7,100 GSM8K / 11,500
MATH problems after the validation split), and only the host-memory column depends on them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SHAPES = {  # config.json of each released checkpoint's architecture (Llama)
    "rho1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
              "num_key_value_heads": 4, "vocab_size": 32000},  # RhoMath-1.1B (TinyLlama-1.1B's)
    "deepseek7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 30,
                   "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 102400},  # DeepSeekMath-7B
}
TRAIN_PROBLEMS = {"gsm8k": 7100, "math": 11500}
"""RL problems after the validation split (presets/paper.yaml's per_task notes)."""


def plan(gpu_gib: float, prompt_tokens: dict[str, int]) -> list[dict]:
    import torch
    from transformers import LlamaConfig

    from vineppo.config import make_config
    from vineppo.launch import expand, load_profile, load_sweep
    from vineppo.loop import memory_parts
    from vineppo.memory import check_run_fits

    rows = []
    jobs = [j for j in expand(load_sweep("table1"), "table1", "paper", 1, {}) if j.command == "rl"]
    gib, gpu = 2**30, torch.device("cuda", 0)
    with tempfile.TemporaryDirectory() as tmp:
        for base, shape in SHAPES.items():
            LlamaConfig(**shape, tie_word_embeddings=False).save_pretrained(Path(tmp) / base)
        for job in jobs:
            processes = int(load_profile(job.profile, {}).get("tasks_per_node", 1)) if job.profile else 1
            cfg = make_config({**job.overrides, "rl.init": str(Path(tmp) / job.base),
                               "deepspeed.enabled": processes > 1 or job.overrides.get("deepspeed.enabled", False)})
            task = cfg.task.name
            parts, episodes = memory_parts(cfg, prompt_tokens[task], TRAIN_PROBLEMS[task], gpu, processes,
                                           gpu_bytes=int(gpu_gib * gib))
            try:
                check_run_fits(parts, 0, gpu, processes, lambda d: int(gpu_gib * gib))
                fits = True
            except Exception:  # noqa: BLE001 - a ConfigError: it does not fit
                fits = False
            rows.append({"base": job.base, "method": cfg.rl.algo, "task": task, "processes": processes,
                         "offload": cfg.deepspeed.offload_optimizer, "gpu_gib": sum(parts.values()) / gib,
                         "logits_gib": parts.get("logits (one mini-batch)", 0) / gib,
                         "node_episodes_gib": processes * episodes / gib, "fits": fits})
    return rows


def table(rows: list[dict], gpu_gib: float) -> str:
    lines = [f"| base, method (processes) | GSM8K: GiB per GPU | MATH: GiB per GPU | fits {gpu_gib:g} GiB | "
             "episodes per node, GSM8K / MATH (GiB) |", "|---|---|---|---|---|"]
    for base in SHAPES:
        for method in dict.fromkeys(r["method"] for r in rows):
            by = {r["task"]: r for r in rows if r["base"] == base and r["method"] == method}
            if not by:
                continue
            g, m = by["gsm8k"], by["math"]
            name = f"{base}, {method}{' (Adam on the CPU)' if g['offload'] else ''} ({g['processes']})"
            fits = "yes" if g["fits"] and m["fits"] else ("GSM8K only" if g["fits"] else "no")
            lines.append(f"| {name} | {g['gpu_gib']:.1f} | {m['gpu_gib']:.1f} | {fits} | "
                         f"{g['node_episodes_gib']:.1f} / {m['node_episodes_gib']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu-gib", type=float, default=80.0, help="each GPU's memory (A100 80GB / H100: 80)")
    ap.add_argument("--prompt-tokens", nargs="+", default=["gsm8k=256", "math=512"], metavar="TASK=N",
                    help="the longest prompt of each task, in tokens (an assumption: the datasets are not read)")
    args = ap.parse_args()
    prompts = {}
    for item in args.prompt_tokens:
        task, _, n = item.partition("=")
        if task not in TRAIN_PROBLEMS or not n.isdigit():
            ap.error(f"--prompt-tokens: '{item}' is not TASK=N with TASK one of {', '.join(TRAIN_PROBLEMS)}")
        prompts[task] = int(n)
    if set(prompts) != set(TRAIN_PROBLEMS):
        ap.error(f"--prompt-tokens needs both {' and '.join(TRAIN_PROBLEMS)}")
    print(table(plan(args.gpu_gib, prompts), args.gpu_gib))
    return 0


if __name__ == "__main__":
    sys.exit(main())
