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
- KL at an accuracy (`--kl-at ACC`): each run's KL where its test accuracy first reaches ACC, read
  between the evaluations on either side, and at its last evaluation, with the mean, std and
  count by method; runs that never reach ACC, or are past it at their first evaluation, are
  counted, not averaged (kl_at.csv). The paper's "better accuracy at equal KL" read from the other side. Several
  levels may be given. RestEM and DPO+ (no KL term) log no KL and are left out of these readings.
- test accuracy at a train accuracy (`--train-at X ...`): each run's test accuracy where its train
  accuracy first reaches X, interpolated between the evaluations on either side (generalisation.csv:
  mean, std and count by method). The paper's "VinePPO generalises more per unit of training
  accuracy" read at fixed levels.
- `--baseline METHOD` with either: each method minus METHOD seed by seed (runs of one seed share
  their SFT start and first prompts): mean, standard error, pairs, seeds ahead
  (kl_at_paired.csv, generalisation_paired.csv).
Test accuracy is greedy, or the mean over samples where every run logged it (`rl.eval_samples`,
the paper preset's measure; `--measure`). A panel whose setting takes a single value in the runs
given is left out and named in the output.
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
from vineppo.analysis.runs import MEASURES, choose_measure, no_runs, parse_folders, run_folders
from vineppo.config import load_config
from vineppo.runio import atomic_write_text, git_commit, read_jsonl


def collect(folders: list[Path], measure: str = "greedy") -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
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
                points.append({**run, "iteration": r["iteration"], "kl_ref": r.get("train/kl_ref", float("nan")),
                               "train_accuracy": sum(since) / len(since), "test_accuracy": r[f"eval/{measure}_accuracy"]})
                since = []
        final.append({**run, "test_accuracy": summary[f"test_{measure}_accuracy"], "iterations": summary["iterations"],
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


def methods(points: pd.DataFrame) -> pd.Series:
    """Each point's method: the algorithm, VinePPO by K (vineppo_k9)."""
    return points["algo"].where(points["algo"] != "vineppo", "vineppo_k" + points["k"].astype(str))


def without_kl(points: pd.DataFrame) -> list[str]:
    """The methods that log no KL to the reference (RestEM and DPO+ have no KL term)."""
    logged = points.assign(method=methods(points)).groupby("method")["kl_ref"].count()
    return sorted(logged.index[logged == 0])


def crossing(x: list[float], y: list[float], level: float) -> tuple[int | None, float]:
    """Where the series x (a run's evaluations in order) first reaches `level`: the index of the
    first point at or above it, and y there, read linearly between that point and the one before
    (evaluations are a few iterations apart and land past the level by different amounts, so y at
    the first point alone is a noisier reading). (None, NaN) where x never reaches the level;
    (0, NaN) where it is there from the first point (no crossing to read)."""
    above = [i for i, v in enumerate(x) if v >= level]
    if not above:
        return None, float("nan")
    i = above[0]
    if i == 0:
        return 0, float("nan")
    return i, y[i - 1] + (level - x[i - 1]) / (x[i] - x[i - 1]) * (y[i] - y[i - 1])


def read_at(points: pd.DataFrame, x: str, y: str, level: float) -> pd.DataFrame:
    """Per run: `y` where `x` first reaches `level` (`crossing`), the iteration of the first
    evaluation at or above it, and `y` at the run's last evaluation."""
    rows = []
    for run, r in points.assign(method=methods(points)).sort_values("iteration").groupby("run", sort=True):
        i, value = crossing(r[x].tolist(), r[y].tolist(), level)
        rows.append({"run": run, "method": r["method"].iloc[0], "temperature": r["temperature"].iloc[0],
                     "seed": r["seed"].iloc[0], "level": level,
                     "first_iteration": r["iteration"].iloc[i] if i is not None else float("nan"),
                     y: value, f"{y}_last": r[y].iloc[-1]})
    return pd.DataFrame(rows, columns=["run", "method", "temperature", "seed", "level", "first_iteration", y,
                                       f"{y}_last"])


def kl_at_runs(points: pd.DataFrame, accuracy: float) -> pd.DataFrame:
    """Per run: KL to the reference where its test accuracy first reaches `accuracy`."""
    return read_at(points, "test_accuracy", "kl_ref", accuracy)


def kl_at(points: pd.DataFrame, accuracy: float) -> pd.DataFrame:
    """By method (VinePPO by K) and temperature: KL to the reference where each run's test accuracy
    first reaches `accuracy` (`kl_at_runs`: mean, std over the runs with a reading, how many have
    one; the iteration of the first evaluation at or above it), and at its last evaluation.
    Methods that log no KL are left out (`without_kl`)."""
    per_run = kl_at_runs(points[~methods(points).isin(without_kl(points))], accuracy)
    rows = []
    for (name, temperature), runs in per_run.groupby(["method", "temperature"]):
        read = runs.dropna(subset=["kl_ref"])
        rows.append({"method": name, "temperature": temperature, "accuracy": accuracy, "runs": len(runs),
                     "runs_reaching": len(read), "first_iteration_mean": read["first_iteration"].mean(),
                     "kl_at_accuracy_mean": read["kl_ref"].mean(), "kl_at_accuracy_std": read["kl_ref"].std(),
                     "kl_last_mean": runs["kl_ref_last"].mean(), "kl_last_std": runs["kl_ref_last"].std()})
    return pd.DataFrame(rows)


def accuracy_at_train(points: pd.DataFrame, train_accuracy: float) -> pd.DataFrame:
    """Per run: test accuracy where its train accuracy first reaches `train_accuracy` (the paper's
    "test accuracy per unit of training accuracy" read at one level)."""
    return read_at(points, "train_accuracy", "test_accuracy", train_accuracy)


def by_method(per_run: pd.DataFrame, value: str) -> pd.DataFrame:
    """`per_run`'s `value` by method, temperature and level: runs, runs with a value, mean, std."""
    g = per_run.groupby(["method", "temperature", "level"])[value]
    return pd.DataFrame({"runs": g.size(), "runs_reaching": g.count(), f"{value}_mean": g.mean(),
                         f"{value}_std": g.std()}).reset_index()


def paired(per_run: pd.DataFrame, value: str, baseline: str) -> pd.DataFrame:
    """Each method minus `baseline`, seed by seed at the same temperature and level, over the seeds
    where both runs have a value (runs of one seed share their SFT start and first prompts): mean,
    standard error, pairs and seeds ahead. Two runs of one method with one seed cannot be paired."""
    if baseline not in set(per_run["method"]):
        raise ValueError(f"--baseline {baseline}: no such method among {sorted(set(per_run['method']))}")
    keys = ["method", "temperature", "level", "seed"]
    twice = per_run[per_run.duplicated(keys, keep=False)]
    if len(twice):
        raise ValueError("two runs of one method share a seed, so runs cannot be paired by seed: "
                         + ", ".join(sorted(twice["run"])[:4]))
    table = per_run.set_index(keys)[value]
    base = table.xs(baseline, level="method")
    rows = []
    for (name, temperature, level), runs in table.drop(baseline, level="method").groupby(
            level=["method", "temperature", "level"]):
        d = (runs.droplevel("method") - base).dropna()
        rows.append({"method": name, "baseline": baseline, "temperature": temperature, "level": level,
                     "pairs": len(d), "difference_mean": d.mean(),
                     "difference_se": d.std() / len(d) ** 0.5 if len(d) > 1 else float("nan"),
                     "seeds_ahead": int((d > 0).sum())})
    return pd.DataFrame(rows, columns=["method", "baseline", "temperature", "level", "pairs", "difference_mean",
                                       "difference_se", "seeds_ahead"])


def plot(points: pd.DataFrame, final: pd.DataFrame, out: Path, which: str = "final",
         measure: str = "greedy") -> list[str]:
    """Draw the panels the data supports; return the names of those left out, and of runs left
    out of the K and temperature panels for a different budget, and why."""
    import seaborn as sns

    acc = f"test accuracy ({'greedy' if measure == 'greedy' else 'mean over samples'}, fraction)"

    plt = pyplot()
    final, other_budget = same_budget(final)
    colours = {"palette": method_palette()}
    vine = final[final["algo"] == "vineppo"]
    if not vine.empty:  # K varies at one temperature
        vine = vine[vine["temperature"] == vine["temperature"].mode()[0]]
    panels = ["kl", "train"]
    skipped = [f"{run}: a different number of iterations, left out of the K and temperature panels"
               for run in other_budget]
    no_kl = without_kl(points)
    if no_kl:
        skipped.append(f"accuracy vs KL: {', '.join(no_kl)} log no KL to the reference (no KL term)")
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
            sns.scatterplot(data=points.dropna(subset=["kl_ref"]), x="kl_ref", y="test_accuracy", hue="algo", ax=ax,
                            **colours)
            ax.set(xlabel="KL(policy || reference) per token (nats)", ylabel=acc,
                   title="accuracy vs KL to the reference")
        elif panel == "train":
            sns.scatterplot(data=points, x="train_accuracy", y="test_accuracy", hue="algo", ax=ax, **colours)
            lo = min(points["train_accuracy"].min(), points["test_accuracy"].min())
            hi = max(points["train_accuracy"].max(), points["test_accuracy"].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            ax.set(xlabel="train accuracy (fraction of correct episodes)", ylabel=acc,
                   title="test vs train accuracy")
        elif panel == "k":
            sns.lineplot(data=vine, x="k", y="test_accuracy", marker="o", errorbar="sd", ax=ax,
                         color=colours["palette"]["vineppo"])
            ax.set(xlabel="K (MC continuations per state)", ylabel=f"{which} {acc}",
                   title="VinePPO: accuracy vs K", xticks=sorted(vine["k"].unique()))
        else:
            sns.lineplot(data=at_k, x="temperature", y="test_accuracy", hue="algo", marker="o", errorbar="sd", ax=ax,
                         **colours)
            ax.set(xlabel="sampling temperature", ylabel=f"{which} {acc}",
                   title="accuracy vs sampling temperature", xticks=sorted(at_k["temperature"].unique()))
    fig.tight_layout()
    save(fig, out, "ablations")
    return skipped


def readings(points: pd.DataFrame, kl_levels: list[float] | None, train_levels: list[float] | None,
             baseline: str | None) -> dict[str, pd.DataFrame]:
    """The tables --kl-at, --train-at and --baseline ask for, by file name (ValueError, naming
    what, for a baseline that is not there or runs that cannot be paired)."""
    if baseline is not None and kl_levels is None and train_levels is None:
        raise ValueError("--baseline pairs the --kl-at or --train-at readings: give one of them")
    tables = {}
    if kl_levels is not None:
        tables["kl_at.csv"] = pd.concat([kl_at(points, a) for a in kl_levels], ignore_index=True)
        if baseline is not None:
            per_run = pd.concat([kl_at_runs(points, a) for a in kl_levels], ignore_index=True)
            per_run = per_run[~per_run["method"].isin(without_kl(points))]
            tables["kl_at_paired.csv"] = paired(per_run, "kl_ref", baseline)
    if train_levels is not None:
        per_run = pd.concat([accuracy_at_train(points, a) for a in train_levels], ignore_index=True)
        tables["generalisation.csv"] = by_method(per_run, "test_accuracy")
        if baseline is not None:
            tables["generalisation_paired.csv"] = paired(per_run, "test_accuracy", baseline)
    return tables


def main(argv: list[str] | None = None) -> int:
    def options(ap) -> None:
        ap.add_argument("--at-iteration", type=int, default=None,
                        help="compare K and temperature at this evaluation, not the last")
        ap.add_argument("--kl-at", type=float, nargs="+", default=None, metavar="ACC",
                        help="KL to the reference where each run first reaches test accuracy ACC (kl_at.csv)")
        ap.add_argument("--train-at", type=float, nargs="+", default=None, metavar="TRAIN_ACC",
                        help="test accuracy where each run's train accuracy first reaches TRAIN_ACC "
                             "(generalisation.csv)")
        ap.add_argument("--measure", choices=MEASURES, default="auto",
                        help="test accuracy read: greedy, sampled (with rl.eval_samples), or auto (default): "
                             "sampled where every run logged it, else greedy")
        ap.add_argument("--baseline", default=None, metavar="METHOD",
                        help="with --kl-at / --train-at: each method minus METHOD seed by seed "
                             "(kl_at_paired.csv, generalisation_paired.csv)")

    args = parse_folders(argv, __doc__, "results/ablations", options)
    if args is None:
        return 2
    measure = choose_measure(args.folders, args.measure)
    points, final, missing, duplicates = collect(args.folders, measure)
    if points.empty:
        return no_runs(args.folders)
    skipped, which = [], "final"
    if args.at_iteration is not None:
        final, skipped = at_iteration(points, final, args.at_iteration)
        which = f"iteration-{args.at_iteration}"
        if final.empty:
            print(f"no run has an evaluation at iteration {args.at_iteration}", file=sys.stderr)
            return 2
    try:
        tables = readings(points, args.kl_at, args.train_at, args.baseline)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "points.csv", points.to_csv(index=False))
    atomic_write_text(args.out / "final.csv", final.to_csv(index=False))
    skipped += plot(points, final, args.out, which, measure)
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"folders": [str(f) for f in args.folders], **({"measure": measure} if measure != "greedy" else {}),
         "commit": git_commit(), "missing_runs": missing,
         "duplicate_runs": duplicates, "at_iteration": args.at_iteration, "kl_at": args.kl_at,
         "train_at": args.train_at, "baseline": args.baseline,
         "panels_left_out": skipped}, indent=2))
    print(final.drop(columns=["commit"]).to_string(index=False))
    for name, table in tables.items():
        atomic_write_text(args.out / name, table.to_csv(index=False))
        print(table.to_string(index=False))
    for s in duplicates + skipped:
        print(f"left out: {s}")
    if missing:
        print("missing or unfinished runs: " + ", ".join(missing))
    print(f"wrote {args.out}/" + ", ".join(["points.csv", "final.csv", *tables, "provenance.json", "ablations.png/pdf"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
