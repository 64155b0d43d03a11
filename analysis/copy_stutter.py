"""Where a copy stutter's extra digit takes its mass from: the token after a carried value.

    python analysis/copy_stutter.py runs/flaw_ops_steps --every 4 --out results/flaw_ops/longer/steps/stutter

On flaw_ops, RL makes every method stutter for a while when it copies the value carried from the
line before (`23` written `230`) while it unlearns the flaw (kl_exact/, steps/). The token after a
right copy is where both happen: the line's operation comes next, the flawed line writes another
operation there, and a stutter writes a digit. For every kept checkpoint (every `--every`
iterations; train with `rl.keep_checkpoints=0`) and the SFT start (iteration 0) of each RL run,
this reads the policy's next-token distribution at the reference solutions of the first
`--problems` test problems cut after each carried value (`vineppo.analysis.probe.copy_states`):
the mass on the right operation, the flaw, the other operations, digits and the rest, the class of
the greedy token, and where the digit mass sits: at the states where the run's SFT start put half
its mass or more on the flaw (`digit_flawed_states`) or not (`digit_other_states`), per line
operation (`digit_<op>`), and the rank correlation over states between the start's flaw mass and
the gain in digit mass since (`rank_corr_flaw_digit`).

If the stutter came from pushing the flaw down and the softmax spreading its mass over the rest,
every other token's share of the mass left by the flaw would stay as at the start:
`digit_share_of_rest` (digit mass over 1 - flaw mass) tells.

Writes stutter.csv (run x checkpoint), table.csv (mean and std over seeds per method and
iteration), provenance.json and copy_stutter.{png,pdf}; --replot rebuilds the last two from a
stutter.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from vineppo import checkpoint as ckpt
from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.probe import NEXT, copy_states, next_token_mass
from vineppo.analysis.runs import (
    checkpointed_rl_runs,
    config_labels,
    parse_folders,
    replot,
    seed_table,
    write_outputs,
)
from vineppo.config import load_config
from vineppo.models import load_model, load_tokenizer
from vineppo.tasks import load_task
from vineppo.tasks.arith import OPS

FLAWED = 0.5
"""A state is a flawed one where the SFT start puts this much of its next-token mass on the flaw."""


def masses(model_path, states) -> pd.DataFrame:
    """`next_token_mass` of one model at `states`, a row per state."""
    return pd.DataFrame(next_token_mass(load_model(model_path), load_tokenizer(model_path), states))


def summarise(m: pd.DataFrame, start: pd.DataFrame, ops: list[str]) -> dict[str, float]:
    """One checkpoint's row: class means, greedy shares, and where the digit mass sits against the
    SFT start's masses at the same states (`start`)."""
    flawed = start["flaw"] >= FLAWED
    gain = m["digit"] - start["digit"]
    op = pd.Series(ops)
    return {**{f"mass_{k}": float(m[k].mean()) for k in NEXT},
            **{f"greedy_{k}": float((m["greedy"] == k).mean()) for k in NEXT},
            "digit_share_of_rest": float((m["digit"] / (1 - m["flaw"]).clip(lower=1e-12)).mean()),
            "flawed_states": int(flawed.sum()),
            "digit_flawed_states": float(m["digit"][flawed].mean()) if flawed.any() else float("nan"),
            "digit_other_states": float(m["digit"][~flawed].mean()) if (~flawed).any() else float("nan"),
            **{f"digit_{o}": float(m["digit"][op == o].mean()) if (op == o).any() else float("nan") for o in OPS},
            **{f"flaw_{o}": float(m["flaw"][op == o].mean()) if (op == o).any() else float("nan") for o in OPS},
            # Ranks, then Pearson: Spearman's rho without scipy. Undefined (NaN) where either is constant.
            "rank_corr_flaw_digit": float(start["flaw"].rank().corr(gain.rank()))}


def analyse_run(run: Path, label: str, every: int, problems: int) -> list[dict]:
    cfg = load_config(run / "config.yaml")
    test = [e for e in load_task(cfg.task).test if not e.get("flawed_steps")]  # a correct reference
    states = copy_states(test[:problems])
    if not states:
        raise ValueError(f"{run}: the first {problems} test problems have no line after the first")
    ops = [s.op for s in states]
    start = masses(cfg.rl.init, states)
    rows = []
    for step, path in [(0, None), *((s, p) for p in ckpt.list_checkpoints(run / "checkpoints")
                                    if (s := ckpt.checkpoint_step(p)) % every == 0)]:
        m = start if path is None else masses(path, states)
        rows.append({"run": run.name, "method": label, "seed": cfg.seed, "iteration": step,
                     "states": len(states), **summarise(m, start, ops)})
        r = rows[-1]
        print(f"{run.name} iteration {step}: right {r['mass_right']:.3f} flaw {r['mass_flaw']:.3f} "
              f"digit {r['mass_digit']:.4f} (flawed states {r['digit_flawed_states']:.4f}, other "
              f"{r['digit_other_states']:.4f})", flush=True)
    return rows


def table(rows: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in rows.columns if c not in ("run", "method", "seed", "iteration", "states")]
    return seed_table(rows, cols, ["method", "iteration"])


def plot(t: pd.DataFrame, out: Path) -> None:
    plt = pyplot()
    methods = sorted(t["method"].unique())
    fig, axes = plt.subplots(3, len(methods), figsize=(4.2 * len(methods), 8.4), squeeze=False, sharey="row",
                             gridspec_kw={"height_ratios": [3, 3, 1]})
    for j, m in enumerate(methods):
        g = t[t["method"] == m].sort_values("iteration")
        for k in NEXT:
            axes[0, j].plot(g["iteration"], g[f"mass_{k}_mean"].clip(lower=1e-5), marker="o", ms=3, label=k)
        axes[0, j].set(title=m, xlabel="iteration", yscale="log",
                       ylabel="next-token mass after a right copy (mean over states)")
        for col, name in (("digit_flawed_states", f"digit, states with start flaw mass >= {FLAWED}"),
                          ("digit_other_states", "digit, the other states"),
                          *((f"digit_{o}", f"digit, {o} lines") for o in OPS)):
            axes[1, j].plot(g["iteration"], g[f"{col}_mean"].clip(lower=1e-5), marker="o", ms=3, label=name,
                            ls="-" if "states" in col else ":")
        axes[1, j].set(xlabel="iteration", yscale="log", ylabel="digit mass (a stutter)")
    for row in (0, 1):  # the legends in the bottom row, out of the curves' way
        axes[2, 0].legend(*axes[row, 0].get_legend_handles_labels(), fontsize=6, ncol=2,
                          loc="upper left" if row == 0 else "lower left")
        axes[2, 0].add_artist(axes[2, 0].get_legend())
    for ax in axes[2]:
        ax.axis("off")
    fig.tight_layout()
    save(fig, out, "copy_stutter")


def main(argv: list[str] | None = None) -> int:
    def add_args(ap):
        ap.add_argument("--every", type=int, default=1, help="checkpoints at iterations divisible by this")
        ap.add_argument("--problems", type=int, default=100, help="test problems whose reference solutions "
                        "give the states (default 100)")
        ap.add_argument("--replot", action="store_true", help="rebuild table.csv and the figure in --out from "
                        "the stutter.csv in the (one) folder given")

    args = parse_folders(argv, __doc__, "results/copy_stutter", add_args)
    if args is None:
        return 2
    if args.every < 1 or args.problems < 1:
        print(f"--every and --problems must be >= 1, got {args.every} and {args.problems}", file=sys.stderr)
        return 2
    if args.replot:
        return replot(args.folders, args.out, "stutter.csv", table, plot)
    runs = checkpointed_rl_runs(args.folders)
    if not runs:
        print(f"no RL runs with checkpoints under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    other = sorted({load_config(d / "config.yaml").task.name for d in runs} - {"arith"})
    if other:
        print(f"copy_stutter reads the arith task's solutions (one carried value per line, an operation "
              f"token after it); runs of {', '.join(other)} given", file=sys.stderr)
        return 2
    labels = config_labels(runs)
    rows = [r for d in runs for r in analyse_run(d, labels[d.name], args.every, args.problems)]
    t = write_outputs(args.out, "stutter.csv", pd.DataFrame(rows), table, plot, {
        "runs": [str(d) for d in runs], "args": {k: str(v) for k, v in vars(args).items()}})
    cols = ["method", "iteration", "seeds", *(f"mass_{k}_mean" for k in NEXT), "digit_flawed_states_mean",
            "digit_other_states_mean", "digit_share_of_rest_mean", "rank_corr_flaw_digit_mean"]
    print(t[cols].to_string(index=False))
    print(f"wrote {args.out}/stutter.csv, table.csv, provenance.json, copy_stutter.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
