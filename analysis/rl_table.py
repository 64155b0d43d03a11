"""Test accuracy after a fixed RL budget, per method, mean ± std over seeds, from run folders.

    python analysis/rl_table.py RUNS_DIR [--out results/rl_table]

Reads every `<RUNS_DIR>/<algo>-<task>-s<seed>/` (summary.json, metrics.jsonl, config.yaml) and
writes `table.md` and `table.csv` (one row per run) under --out. Runs without a summary are listed
as missing, not dropped silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import pandas as pd

from vineppo.runio import atomic_write_text, read_jsonl

RUN = re.compile(r"^(?P<algo>[a-z_]+)-(?P<task>[a-z_0-9]+)-s(?P<seed>\d+)$")


def collect(runs_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    rows, missing = [], []
    for d in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        m = RUN.match(d.name)
        if not m or m["algo"] == "sft":
            continue
        if not (d / "summary.json").exists():
            missing.append(d.name)
            continue
        s = json.loads((d / "summary.json").read_text())
        records = read_jsonl(d / "metrics.jsonl")
        rows.append({
            "algo": s["algo"], "task": s["task"], "seed": s["seed"], "iterations": s["iterations"],
            "grad_steps": s["grad_steps"], "test_accuracy": s["test_greedy_accuracy"],
            "final_train_reward": records[-1]["train/reward"] if records else None,
            "s_per_iteration": s["seconds_per_iteration"],
            "generation_s": sum(r["time/generation_s"] for r in records) / max(len(records), 1),
            "value_estimation_s": sum(r["time/value_estimation_s"] for r in records) / max(len(records), 1),
            "training_s": sum(r["time/training_s"] for r in records) / max(len(records), 1),
            "commit": s.get("commit"),
        })
    return pd.DataFrame(rows), missing


def markdown(df: pd.DataFrame, sft: dict[str, float], missing: list[str]) -> str:
    lines = ["| method | task | seeds | test accuracy (mean ± std) | grad steps | s / iteration "
             "| generation s | value est. s | training s |", "|---|---|---|---|---|---|---|---|---|"]
    for task, acc in sft.items():
        lines.append(f"| SFT (start) | {task} | - | {acc:.3f} | - | - | - | - | - |")
    for (algo, task), g in df.groupby(["algo", "task"], sort=False):
        std = g["test_accuracy"].std(ddof=1) if len(g) > 1 else 0.0
        lines.append(
            f"| {algo} | {task} | {len(g)} | {g['test_accuracy'].mean():.3f} ± {std:.3f} "
            f"| {int(g['grad_steps'].mean())} | {g['s_per_iteration'].mean():.1f} "
            f"| {g['generation_s'].mean():.1f} | {g['value_estimation_s'].mean():.1f} | {g['training_s'].mean():.1f} |")
    if missing:
        lines += ["", "Missing or unfinished runs: " + ", ".join(missing)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs_dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("results/rl_table"))
    ap.add_argument("--sft-eval", type=Path, action="append", default=[],
                    help="eval JSON of the SFT start point (from `vineppo eval`), for the first row")
    args = ap.parse_args(argv)
    if not args.runs_dir.is_dir():
        print(f"not a folder: {args.runs_dir}", file=sys.stderr)
        return 2
    df, missing = collect(args.runs_dir)
    if df.empty:
        print(f"no finished RL runs under {args.runs_dir}", file=sys.stderr)
        return 2
    order = ["restem", "dpo_plus", "ppo", "vineppo", "grpo", "rloo"]
    df["order"] = df["algo"].map({a: i for i, a in enumerate(order)})
    df = df.sort_values(["task", "order", "seed"]).drop(columns="order")
    sft = {}
    for path in args.sft_eval:
        r = json.loads(path.read_text())
        sft[r["task"]] = r["greedy_accuracy"]
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "table.csv", df.to_csv(index=False))
    table = markdown(df, sft, missing)
    atomic_write_text(args.out / "table.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
