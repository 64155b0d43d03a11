"""The SFT start's held-out curve: has SFT finished? (greedy test accuracy, the share of greedy
answers whose first wrong step is the controlled flaw, their sum (what SFT has learned apart from
the flaw; it flattens when SFT is done), and unparseable answers, against SFT steps).

    python analysis/sft_curve.py runs/table1 --out results/sft_curve

Reads every SFT run folder under the given folders (metrics.jsonl with `eval/*` records every
`sft.eval_every` steps on the first 200 test problems; summary.json for the final evaluation on
the whole test split). Writes curve.csv and sft_curve.{png,pdf}.
"""

from __future__ import annotations

import json
import sys

import pandas as pd

from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.runs import parse_folders, run_folders
from vineppo.config import load_config
from vineppo.runio import atomic_write_text, git_commit, read_jsonl


def collect(folders) -> pd.DataFrame:
    rows = []
    for d in run_folders(folders, marker="summary.json"):
        s = json.loads((d / "summary.json").read_text())
        if "algo" in s or not (d / "metrics.jsonl").exists():
            continue  # an RL run
        task = load_config(d / "config.yaml").task.name
        for r in read_jsonl(d / "metrics.jsonl"):
            if "eval/greedy_accuracy" in r:
                rows.append({"run": d.name, "task": task, "step": r["step"], "problems": r["eval/num_problems"],
                             "greedy_accuracy": r["eval/greedy_accuracy"],
                             "greedy_flawed": r.get("eval/greedy_flawed"), "greedy_unparsed": r.get("eval/greedy_unparsed")})
        rows.append({"run": d.name, "task": task, "step": s["train_steps"], "problems": s["num_test"],
                     "greedy_accuracy": s["test_greedy_accuracy"], "greedy_flawed": s.get("test_greedy_flawed"),
                     "greedy_unparsed": s.get("test_greedy_unparsed")})
    df = pd.DataFrame(rows)
    if not df.empty:  # right, or wrong only through the flaw: what SFT has learned apart from it
        df["right_but_for_the_flaw"] = df["greedy_accuracy"] + df["greedy_flawed"]
    return df


def plot(df: pd.DataFrame, out) -> None:
    plt = pyplot()
    tasks = list(dict.fromkeys(df["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        g = df[df["task"] == task].sort_values("step")
        for col, label in (("greedy_accuracy", "greedy accuracy"), ("greedy_flawed", "first error = the flaw"),
                           ("right_but_for_the_flaw", "right, or wrong first at the flaw"),
                           ("greedy_unparsed", "no parseable answer")):
            if g[col].notna().any():
                ax.plot(g["step"], g[col], marker="o", label=label)
        ax.set(xlabel="SFT steps", ylabel="fraction of test problems (greedy)", ylim=(0, 1),
               title=f"SFT on {task}: held-out curve")
        ax.legend()
    fig.tight_layout()
    save(fig, out, "sft_curve")


def main(argv: list[str] | None = None) -> int:
    args = parse_folders(argv, __doc__, "results/sft_curve")
    if args is None:
        return 2
    df = collect(args.folders)
    if df.empty:
        print(f"no finished SFT runs under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "curve.csv", df.to_csv(index=False))
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"folders": [str(f) for f in args.folders], "runs": sorted(df["run"].unique().tolist()),
         "commit": git_commit()}, indent=2))
    plot(df, args.out)
    print(df.to_string(index=False))
    print(f"wrote {args.out}/curve.csv, sft_curve.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
