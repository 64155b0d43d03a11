"""Test accuracy against gradient steps, episodes sampled and wall-clock, and where the time goes
(paper Figs. 1, 6).

    python analysis/compute_efficiency.py runs/compute_efficiency --out results/compute_efficiency
    python analysis/compute_efficiency.py runs/rl_free_hard runs/compute_efficiency_hard --baseline restem

Reads every RL run folder under the given folders (metrics.jsonl, summary.json, config.yaml). For
each method: test accuracy at each evaluation against gradient steps, episodes sampled and elapsed
seconds (mean over seeds), the per-iteration time split (generation / value estimation / training),
and the speed-up of --method (default vineppo) to reach --baseline's (default ppo) peak test
accuracy, in gradient steps, episodes and wall-clock. The speed-up is claimed (in
speedup.json's "speedup" and on the figure) only where the two mean curves separate by more than
twice their standard error over seeds at two evaluations in a row, and, where every run of both
kept its per-problem bits (eval/greedy_correct.json, runs from commit 664376f on), also by more
than twice the error that counts the test set's own noise (paired by seed; test_noise.py;
"separation_with_test_set"); otherwise the figure says the curves are
within noise and speedup.json keeps the number as "speedup_if_noise_ignored". The wall-clock
speed-up is claimed only where the same test passes on the wall-clock axis with VinePPO ahead
(a method ahead per step can be level in time when its iterations are slower); otherwise it is
kept as "speedup_wall_clock_if_noise_ignored". Wall-clock leaves out the time spent on
evaluations. VinePPO runs with different K among the folders are methods of their own,
vineppo_k<K> (`--method vineppo_k3`), and PPO runs with a value-network learning rate of their own
(`rl.value_learning_rate`) are ppo_vlr<rate> (`--baseline ppo_vlr0.0003`), and without the
value-loss clip (`rl.value_clip=null`) ppo_noclip or ppo_vlr<rate>_noclip. Runs without whitened
advantages (`rl.whiten_advantages=false`) add _nowhiten to their method's name (ppo_nowhiten,
vineppo_nowhiten). Writes curves.csv, time_split.csv, speedup.json and compute_efficiency.{png,pdf};
with --paired also paired.csv, --method - --baseline seed by seed at each evaluation (runs of one
seed share their SFT start and first episodes, so the per-seed difference is the sharper test).
The accuracy read is greedy, or, where every run logged it (`rl.eval_samples`, the paper preset's
16 samples per problem, the authors' measure), the mean over samples, with each problem's share of
correct samples (eval/sampled_correct.json) in the noise count; `--measure` chooses.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from vineppo.analysis.plotting import method_palette, pyplot, save
from vineppo.analysis.runs import MEASURES, choose_measure, method_labels, no_runs, parse_folders, run_folders
from vineppo.analysis.test_noise import run_bits, separation_with_test_set
from vineppo.runio import atomic_write_text, git_commit, read_jsonl


def collect(folders: list[Path], measure: str = "greedy") -> tuple[pd.DataFrame, pd.DataFrame, list[str], dict]:
    """Per-evaluation curves and per-iteration time splits of every RL run under `folders`, each
    labelled with its method: the algorithm, for VinePPO runs with more than one K among
    them vineppo_k<K>, and for PPO runs whose value network is trained otherwise `ppo_label`; and
    each method's per-problem bits at each evaluation by seed (None for a method with a run that
    kept none)."""
    curves, splits, missing, configs, bits = [], [], [], {}, []
    runs = [d for d in run_folders(folders) if (d / "metrics.jsonl").exists()]
    for d in runs:
        if not (d / "summary.json").exists():
            missing.append(str(d))
            continue
        s = json.loads((d / "summary.json").read_text())
        if "algo" not in s:
            continue  # an SFT run
        rl = (yaml.safe_load((d / "config.yaml").read_text()) or {}).get("rl") or {}
        per_iteration = rl.get("prompts_per_iter", float("nan")) * rl.get("samples_per_prompt", float("nan"))
        configs[d.name] = (s["algo"], rl)
        bits.append((d.name, s["seed"], run_bits(d, measure)))  # per-problem scores (greedy: from 664376f on)
        evals_before = 0.0  # elapsed_s counts earlier evaluations; the curves leave them out
        episodes = 0.0  # sampled so far: each record's count (runs before it was logged: the config's)
        for r in read_jsonl(d / "metrics.jsonl"):
            episodes += r.get("train/episodes", per_iteration)
            splits.append({"algo": s["algo"], "seed": s["seed"], "run": d.name, "iteration": r["iteration"],
                           "generation": r["time/generation_s"], "value estimation": r["time/value_estimation_s"],
                           "training": r["time/training_s"]})
            if "eval/greedy_accuracy" in r:
                curves.append({"algo": s["algo"], "seed": s["seed"], "run": d.name, "iteration": r["iteration"],
                               "grad_steps": r["train/grad_steps"], "episodes": episodes,
                               "elapsed_s": r["time/elapsed_s"] - evals_before,
                               "test_accuracy": r[f"eval/{measure}_accuracy"]})
            evals_before += r.get("time/eval_s", 0.0)
    curves, splits = pd.DataFrame(curves), pd.DataFrame(splits)
    labels = method_labels(configs)
    for df in (curves, splits):
        if len(df):
            df["algo"] = [labels[run] for run in df["run"]]
    by_method: dict[str, dict[int, dict[int, str]] | None] = {}
    for run, seed, evals in bits:  # a method's bits, or None where any of its runs kept none
        name = labels[run]
        if evals is None or (name in by_method and by_method[name] is None):
            by_method[name] = None
            continue
        for it, b in evals.items():
            by_method.setdefault(name, {}).setdefault(it, {})[seed] = b
    return curves, splits.drop(columns="run", errors="ignore"), missing, by_method


def palette(methods) -> dict:
    """The shared method colours, and free tab10 colours for labels beyond them (vineppo_k3)."""
    import seaborn as sns

    known = method_palette()
    spare = [c for c in sns.color_palette("tab10", 10) if c not in known.values()]
    extra = [m for m in sorted(set(methods)) if m not in known]
    return {**known, **dict(zip(extra, itertools.cycle(spare)))}


def _separated(points: list[tuple[float, pd.Series, pd.Series]], key: str) -> dict | None:
    """The two-in-a-row rule over (x, method's accuracies, baseline's accuracies) points."""
    rows = []
    for x, a, b in points:
        if len(a) < 2 or len(b) < 2:
            continue
        se = (a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) ** 0.5
        rows.append({key: x, "gap": float(a.mean() - b.mean()), "two_se": float(2 * se)})
    if not rows:
        return None
    widest = max(rows, key=lambda r: abs(r["gap"]) - r["two_se"])
    beyond = [(r["gap"] > r["two_se"]) - (r["gap"] < -r["two_se"]) for r in rows]  # +1, -1 or 0
    runs = {a for a, b in zip(beyond, beyond[1:], strict=False) if a == b != 0}
    # ahead: +1 if `method` is the one ahead wherever they separate, -1 if behind; 0 if they are
    # never apart, or if they cross (apart one way, later the other): then neither is ahead.
    return {"separated": bool(runs), "ahead": runs.pop() if len(runs) == 1 else 0, "crossing": len(runs) > 1,
            "widest": widest, "points": rows}


def paired_gaps(curves: pd.DataFrame, baseline: str = "ppo", method: str = "vineppo") -> pd.DataFrame:
    """`method` - `baseline` per iteration over the seeds both have, each seed's difference first:
    runs of one seed start from one SFT model and draw the same first prompts and episodes, so the
    per-seed difference sheds the noise the two share. Columns: iteration, seeds, gap (mean),
    se (standard error of the mean difference), ahead / behind (seeds with method above / below)."""
    acc = curves[curves["algo"].isin([baseline, method])].pivot_table(
        index=["iteration", "seed"], columns="algo", values="test_accuracy")
    rows = []
    for iteration, group in acc.groupby(level="iteration"):
        d = (group[method] - group[baseline]).dropna() if {method, baseline} <= set(group) else pd.Series()
        if len(d):
            rows.append({"iteration": iteration, "seeds": len(d), "gap": float(d.mean()),
                         "se": float(d.std(ddof=1) / len(d) ** 0.5) if len(d) > 1 else float("nan"),
                         "ahead": int((d > 0).sum()), "behind": int((d < 0).sum())})
    return pd.DataFrame(rows, columns=["iteration", "seeds", "gap", "se", "ahead", "behind"])


def separation(curves: pd.DataFrame, baseline: str = "ppo", method: str = "vineppo") -> dict | None:
    """Do the two mean curves separate by more than their noise, per iteration (the same episodes
    for every method, and for PPO and VinePPO the same gradient steps)? At each evaluation both
    methods share, the gap of the means against twice its standard error (from
    each method's seeds); the curves separate where the gap exceeds that, in the same direction, at
    two evaluations in a row (one point beyond 2 s.e. among many is expected by chance). One seed
    has no noise estimate: never separated."""
    points = []
    for it, g in curves.groupby("iteration"):
        points.append((int(it), g[g["algo"] == method]["test_accuracy"], g[g["algo"] == baseline]["test_accuracy"]))
    return _separated(points, "iteration")


def separation_wall_clock(curves: pd.DataFrame, baseline: str = "ppo", method: str = "vineppo") -> dict | None:
    """The same rule on the wall-clock axis, where the methods' evaluations fall at different times:
    at each of the baseline's mean evaluation times t, every run's accuracy is that of its last
    evaluation at or before t (what it would hand over if stopped then); points before some run's
    first evaluation are left out. A method that is ahead per step but slower per iteration can
    be level here."""
    runs = [g.sort_values("elapsed_s") for _, g in curves.groupby(["algo", "seed"])]
    grid = curves[curves["algo"] == baseline].groupby("iteration")["elapsed_s"].mean().sort_values()
    points = []
    for t in grid:
        acc: dict[str, list[float]] = {baseline: [], method: []}
        for g in runs:
            seen = g[g["elapsed_s"] <= t + 1e-9]
            if g["algo"].iloc[0] in acc and not seen.empty:
                acc[g["algo"].iloc[0]].append(float(seen["test_accuracy"].iloc[-1]))
        if all(len(acc[a]) == curves[curves["algo"] == a]["seed"].nunique() for a in acc):
            points.append((round(float(t), 1), pd.Series(acc[method]), pd.Series(acc[baseline])))
    return _separated(points, "seconds")


def speedup_to_peak(curves: pd.DataFrame, baseline: str = "ppo", method: str = "vineppo",
                    tolerance: float = 0.0) -> dict | None:
    """How much sooner `method` first reaches `baseline`'s peak (mean-over-seeds) test accuracy. With
    a tolerance the target is the peak less that much, and both methods are timed to their first
    evaluation at or above it: where every method ends on the same plateau, the peak itself is
    decided by noise in the third decimal."""
    curves = curves if "episodes" in curves else curves.assign(episodes=float("nan"))
    mean = curves.groupby(["algo", "iteration"], as_index=False)[["grad_steps", "episodes", "elapsed_s",
                                                                  "test_accuracy"]].mean()
    base, other = mean[mean["algo"] == baseline], mean[mean["algo"] == method]
    if base.empty or other.empty:
        return None
    target = base["test_accuracy"].max() - tolerance
    peak = base[base["test_accuracy"] >= target - 1e-12].iloc[0]
    reached = other[other["test_accuracy"] >= target - 1e-12]
    out = {"baseline": baseline, "method": method, "baseline_peak_accuracy": float(base["test_accuracy"].max()),
           "tolerance": tolerance, "target_accuracy": float(target),
           "baseline_steps_to_peak": float(peak["grad_steps"]), "baseline_seconds_to_peak": float(peak["elapsed_s"]),
           "method_reaches_peak": not reached.empty}
    if pd.notna(peak["episodes"]):
        out["baseline_episodes_to_peak"] = float(peak["episodes"])
    if not reached.empty:
        first = reached.iloc[0]
        out.update(method_steps=float(first["grad_steps"]), method_seconds=float(first["elapsed_s"]),
                   speedup_grad_steps=float(peak["grad_steps"] / max(first["grad_steps"], 1)),
                   speedup_wall_clock=float(peak["elapsed_s"] / max(first["elapsed_s"], 1e-9)))
        if pd.notna(peak["episodes"]) and pd.notna(first["episodes"]):
            out.update(method_episodes=float(first["episodes"]),
                       speedup_episodes=float(peak["episodes"] / max(first["episodes"], 1)))
    return out


def times(ratio: float) -> str:
    """A baseline-over-method ratio in words: 2.0 -> "2.0x fewer", 0.8 -> "1.2x more"."""
    return f"{ratio:.1f}x fewer" if ratio >= 1 else f"{1 / ratio:.1f}x more"


def plot(curves: pd.DataFrame, splits: pd.DataFrame, speedup: dict | None, out: Path,
         separated: bool = True, sep_clock: dict | None = None, measure: str = "greedy") -> None:
    import seaborn as sns

    ylabel = f"test accuracy ({'greedy' if measure == 'greedy' else 'mean over samples'}, fraction)"

    sep_clock, colours = sep_clock or {}, palette(curves["algo"])
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    sns.lineplot(data=curves, x="grad_steps", y="test_accuracy", hue="algo", marker="o", ax=axes[0],
                 palette=colours)
    axes[0].set(xlabel="gradient steps", ylabel=ylabel, title="accuracy vs gradient steps")
    episodes = curves.dropna(subset=["episodes"]) if "episodes" in curves else curves.iloc[:0]
    if not episodes.empty:
        sns.lineplot(data=episodes, x="episodes", y="test_accuracy", hue="algo", marker="o", ax=axes[1],
                     palette=colours)
    axes[1].set(xlabel="episodes sampled", ylabel=ylabel, title="accuracy vs episodes")
    # Seeds reach an evaluation at different times: plot each method's mean time and accuracy per
    # evaluation, with the accuracy's standard error over seeds.
    mean = curves.groupby(["algo", "iteration"]).agg(seconds=("elapsed_s", "mean"), acc=("test_accuracy", "mean"),
                                                     sd=("test_accuracy", "std"), n=("test_accuracy", "size"))
    for algo, g in mean.reset_index().groupby("algo"):
        se = (g["sd"].fillna(0) / g["n"] ** 0.5).tolist()
        axes[2].errorbar(g["seconds"] / 60, g["acc"], yerr=se, marker="o", capsize=3, label=algo,
                         color=colours.get(algo))
    axes[2].legend(title="algo")
    axes[2].set(xlabel="wall-clock (minutes)", ylabel=ylabel, title="accuracy vs wall-clock")
    target = speedup and (f"{speedup['baseline']}'s peak" + (
        f" less {speedup['tolerance']:.3f} ({speedup['target_accuracy']:.3f})" if speedup.get("tolerance") else ""))
    note = None
    if speedup and not separated:
        note = (f"{speedup['method']} and {speedup['baseline']} curves within noise (no gap over 2 s.e. across "
                "seeds at two evaluations in a row): no speed-up claimed")
    elif speedup and speedup.get("method_reaches_peak"):
        for ax in axes[:3]:
            ax.axhline(speedup["target_accuracy"], color="k", ls="--", lw=1)
        clock = (f"{speedup['speedup_wall_clock']:.1f}x sooner in wall-clock" if "speedup_wall_clock" in speedup
                 else f"later in wall-clock ({speedup['baseline']} ahead beyond noise)" if sep_clock.get("ahead", 0) < 0
                 else "no sooner in wall-clock (the curves cross)" if sep_clock.get("crossing")
                 else f"{speedup['speedup_wall_clock_if_noise_ignored']:.1f}x sooner in wall-clock, not beyond noise "
                      "(not claimed)" if speedup.get("speedup_wall_clock_if_noise_ignored", 0) > 1
                 else "no sooner in wall-clock (curves within noise)")
        note = (f"{speedup['method']} reaches {target} {clock}, with {times(speedup['speedup_grad_steps'])} "
                "gradient steps" + (f" and {times(speedup['speedup_episodes'])} episodes"
                                    if "speedup_episodes" in speedup else ""))
    elif speedup:
        note = f"{speedup['method']} does not reach {target}"
    split = splits.groupby("algo")[["generation", "value estimation", "training"]].mean()
    split.plot.bar(stacked=True, ax=axes[3], rot=0)
    axes[3].set(xlabel="method", ylabel="seconds per iteration", title="time per iteration")
    if note:
        fig.text(0.5, 0.01, note, ha="center", fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if note else 0, 1, 1))
    save(fig, out, "compute_efficiency")


def options(ap) -> None:
    ap.add_argument("--baseline", default="ppo", help="the method whose peak is the target (default ppo)")
    ap.add_argument("--method", default="vineppo", help="the method timed to reach it (default vineppo)")
    ap.add_argument("--tolerance", type=float, default=0.0, help="target = the baseline's peak less this "
                    "(accuracy as a fraction; default 0: the peak itself, as in the paper)")
    ap.add_argument("--measure", choices=MEASURES, default="auto",
                    help="test accuracy read: greedy, sampled (eval/sampled_accuracy, with rl.eval_samples), or auto "
                    "(default): sampled where every run logged it, else greedy")
    ap.add_argument("--paired", action="store_true", help="also write paired.csv: method - baseline per "
                    "iteration, seed by seed (mean, standard error, seeds ahead / behind)")


def main(argv: list[str] | None = None) -> int:
    args = parse_folders(argv, __doc__, "results/compute_efficiency", options)
    if args is None:
        return 2
    measure = choose_measure(args.folders, args.measure)
    curves, splits, missing, bits = collect(args.folders, measure)
    if curves.empty:
        return no_runs(args.folders)
    absent = [a for a in (args.baseline, args.method) if a not in set(curves["algo"])]
    if absent:
        print(f"no runs of {', '.join(absent)} under {', '.join(map(str, args.folders))} (methods there: "
              f"{', '.join(sorted(set(curves['algo'])))})", file=sys.stderr)
        return 2
    pair = {"baseline": args.baseline, "method": args.method}
    speedup, sep, sep_clock = speedup_to_peak(curves, **pair, tolerance=args.tolerance), \
        separation(curves, **pair), separation_wall_clock(curves, **pair)
    # Where every run kept its per-problem bits, the gaps must also clear the test set's own noise.
    sep_test = separation_with_test_set(bits, **pair)
    separated = bool(sep and sep["separated"]) and (sep_test is None or sep_test["separated"])
    claimed = None
    if separated and speedup is not None:
        claimed = dict(speedup)
        if not (sep_clock and sep_clock["ahead"] > 0) and "speedup_wall_clock" in claimed:
            # Ahead per step but level (or behind, or crossing) in time: the wall-clock number is
            # not claimed.
            claimed["speedup_wall_clock_if_noise_ignored"] = claimed.pop("speedup_wall_clock")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "curves.csv", curves.to_csv(index=False))
    atomic_write_text(args.out / "time_split.csv", splits.to_csv(index=False))
    atomic_write_text(args.out / "speedup.json", json.dumps(
        {**({"measure": measure} if measure != "greedy" else {}),  # greedy: as before the choice existed
         "speedup": claimed, "separation": sep, "separation_wall_clock": sep_clock,
         **({"separation_with_test_set": sep_test} if sep_test is not None else {}),
         "speedup_if_noise_ignored": None if separated else speedup, "missing_runs": missing, "commit": git_commit(),
         "folders": [str(f) for f in args.folders]}, indent=2))
    if args.paired:
        paired = paired_gaps(curves, **pair)
        atomic_write_text(args.out / "paired.csv", paired.to_csv(index=False))
        print(paired.to_string(index=False))
    plot(curves, splits, claimed or speedup, args.out, separated, sep_clock, measure)
    print(json.dumps({"speedup": claimed, **{name: s and {k: v for k, v in s.items() if k != "points"}
                                             for name, s in (("separation", sep), ("separation_wall_clock", sep_clock),
                                                             ("separation_with_test_set", sep_test))}},
                     indent=2))
    if missing:
        print("missing or unfinished runs: " + ", ".join(missing))
    print(f"wrote {args.out}/curves.csv, time_split.csv, speedup.json, compute_efficiency.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
