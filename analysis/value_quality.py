"""Value-estimate quality across an RL run's checkpoints (the paper's value-prediction figures).

    python analysis/value_quality.py runs/value_accuracy/ppo-arith-s0 --out results/value_quality

For every kept checkpoint of a run (`rl.keep_checkpoints=0`, as the `value_accuracy` sweep sets):
held-out test problems -> one sampled episode each -> a state at every step boundary. Ground truth
V*(s): mean reward of `--truth-samples` continuations. Compared with it: PPO's value network (a PPO
run's; any other run, e.g. VinePPO's, has none and is read for the MC estimates alone) and
VinePPO's MC estimate with K samples for each `--ks`. Ranking: from `--ranking-states` of those
states, up to `--alternatives` distinct next steps, each with its own ground truth; pairwise ranking
accuracy per estimator against the 50% random baseline (ties in truth count as wrong).

Writes summary.csv (one row per checkpoint x estimator), states.csv and ranking.csv (every number
behind the figures), and value_quality.{png,pdf} plus calibration.{png,pdf}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

from vineppo import checkpoint as ckpt
from vineppo.algorithms.ppo import ValueModel
from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.runs import checkpointed_rl_runs
from vineppo.analysis.value_quality import (
    alternative_steps,
    calibration,
    error_by_position,
    held_out_states,
    mc_values,
    mean_absolute_error,
    ranking_accuracy,
    sample_examples,
    value_net_predictions,
)
from vineppo.config import ConfigError, load_config
from vineppo.inference import HFEngine
from vineppo.models import load_model, load_tokenizer, resolve_device
from vineppo.runio import atomic_write_text, git_commit
from vineppo.steps import check_rule
from vineppo.tasks import load_task


def analyse_checkpoint(path: Path, cfg, task, args) -> tuple[list[dict], list[dict], list[dict]]:
    policy, tok = load_model(path, device=args.device).eval(), load_tokenizer(path)
    value_model = (ValueModel.from_checkpoint(path, cfg.rl).to(policy.device)  # with DeepSpeed too
                   if cfg.rl.algo == "ppo" else None)
    bos = cfg.task.prompt_bos  # the run's prompt format (task.format holds its template)
    engine = HFEngine(policy, tok, batch_size=args.batch_size, bos=bos)
    t, n, top_p = cfg.rl.temperature, cfg.rl.max_new_tokens, cfg.rl.top_p  # the run's sampler
    examples = sample_examples(task.test, args.problems, args.seed)
    rule = args.steps
    states = held_out_states(engine, examples, cfg.task.name, t, n, args.seed, rule, task.format, top_p=top_p)
    stop = task.format.stop  # task.stop
    truth = mc_values(engine, states, args.truth_samples, cfg.task.name, t, n, args.seed + 1, stop, top_p=top_p)
    estimates = {"value network": value_net_predictions(value_model, tok, states, bos=bos)} if value_model else {}
    for k in args.ks:
        estimates[f"MC K={k}"] = mc_values(engine, states, k, cfg.task.name, t, n, args.seed + 100 + k, stop,
                                           top_p=top_p)
    step = int(path.name.split("-")[1])
    state_rows = [{"checkpoint": step, "state": i, "position": s.position, "truth": truth[i],
                   **{name: est[i] for name, est in estimates.items()}} for i, s in enumerate(states)]

    # Ranking alternative next steps from a subset of states (not the final one of an episode).
    sources = [s for s in states if s.position < 1.0][:args.ranking_states]
    groups = [alternative_steps(engine, s, args.alternatives, cfg.task.name, t, n, args.seed + 7 + i, rule, stop,
                                top_p=top_p) for i, s in enumerate(sources)]
    groups = [g for g in groups if len(g) >= 2]
    flat = [s for g in groups for s in g]
    g_truth = (mc_values(engine, flat, args.truth_samples, cfg.task.name, t, n, args.seed + 2, stop, top_p=top_p)
               if flat else [])
    g_est = {"value network": value_net_predictions(value_model, tok, flat, bos=bos) if flat else []} \
        if value_model else {}
    for k in args.ks:
        g_est[f"MC K={k}"] = (mc_values(engine, flat, k, cfg.task.name, t, n, args.seed + 200 + k, stop, top_p=top_p)
                              if flat else [])

    def regroup(values: list[float]) -> list[list[float]]:
        out, i = [], 0
        for g in groups:
            out.append(values[i:i + len(g)])
            i += len(g)
        return out

    rank_rows = []
    for i, g in enumerate(groups):
        for j, s in enumerate(g):
            idx = sum(len(x) for x in groups[:i]) + j
            rank_rows.append({"checkpoint": step, "group": i, "alternative": j, "step_text": json.dumps(s.prefix[-80:]),  # escaped: model text may hold any character
                              "truth": g_truth[idx], **{name: est[idx] for name, est in g_est.items()}})
    return state_rows, rank_rows


def summarise(states: pd.DataFrame, ranking: pd.DataFrame) -> pd.DataFrame:
    """One row per checkpoint x estimator: MAE against the ground truth over held-out states, and
    pairwise ranking accuracy of alternative next steps, over all pairs (the paper's definition:
    ties in truth count as wrong) and over the pairs whose truth differs (random = 50%), with the
    oracle's all-pairs score (the fraction of untied pairs) for scale."""
    estimators = [c for c in states.columns if c not in ("checkpoint", "state", "position", "truth")]
    rows = []
    for step, st in states.groupby("checkpoint"):
        rk = ranking[ranking["checkpoint"] == step] if not ranking.empty else ranking
        groups = [g for _, g in rk.groupby("group")] if not rk.empty else []
        truth = [g["truth"].tolist() for g in groups]
        for name in estimators:
            pred = [g[name].tolist() for g in groups]
            rows.append({"checkpoint": step, "estimator": name,
                         "mae": mean_absolute_error(st[name].tolist(), st["truth"].tolist()),
                         "ranking_accuracy": ranking_accuracy(pred, truth) if groups else None,
                         "ranking_accuracy_untied": ranking_accuracy(pred, truth, untied_only=True) if groups else None,
                         "oracle_ranking_accuracy": ranking_accuracy(truth, truth) if groups else None,
                         "num_states": len(st), "num_ranking_groups": len(groups),
                         "num_ranking_pairs": sum(len(t) * (len(t) - 1) // 2 for t in truth)})
    return pd.DataFrame(rows)


def plot(summary: pd.DataFrame, states: pd.DataFrame, out: Path) -> None:
    import seaborn as sns

    plt = pyplot()
    last = states[states["checkpoint"] == states["checkpoint"].max()]
    estimators = list(summary["estimator"].unique())
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    long = last.melt(id_vars=["truth", "position"], value_vars=estimators, var_name="estimator", value_name="predicted")
    sns.scatterplot(data=long, x="truth", y="predicted", hue="estimator", alpha=0.6, ax=axes[0])
    axes[0].plot([0, 1], [0, 1], "k--", lw=1)
    axes[0].set(xlabel="ground-truth value V*(s) (probability)", ylabel="predicted value (probability)",
                title=f"predicted vs ground truth (checkpoint {int(last['checkpoint'].iloc[0])})")
    pos = pd.concat([error_by_position(last[e].tolist(), last["truth"].tolist(), last["position"].tolist())
                     .assign(estimator=e) for e in estimators])
    pos["fraction of steps done"] = (pos["bin"] + 0.5) / 5
    sns.lineplot(data=pos, x="fraction of steps done", y="mae", hue="estimator", marker="o", ax=axes[1])
    axes[1].set(ylabel="mean absolute error (probability)", title="error by position in the solution")
    sns.lineplot(data=summary, x="checkpoint", y="ranking_accuracy_untied", hue="estimator", marker="o", ax=axes[2])
    axes[2].axhline(0.5, color="k", ls="--", lw=1, label="random (50%)")
    axes[2].set(xlabel="PPO iteration", ylabel="pairwise ranking accuracy (fraction)", ylim=(0, 1),
                title="ranking alternative next steps\n(pairs whose ground truth differs)")
    axes[2].legend()
    fig.tight_layout()
    save(fig, out, "value_quality")
    cal = pd.concat([calibration(last[e].tolist(), last["truth"].tolist()).assign(estimator=e) for e in estimators])
    fig, ax = plt.subplots(figsize=(5, 4))
    sns.lineplot(data=cal, x="mean_predicted", y="mean_truth", hue="estimator", marker="o", ax=ax)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="mean predicted value (binned)", ylabel="mean ground-truth value", title="calibration")
    fig.tight_layout()
    save(fig, out, "calibration")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, nargs="?", help="an RL run folder (config.yaml, checkpoints/step-N/); a PPO "
                    "run's value network is compared too")
    ap.add_argument("--replot", action="store_true",
                    help="no models: rebuild summary.csv and the figures from --out's states.csv and ranking.csv")
    ap.add_argument("--out", type=Path, default=Path("results/value_quality"))
    ap.add_argument("--checkpoints", default="all", help="all | last | comma-separated iterations")
    ap.add_argument("--problems", type=int, default=32, help="held-out test problems (one episode each)")
    ap.add_argument("--truth-samples", type=int, default=256, help="MC samples of the ground truth")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 3, 9], help="VinePPO's K values to compare")
    ap.add_argument("--ranking-states", type=int, default=16)
    ap.add_argument("--alternatives", type=int, default=4, help="alternative next steps per state (3-5)")
    ap.add_argument("--steps", default=None, help="where steps end (rl.vine_steps rules: auto, lines, math, "
                    "lines_answer, response, regex:PATTERN); default: the run's rl.vine_steps")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: a GPU where there is one")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.replot:
        if not (args.out / "states.csv").exists():
            print(f"{args.out}: no states.csv to replot from", file=sys.stderr)
            return 2
        states_df = pd.read_csv(args.out / "states.csv")
        ranking_path = args.out / "ranking.csv"
        ranking_df = pd.read_csv(ranking_path) if ranking_path.stat().st_size > 1 else pd.DataFrame()
        summary_df = summarise(states_df, ranking_df)
        atomic_write_text(args.out / "summary.csv", summary_df.to_csv(index=False))
        plot(summary_df, states_df, args.out)
        prov_path = args.out / "provenance.json"
        if prov_path.exists():  # the samples' provenance stays; say which code summarised them
            prov = json.loads(prov_path.read_text())
            atomic_write_text(prov_path, json.dumps({**prov, "replotted_at_commit": git_commit()}, indent=2))
        print(summary_df.to_string(index=False))
        print(f"rebuilt {args.out}/summary.csv, value_quality.png/pdf, calibration.png/pdf")
        return 0
    if args.run is None or not (args.run / "config.yaml").exists():
        print(f"{args.run}: not a run folder (no config.yaml)", file=sys.stderr)
        return 2
    cfg = load_config(args.run / "config.yaml")
    try:
        args.steps = args.steps or cfg.rl.vine_steps  # provenance.json records the rule used
        check_rule(args.steps)
    except ValueError as e:
        print(f"--steps: {e}", file=sys.stderr)
        return 2
    try:
        resolve_device(args.device)
    except ConfigError as e:
        print(f"--device: {e}", file=sys.stderr)
        return 2
    if args.run not in checkpointed_rl_runs([args.run]):
        print(f"{args.run}: not an RL run with checkpoints (an SFT run's start point is rl.init of its RL runs)",
              file=sys.stderr)
        return 2
    if cfg.rl.algo != "ppo":
        print(f"{args.run}: rl.algo is {cfg.rl.algo}, which trains no value network: MC estimates only",
              file=sys.stderr)
    found = ckpt.list_checkpoints(args.run / "checkpoints")
    if args.checkpoints == "last":
        found = found[-1:]
    elif args.checkpoints != "all":
        wanted = {int(x) for x in args.checkpoints.split(",")}
        missing = wanted - {int(p.name.split("-")[1]) for p in found}
        if missing:
            print(f"{args.run}: no checkpoint for iterations {sorted(missing)}", file=sys.stderr)
            return 2
        found = [p for p in found if int(p.name.split("-")[1]) in wanted]
    if not found:
        print(f"{args.run}: no checkpoints", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)
    task = load_task(cfg.task)
    states, ranking = [], []
    for path in found:
        st, r = analyse_checkpoint(path, cfg, task, args)
        states += st
        ranking += r
        print(summarise(pd.DataFrame(st), pd.DataFrame(r)).to_string(index=False), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    states_df = pd.DataFrame(states)
    summary_df = summarise(states_df, pd.DataFrame(ranking))
    atomic_write_text(args.out / "summary.csv", summary_df.to_csv(index=False))
    atomic_write_text(args.out / "states.csv", states_df.to_csv(index=False))
    atomic_write_text(args.out / "ranking.csv", pd.DataFrame(ranking).to_csv(index=False))
    atomic_write_text(args.out / "provenance.json", json.dumps({
        "run": str(args.run), "checkpoints": [p.name for p in found], "args": {k: str(v) for k, v in vars(args).items()},
        "commit": git_commit(), "run_config": (args.run / "config.yaml").read_text()}, indent=2))
    plot(summary_df, states_df, args.out)
    print(f"wrote {args.out}/summary.csv, states.csv, ranking.csv, value_quality.png/pdf, calibration.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
