"""Credit assignment on the generated tasks, where the step to blame is known (beyond the paper).

    python analysis/credit_assignment.py dial runs/credit_dial --out results/credit_dial
    python analysis/credit_assignment.py blame runs/value_accuracy/ppo-arith-s0 --checkpoint 2 \\
        --out results/credit_blame

dial: the `credit_dial` sweep trains PPO and VinePPO (3 seeds) on problems of 2-9 steps from one
SFT start; test accuracy is split by chain length (2-3, 4-6, 7-9 steps), and the VinePPO - PPO gap
per length, mean ± standard error over seeds (`--baseline grpo`: VinePPO against another method's
runs among the folders). Writes dial.csv (every run x length), gap.csv and dial.{png,pdf}.

blame: at a PPO checkpoint (policy + value network), one sampled response per held-out problem; for
each wrong response whose first wrong step is located (`tasks.arith.first_error`), the step
advantages of VinePPO's MC values (K continuations per state), of the value network, and of GRPO's
one-number-per-response advantage (every step tied: chance). The share of wrong steps each gives
its most negative advantage, with its binomial standard error, overall and by kind of error (the
controlled flaw, or any other); and the same over the steps before the last (", before the last
step"): a wrong response's reward of 0 arrives at its last step, so an estimator whose values
barely move from state to state is not judged by that drop alone. Several run folders (e.g. one per
seed) are pooled, with the spread of their shares (run_std). A reference that reads no values sits
beside them: always blame the most common wrong step position (chosen in hindsight). Writes
blame.csv (every response) and blame_summary.csv; `blame-summary <out folders>` rebuilds the latter
from the former.

    python analysis/credit_assignment.py blame runs/critic_lr_hard/ppo-arith_hard-s{0,1,2} \\
        --checkpoint 4 --out results/credit_blame_hard/vlrnull
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from vineppo.analysis.credit import (
    accuracy_by_length,
    blame_share,
    blame_share_before_last,
    line_start,
    mean_and_se,
    num_steps,
    step_advantages,
    step_of_offset,
)
from vineppo.analysis.plotting import method_palette, pyplot, save
from vineppo.analysis.runs import run_folders
from vineppo.config import load_config
from vineppo.runio import atomic_write_text, git_commit
from vineppo.tasks import load_task


def write_outputs(out: Path, tables: dict[str, pd.DataFrame], provenance: dict) -> None:
    """`<name>.csv` for each table and provenance.json (with the commit), each written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        atomic_write_text(out / f"{name}.csv", df.to_csv(index=False))
    atomic_write_text(out / "provenance.json", json.dumps({**provenance, "commit": git_commit()}, indent=2))


# ----------------------------------------------------------------------------- dial


def dial_rows(folders: list[Path]) -> pd.DataFrame:
    """One row per (run, length bucket): test accuracy of the run's final evaluation."""
    rows, lengths = [], None
    for run in run_folders(folders):
        evals = run / "eval" / "test.json"
        if not evals.exists():
            continue
        cfg = load_config(run / "config.yaml")
        if lengths is None:
            lengths = {e["id"]: num_steps(e["solution"]) for e in load_task(cfg.task).test}
        problems = json.loads(evals.read_text())["problems"]
        method = "sft" if run.name.startswith("sft") else cfg.rl.algo
        for r in accuracy_by_length(problems, lengths).to_dict("records"):
            rows.append({"run": run.name, "method": method, "seed": cfg.seed, **r})
    return pd.DataFrame(rows)


def dial_gap(df: pd.DataFrame, baseline: str = "ppo") -> pd.DataFrame:
    """VinePPO - `baseline` per length bucket: difference of means, standard error from both methods' seeds."""
    rows = []
    for bucket, g in df.groupby("bucket"):
        out = {"bucket": bucket}
        for m in ("sft", baseline, "vineppo"):
            out[f"{m}_mean"], out[f"{m}_se"] = mean_and_se(g[g["method"] == m]["accuracy"].tolist() or [float("nan")])
        out["gap"] = out["vineppo_mean"] - out[f"{baseline}_mean"]
        out["gap_se"] = (out["vineppo_se"] ** 2 + out[f"{baseline}_se"] ** 2) ** 0.5
        out["problems"] = int(g["problems"].iloc[0])
        rows.append(out)
    return pd.DataFrame(rows)


def plot_dial(df: pd.DataFrame, gap: pd.DataFrame, out: Path, baseline: str = "ppo") -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    order = sorted(df["bucket"].unique(), key=lambda b: int(b.split("-")[0]))
    colours = method_palette()
    for m, g in df.groupby("method"):
        stats = [mean_and_se(g[g["bucket"] == b]["accuracy"].tolist()) for b in order]
        axes[0].errorbar(order, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", capsize=3,
                         label=m, color=colours.get(m))
    axes[0].set(xlabel="solution length (steps)", ylabel="test accuracy (greedy, fraction)", ylim=(0, 1),
                title="accuracy by chain length (mean ± s.e. over seeds)")
    axes[0].legend()
    g = gap.set_index("bucket").loc[order]
    axes[1].errorbar(order, g["gap"], yerr=g["gap_se"], marker="o", capsize=3, color=colours.get("vineppo"))
    axes[1].axhline(0, color="k", ls="--", lw=1)
    axes[1].set(xlabel="solution length (steps)", ylabel=f"VinePPO - {baseline.upper()} test accuracy",
                title="the credit-assignment dial")
    fig.tight_layout()
    save(fig, out, "dial")


def run_dial(args) -> int:
    df = dial_rows(args.folders)
    if df.empty or not {args.baseline, "vineppo"} <= set(df["method"]):
        print(f"no {args.baseline} and vineppo runs with eval/test.json under {', '.join(map(str, args.folders))}",
              file=sys.stderr)
        return 2
    gap = dial_gap(df, args.baseline)
    write_outputs(args.out, {"dial": df, "gap": gap}, {
        "folders": [str(f) for f in args.folders], "runs": sorted(df["run"].unique().tolist())})
    plot_dial(df, gap, args.out, args.baseline)
    print(gap.to_string(index=False))
    print(f"wrote {args.out}/dial.csv, gap.csv, dial.png/pdf")
    return 0


# ----------------------------------------------------------------------------- blame


def blame_rows(checkpoint: Path, cfg, args) -> list[dict]:
    import torch

    from vineppo.algorithms.ppo import ValueModel
    from vineppo.analysis.value_quality import State, mc_values, sample_examples, value_net_predictions
    from vineppo.evaluate import reward
    from vineppo.inference import HFEngine, SamplingParams
    from vineppo.models import load_model, load_tokenizer
    from vineppo.steps import step_boundaries
    from vineppo.tasks import PROMPT
    from vineppo.tasks.arith import first_error

    torch.manual_seed(args.seed)
    policy, tok = load_model(checkpoint).eval(), load_tokenizer(checkpoint)
    value_model = ValueModel.from_checkpoint(checkpoint, cfg.rl)
    engine = HFEngine(policy, tok, batch_size=args.batch_size)
    task, t, n = cfg.task.name, cfg.rl.temperature, cfg.rl.max_new_tokens
    examples = sample_examples(load_task(cfg.task).test, args.problems, args.seed)
    prompts = [PROMPT.format(question=e["question"]) for e in examples]
    responses = engine.generate(prompts, SamplingParams(temperature=t, top_p=cfg.rl.top_p, max_new_tokens=n,
                                                        seed=args.seed))
    episodes = []  # wrong responses whose first wrong step is located
    for ex, prompt, comps in zip(examples, prompts, responses, strict=True):
        c = comps[0]
        r = reward(c, ex["answer"], task)
        line, kind = first_error(c.text, ex["solution"], tuple(cfg.task.flaw_ops))
        start = line_start(c.text, line) if line is not None else None
        if r == 0.0 and start is not None:
            bounds = step_boundaries(c.text, task) or [0]
            states = [State(prompt, c.text[:b], ex, i / len(bounds)) for i, b in enumerate(bounds)]
            episodes.append((ex, kind, step_of_offset(bounds, start), r, states))
    flat = [s for *_, states in episodes for s in states]
    mc = mc_values(engine, flat, args.k, task, t, n, args.seed + 1, top_p=cfg.rl.top_p) if flat else []
    vnet = value_net_predictions(value_model, tok, flat) if flat else []
    rows, i = [], 0
    for ex, kind, wrong, r, states in episodes:
        m = len(states)
        adv_mc, adv_vnet = step_advantages(mc[i:i + m], r), step_advantages(vnet[i:i + m], r)
        adv = {f"MC K={args.k}": adv_mc, "value network": adv_vnet, "GRPO (one advantage per response)": [0.0] * m}
        row = {"checkpoint": checkpoint.name, "id": ex["id"], "kind": kind, "steps": m, "wrong_step": wrong,
               **{e: blame_share(a, wrong) for e, a in adv.items()},
               **{f"{e}, before the last step": blame_share_before_last(a, wrong) for e, a in adv.items()},
               # where each estimator puts its most negative advantage (first of ties), and the values
               "mc_most_negative_step": adv_mc.index(min(adv_mc)),
               "value_net_most_negative_step": adv_vnet.index(min(adv_vnet)),
               "mc_values": json.dumps([round(v, 4) for v in mc[i:i + m]]),
               "value_net_values": json.dumps([round(v, 4) for v in vnet[i:i + m]])}
        rows.append(row)
        i += m
    return rows


POSITION = "most common wrong step (hindsight)"
"""A reference that reads no values: blame the step position that is most often the wrong one
among the responses summarised (chosen knowing the answers), which beats uniform chance when
errors cluster at one position."""


def most_common_hit(wrong: pd.Series) -> pd.Series:
    """1 where the wrong step is the most common one (the smallest of equally common), 0 elsewhere,
    NaN where there is none."""
    mode = wrong.mode()
    return (wrong == mode.min()).astype(float).where(wrong.notna()) if len(mode) else wrong.astype(float)


def blame_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Share per estimator over all responses pooled (binomial standard error), overall and by kind
    of error; with several runs also each run's share and their spread (std over runs). Beside the
    estimators, POSITION: the share of responses whose wrong step is the most common one."""
    info = ("run", "checkpoint", "id", "kind", "steps", "wrong_step", "mc_most_negative_step",
            "value_net_most_negative_step", "mc_values", "value_net_values")
    df = df.assign(run=df["run"] if "run" in df else "run")
    estimators = [c for c in df.columns if c not in info]
    rows = []
    for kind, g in [("all", df)] + list(df.groupby("kind")):
        before_last = g["wrong_step"] < g["steps"] - 1
        g = g.assign(**{POSITION: most_common_hit(g["wrong_step"]),
                        f"{POSITION}, before the last step": most_common_hit(g["wrong_step"].where(before_last))})
        for e in [*estimators, POSITION, f"{POSITION}, before the last step"]:
            # a response whose wrong step is its last has no share before the last
            p, k = g[e].mean(), int(g[e].count())
            per_run = g.groupby("run")[e].mean().dropna()
            se = (p * (1 - p) / k) ** 0.5 if k else float("nan")
            rows.append({"kind": kind, "estimator": e, "blame_share": p, "se": se, "responses": k, "runs": len(per_run),
                         "run_std": per_run.std() if len(per_run) > 1 else float("nan")})
    return pd.DataFrame(rows)


def run_blame(args) -> int:
    from vineppo import checkpoint as ckpt

    frames, sources = [], {}
    for run in args.folders:
        if not (run / "config.yaml").exists():
            print(f"{run}: not a run folder (no config.yaml)", file=sys.stderr)
            return 2
        cfg = load_config(run / "config.yaml")
        if cfg.rl.algo != "ppo" or cfg.task.name not in ("arith", "arith_hard"):
            print(f"{run}: needs a PPO run (for its value network) on a generated task", file=sys.stderr)
            return 2
        found = {int(p.name.split("-")[1]): p for p in ckpt.list_checkpoints(run / "checkpoints")}
        step = args.checkpoint if args.checkpoint is not None else max(found, default=None)
        if step not in found:
            print(f"{run}: no checkpoint for iteration {step}; found {sorted(found)}", file=sys.stderr)
            return 2
        rows = blame_rows(found[step], cfg, args)
        if not rows:
            print(f"{found[step]}: no wrong responses with a located wrong step", file=sys.stderr)
            return 2
        frames.append(pd.DataFrame(rows).assign(run=run.name))
        sources[str(run)] = {"checkpoint": found[step].name, "run_config": (run / "config.yaml").read_text()}
    df = pd.concat(frames, ignore_index=True)
    summary = blame_summary(df)
    provenance = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": sources}
    write_outputs(args.out, {"blame": df, "blame_summary": summary}, provenance)
    print(summary.to_string(index=False))
    print(f"wrote {args.out}/blame.csv, blame_summary.csv")
    return 0


def resummarize(outs: list[Path]) -> int:
    """blame_summary.csv again from each folder's blame.csv (no models): after a change to the summary."""
    missing = [str(o) for o in outs if not (o / "blame.csv").exists()]
    if missing:
        print(f"no blame.csv in {', '.join(missing)}", file=sys.stderr)
        return 2
    for o in outs:
        summary = blame_summary(pd.read_csv(o / "blame.csv"))
        atomic_write_text(o / "blame_summary.csv", summary.to_csv(index=False))
        print(f"{o}:\n{summary[summary['kind'] == 'all'].to_string(index=False)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["dial", "blame", "blame-summary"])
    ap.add_argument("folders", type=Path, nargs="+", help="dial: sweep or run folders; blame: PPO run folders "
                    "(e.g. one per seed), pooled; blame-summary: blame output folders (blame.csv) to summarise again")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--checkpoint", type=int, default=None, help="blame: PPO iteration (default: the last kept)")
    ap.add_argument("--problems", type=int, default=400, help="blame: held-out problems, one response each")
    ap.add_argument("--k", type=int, default=9, help="blame: VinePPO's MC continuations per state")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline", default="ppo", help="dial: the method VinePPO is compared with (rl.algo)")
    args = ap.parse_args(argv)
    bad = [str(f) for f in args.folders if not f.is_dir()]
    if bad:
        print(f"not a folder: {', '.join(bad)}", file=sys.stderr)
        return 2
    if args.mode == "blame-summary":
        return resummarize(args.folders)
    args.out = args.out or Path(f"results/credit_{args.mode}")
    return run_dial(args) if args.mode == "dial" else run_blame(args)


if __name__ == "__main__":
    sys.exit(main())
