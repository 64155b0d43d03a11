"""Test accuracy against KL to the reference, against train accuracy, against K and against the
sampling temperature (the paper's KL, generalization, MC-samples and temperature figures).

    python analysis/ablations.py runs/compute_efficiency runs/mc_samples runs/temperature --out results/ablations

Reads every finished RL run under the given folders (config.yaml, metrics.jsonl, summary.json).
- accuracy vs KL: each evaluation's test accuracy against that iteration's KL(pi || pi_ref).
- accuracy vs train accuracy: each evaluation's test accuracy against the mean train reward
  (fraction of correct training episodes) of the iterations since the previous evaluation.
- accuracy vs K: final test accuracy of VinePPO runs against `rl.vine_k`.
- accuracy vs temperature: final test accuracy against `rl.temperature`, one line per method.
  These two compare runs of equal budget: runs whose iteration count is not the most common one
  are left out of them (and named). `--at-iteration N` compares the accuracy at evaluation N
  instead of the final one (where runs that end on a common plateau still differ; runs without an
  evaluation at N are named and left out).
- KL at an accuracy (`--kl-at ACC`): each run's KL at its first evaluation at or above ACC, and at
  its last, with the mean, std and count by method; runs that never reach ACC are counted, not
  averaged (kl_at.csv). The paper's "better accuracy at equal KL" read from the other side.
A panel whose setting takes a single value in the runs given is left out and named in the output.
A run found twice (the same settings, seed and logged numbers in two sweeps' folders) counts once.
Writes points.csv (every evaluation), final.csv (one row per run), provenance.json and
ablations.{png,pdf}; kl_at.csv with `--kl-at`. Unfinished runs are listed, not dropped silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from vineppo.analysis.plotting import method_palette, pyplot, save
from vineppo.analysis.runs import no_runs, parse_folders, run_folders
from vineppo.config import load_config
from vineppo.runio import atomic_write_text, git_commit, read_jsonl


def collect(folders: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """(points: one row per evaluation, final: one row per finished run, unfinished run folders,
    duplicates). Two sweeps can hold the same experiment (sweep=mc_samples' K = 9 and
    sweep=temperature's VinePPO at T = 0.6: same settings and seed, the same numbers): such a run is
    counted once, or it would count as two seeds; the copies are named."""
    runs = run_folders(folders)
    points, final, missing, duplicates = [], [], [], []
    seen: dict[str, str] = {}
    for d in runs:
        cfg = load_config(d / "config.yaml")
        if cfg.rl.init is None:
            continue  # an SFT run
        if not (d / "summary.json").exists():
            missing.append(str(d))
            continue
        summary = json.loads((d / "summary.json").read_text())
        run = {"run": f"{d.parent.name}/{d.name}", "algo": cfg.rl.algo, "task": cfg.task.name, "seed": cfg.seed,
               "k": cfg.rl.vine_k, "temperature": cfg.rl.temperature}
        records = list(read_jsonl(d / "metrics.jsonl"))
        same = json.dumps([{**run, "run": None}] + [{k: v for k, v in r.items() if not k.startswith("time/")}
                                                    for r in records])
        if same in seen:  # every logged number but timings equal, under the same settings and seed
            duplicates.append(f"{run['run']}: the same run as {seen[same]}, counted once")
            continue
        seen[same] = run["run"]
        since: list[float] = []
        for r in records:
            since.append(r["train/reward"])
            if "eval/greedy_accuracy" in r:
                points.append({**run, "iteration": r["iteration"], "kl_ref": r["train/kl_ref"],
                               "train_accuracy": sum(since) / len(since), "test_accuracy": r["eval/greedy_accuracy"]})
                since = []
        final.append({**run, "test_accuracy": summary["test_greedy_accuracy"], "iterations": summary["iterations"],
                      "commit": summary.get("commit")})
    return pd.DataFrame(points), pd.DataFrame(final), missing, duplicates


def same_budget(final: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The runs at the most common iteration count (final accuracies are compared at equal
    budgets only), and the names of those left out."""
    if final.empty:
        return final, []
    budget = final["iterations"].value_counts().idxmax()
    return final[final["iterations"] == budget], sorted(final.loc[final["iterations"] != budget, "run"])


def at_iteration(points: pd.DataFrame, final: pd.DataFrame, n: int) -> tuple[pd.DataFrame, list[str]]:
    """`final` with each run's test accuracy at evaluation `n` in place of its last one (and its
    budget set to n); the runs without an evaluation at n, named."""
    at = points.loc[points["iteration"] == n, ["run", "test_accuracy"]]
    kept = final.drop(columns="test_accuracy").merge(at, on="run").assign(iterations=n)
    return kept, [f"{r}: no evaluation at iteration {n}, left out of the K and temperature panels"
                  for r in sorted(set(final["run"]) - set(at["run"]))]


def kl_at(points: pd.DataFrame, accuracy: float) -> pd.DataFrame:
    """By method (VinePPO by K) and temperature: KL to the reference at each run's first evaluation
    with test accuracy >= `accuracy` (mean, std over the runs that reach it, how many do) and at
    its last evaluation."""
    rows = []
    method = points["algo"].where(points["algo"] != "vineppo", "vineppo_k" + points["k"].astype(str))
    for (name, temperature), runs in points.assign(method=method).sort_values("iteration").groupby(
            ["method", "temperature"]):
        reached = runs[runs["test_accuracy"] >= accuracy].groupby("run")[["iteration", "kl_ref"]].first()
        last = runs.groupby("run")["kl_ref"].last()
        rows.append({"method": name, "temperature": temperature, "accuracy": accuracy, "runs": len(last), "runs_reaching": len(reached),
                     "first_iteration_mean": reached["iteration"].mean(), "kl_at_accuracy_mean": reached["kl_ref"].mean(),
                     "kl_at_accuracy_std": reached["kl_ref"].std(), "kl_last_mean": last.mean(),
                     "kl_last_std": last.std()})
    return pd.DataFrame(rows)


def plot(points: pd.DataFrame, final: pd.DataFrame, out: Path, which: str = "final") -> list[str]:
    """Draw the panels the data supports; return the names of those left out, and of runs left
    out of the K and temperature panels for a different budget, and why."""
    import seaborn as sns

    plt = pyplot()
    final, other_budget = same_budget(final)
    colours = {"palette": method_palette()}
    vine = final[final["algo"] == "vineppo"]
    if not vine.empty:  # K varies at one temperature
        vine = vine[vine["temperature"] == vine["temperature"].mode()[0]]
    panels = ["kl", "train"]
    skipped = [f"{run}: a different number of iterations, left out of the K and temperature panels"
               for run in other_budget]
    if vine["k"].nunique() > 1:
        panels.append("k")
    else:
        skipped.append("accuracy vs K: the VinePPO runs given use a single K")
    at_k = final[final["k"] == final["k"].mode()[0]] if not final.empty else final  # temperature at one K
    if at_k["temperature"].nunique() > 1:
        panels.append("temperature")
    else:
        skipped.append("accuracy vs temperature: the runs given use a single temperature")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "kl":
            sns.scatterplot(data=points, x="kl_ref", y="test_accuracy", hue="algo", ax=ax, **colours)
            ax.set(xlabel="KL(policy || reference) per token (nats)", ylabel="test accuracy (greedy, fraction)",
                   title="accuracy vs KL to the reference")
        elif panel == "train":
            sns.scatterplot(data=points, x="train_accuracy", y="test_accuracy", hue="algo", ax=ax, **colours)
            lo = min(points["train_accuracy"].min(), points["test_accuracy"].min())
            hi = max(points["train_accuracy"].max(), points["test_accuracy"].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set(xlabel="train accuracy (fraction of correct episodes)", ylabel="test accuracy (greedy, fraction)",
                   title="test vs train accuracy")
        elif panel == "k":
            sns.lineplot(data=vine, x="k", y="test_accuracy", marker="o", errorbar="sd", ax=ax,
                         color=colours["palette"]["vineppo"])
            ax.set(xlabel="K (MC continuations per state)", ylabel=f"{which} test accuracy (greedy, fraction)",
                   title="VinePPO: accuracy vs K", xticks=sorted(vine["k"].unique()))
        else:
            sns.lineplot(data=at_k, x="temperature", y="test_accuracy", hue="algo", marker="o", errorbar="sd", ax=ax,
                         **colours)
            ax.set(xlabel="sampling temperature", ylabel=f"{which} test accuracy (greedy, fraction)",
                   title="accuracy vs sampling temperature", xticks=sorted(at_k["temperature"].unique()))
    fig.tight_layout()
    save(fig, out, "ablations")
    return skipped


def main(argv: list[str] | None = None) -> int:
    def options(ap) -> None:
        ap.add_argument("--at-iteration", type=int, default=None,
                        help="compare K and temperature at this evaluation, not the last")
        ap.add_argument("--kl-at", type=float, default=None, metavar="ACC",
                        help="KL to the reference where each run first reaches test accuracy ACC (kl_at.csv)")

    args = parse_folders(argv, __doc__, "results/ablations", options)
    if args is None:
        return 2
    points, final, missing, duplicates = collect(args.folders)
    if points.empty:
        return no_runs(args.folders)
    skipped, which = [], "final"
    if args.at_iteration is not None:
        final, skipped = at_iteration(points, final, args.at_iteration)
        which = f"iteration-{args.at_iteration}"
        if final.empty:
            print(f"no run has an evaluation at iteration {args.at_iteration}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "points.csv", points.to_csv(index=False))
    atomic_write_text(args.out / "final.csv", final.to_csv(index=False))
    skipped += plot(points, final, args.out, which)
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"folders": [str(f) for f in args.folders], "commit": git_commit(), "missing_runs": missing,
         "duplicate_runs": duplicates, "at_iteration": args.at_iteration, "kl_at": args.kl_at,
         "panels_left_out": skipped}, indent=2))
    print(final.drop(columns=["commit"]).to_string(index=False))
    if args.kl_at is not None:
        table = kl_at(points, args.kl_at)
        atomic_write_text(args.out / "kl_at.csv", table.to_csv(index=False))
        print(table.to_string(index=False))
    for s in duplicates + skipped:
        print(f"left out: {s}")
    if missing:
        print("missing or unfinished runs: " + ", ".join(missing))
    print(f"wrote {args.out}/points.csv, final.csv, provenance.json, ablations.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
