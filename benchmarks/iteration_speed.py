"""Seconds per RL iteration, this tree against an earlier commit, on the same workload in one run.

    .venv/bin/python benchmarks/iteration_speed.py --init runs/table1/sft-arith/final --before 422bd55

The earlier commit is checked out into a temporary git worktree; each (version, method) pair then
runs the real training loop (`vineppo.loop.train_rl`) in a fresh child process whose `PYTHONPATH`
points at that version's `src/`, from the same SFT checkpoint, with the tiny preset's RL budget
(32 prompts x 8 samples, 2 epochs of mini-batches of 64), the same seed and thread count, no
evaluation until the end. Iteration 1 is warm-up and left out; the median of the rest is reported,
split into generation, value estimation (old/reference passes, PPO's values, VinePPO's MC) and
training, from the run's own metrics. Runs alternate before/after so drift in the machine's load
hits both sides alike. Each side runs its own tiny preset as it stands (from 607872a on, the update
in bf16 where the CPU has bf16 arithmetic: `rl.autocast=auto`); the same workload means the same
checkpoint, prompts, budget and seed.

Prints a table and, as its last line, one JSON object with the speed-ups (before / after).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, tempfile
from pathlib import Path
from vineppo.config import make_config
from vineppo.loop import train_rl
from vineppo.runio import read_jsonl
args = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as out:
    cfg = make_config(["preset=tiny", f"rl.algo={args['algo']}", f"rl.init={args['init']}",
                       f"task.name={args['task']}", f"rl.iterations={args['iterations']}",
                       f"rl.eval_every={10**6}", f"rl.save_every={10**6}", f"num_threads={args['threads']}",
                       f"output_dir={out}", "run_name=run", f"seed={args['seed']}"])
    train_rl(cfg)
    records = [r for r in read_jsonl(Path(out) / "run" / "metrics.jsonl")]
print("RESULT " + json.dumps([{k: r.get(k) for k in ("time/generation_s", "time/value_estimation_s",
                                                     "time/training_s", "train/reward")} for r in records]))
"""

PHASES = ("time/generation_s", "time/value_estimation_s", "time/training_s")


def worktree(commit: str, where: Path) -> Path:
    """`commit` checked out (detached) at `where`; the caller removes it."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), commit],
                   check=True, capture_output=True, text=True)
    return where


def run_once(src: Path, algo: str, args) -> list[dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
    payload = json.dumps({"algo": algo, "init": str(Path(args.init).resolve()), "task": args.task,
                          "iterations": args.iterations, "threads": args.threads, "seed": args.seed})
    # The checkpoint may be relative to the repository root; run from there.
    proc = subprocess.run([sys.executable, "-c", CHILD, payload], env=env, cwd=ROOT, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"{algo} at {src} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def summarise(records: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds per phase and per iteration over the iterations after the first."""
    steady = records[1:] or records
    total = [sum(r[p] for p in PHASES) for r in steady]
    return {"s_per_iter": statistics.median(total), "min": min(total), "max": max(total),
            **{p.split("/")[1].removesuffix("_s"): statistics.median(r[p] for r in steady) for p in PHASES},
            "reward": statistics.fmean(r["train/reward"] for r in records)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default="runs/table1/sft-arith/final", help="the tiny SFT checkpoint")
    ap.add_argument("--before", default="422bd55", help="the commit to compare against")
    ap.add_argument("--algos", nargs="+", default=["ppo", "vineppo", "grpo", "rloo"])
    ap.add_argument("--task", default="arith")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not Path(args.init).exists():
        sys.exit(f"checkpoint {args.init} not found: run `make tiny` (or pass --init)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vineppo-before-") as tmp:
        before = worktree(args.before, Path(tmp) / "before")
        try:
            for algo in args.algos:
                for version, src in (("before", before / "src"), ("after", ROOT / "src")):
                    print(f"running {algo} {version} ({args.iterations} iterations)...", flush=True)
                    rows.append({"algo": algo, "version": version, **summarise(run_once(src, algo, args))})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
                           capture_output=True)
    print(f"\n{'algo':<9}{'version':<8}{'s/iter':>8}{'min-max':>13}{'generation':>12}{'value est.':>12}"
          f"{'training':>10}{'reward':>8}")
    for r in rows:
        print(f"{r['algo']:<9}{r['version']:<8}{r['s_per_iter']:>8.2f}{r['min']:>7.2f}-{r['max']:<5.2f}"
              f"{r['generation']:>12.2f}{r['value_estimation']:>12.2f}{r['training']:>10.2f}{r['reward']:>8.3f}")
    get = {(r["algo"], r["version"]): r for r in rows}
    result = {f"{a}_speedup": round(get[a, "before"]["s_per_iter"] / get[a, "after"]["s_per_iter"], 2)
              for a in args.algos}
    result.update({"before": args.before, "iterations": args.iterations, "threads": args.threads,
                   "device": f"cpu ({platform.processor() or platform.machine()}, {args.threads} threads)",
                   "s_per_iter": {f"{r['algo']}/{r['version']}": round(r["s_per_iter"], 2) for r in rows}})
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
