"""Has PPO's value network learned anything? Its fit to the returns it trains on, iteration by
iteration, for each value-network learning rate among the runs, next to VinePPO's MC values on the
same measure (beyond the paper, which trains policy and value network at one rate over ~650
iterations; a short run may end before its critic has learned, and PPO's GAE advantages are then
plain returns).

    python analysis/critic.py results/critic_lr_hard/runs results/value_fit_hard/runs --out results/critic_lr_hard

Reads every finished PPO and VinePPO run's metrics.jsonl: per iteration `value/explained_variance`
(1 - Var(R - V) / Var(R) over response tokens: 1 exact, 0 no better than a constant; PPO's value
network before that iteration's update, VinePPO's MC values), `value/mean` against
`value/mean_return`, `loss/value` (PPO), and the test accuracy where evaluated. Each run's
estimator: "value net lr <rate>" (with ", no value clip" for `rl.value_clip=null`, ", head normal" for
the authors' drawn value head, `rl.value_head_init=normal`) or "MC K=<K>". Writes critic.csv (per run and iteration),
table.csv (mean and std over seeds per estimator and iteration), provenance.json and
critic.{png,pdf}. Runs logged before these keys existed are listed and left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.runs import parse_folders, run_folders, seed_table
from vineppo.config import RLConfig
from vineppo.runio import atomic_write_text, git_commit, read_jsonl

KEYS = {"value/explained_variance": "explained_variance", "value/mean": "mean_value",
        "value/mean_return": "mean_return", "loss/value": "value_loss"}


def collect(folders: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """One row per PPO / VinePPO run and iteration; the names of such runs without value statistics."""
    rows, left_out = [], []
    for d in run_folders(folders, marker="summary.json"):
        summary = json.loads((d / "summary.json").read_text())
        if summary.get("algo") not in ("ppo", "vineppo"):
            continue
        rl = (yaml.safe_load((d / "config.yaml").read_text()) or {}).get("rl") or {}
        policy_lr = rl.get("learning_rate")
        value_lr = (rl.get("value_learning_rate") or policy_lr) if summary["algo"] == "ppo" else None
        clip = rl.get("value_clip", RLConfig.value_clip)
        estimator = (f"value net lr {value_lr:g}" + (", no value clip" if clip is None else
                                                     f", value clip {clip:g}" if clip != RLConfig.value_clip else "")
                     if value_lr is not None else f"MC K={rl.get('vine_k')}")
        if value_lr is not None and rl.get("value_head_init", RLConfig.value_head_init) != RLConfig.value_head_init:
            estimator += f", head {rl['value_head_init']}"  # the authors' drawn head (rl.value_head_init)
        if rl.get("whiten_advantages", True) is False:
            estimator += ", advantages not whitened"
        records = read_jsonl(d / "metrics.jsonl")
        if not records or "value/explained_variance" not in records[0]:
            left_out.append(d.name)
            continue
        for r in records:
            rows.append({"run": d.name, "algo": summary["algo"], "estimator": estimator, "seed": summary.get("seed"),
                         "policy_lr": policy_lr, "value_lr": value_lr,
                         "iteration": r["iteration"], **{v: r.get(k) for k, v in KEYS.items()},
                         "test_accuracy": r.get("eval/greedy_accuracy")})
    return pd.DataFrame(rows), left_out


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per estimator and iteration."""
    cols = [*KEYS.values(), "test_accuracy"]
    return seed_table(rows, cols, ["estimator", "iteration"])


def plot(t: pd.DataFrame, out: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, g in t.groupby("estimator"):
        for ax, col in zip(axes, ("explained_variance", "mean_value", "test_accuracy"), strict=True):
            ax.errorbar(g["iteration"], g[f"{col}_mean"], yerr=g[f"{col}_std"], marker="o", capsize=2, label=label)
        axes[1].plot(g["iteration"], g["mean_return_mean"], ls=":", color=axes[1].lines[-1].get_color())
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set(xlabel="iteration", ylabel="explained variance of the returns", title="value fit (PPO: before each update)")
    axes[1].set(xlabel="iteration", ylabel="mean V (solid) / mean return (dotted)", title="value level")
    axes[2].set(xlabel="iteration", ylabel="greedy test accuracy", title="test accuracy")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    save(fig, out, "critic")


def main(argv: list[str] | None = None) -> int:
    args = parse_folders(argv, __doc__, "results/critic")
    if args is None:
        return 2
    rows, left_out = collect(args.folders)
    if rows.empty:
        print(f"no PPO or VinePPO runs with value statistics under {', '.join(map(str, args.folders))}"
              + (f" (logged before them: {', '.join(left_out)})" if left_out else ""), file=sys.stderr)
        return 2
    t = table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "critic.csv", rows.to_csv(index=False))
    atomic_write_text(args.out / "table.csv", t.to_csv(index=False))
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"folders": [str(f) for f in args.folders], "runs": sorted(set(rows["run"])), "left_out": left_out,
         "commit": git_commit()}, indent=2))
    plot(t, args.out)
    show = ["estimator", "iteration", "seeds", "explained_variance_mean", "explained_variance_std", "mean_value_mean",
            "mean_return_mean", "test_accuracy_mean", "test_accuracy_std"]
    print(t[show].round({c: 3 for c in show[3:]}).to_string(index=False))
    if left_out:
        print("runs without value statistics (left out): " + ", ".join(left_out))
    print(f"wrote {args.out}/critic.csv, table.csv, critic.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
