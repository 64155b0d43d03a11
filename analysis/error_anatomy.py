"""What kind of step each greedy test answer first gets wrong, across a run's checkpoints.

    python analysis/error_anatomy.py runs/flaw_ops_kl --every 4 --out results/flaw_ops/longer/kl_exact/errors

On the generated tasks the correct solution is unique, so each wrong answer has a first wrong line,
and `vineppo.tasks.arith.error_detail` names what went wrong there: the controlled flaw, or a value
carried from the line before copied wrong, another operation, another operand, the arithmetic, the
wording, or a missing line. The runs' own evaluations log only the flaw's share; this re-evaluates
every kept checkpoint (every `--every` iterations; train with `rl.keep_checkpoints=0`) and the SFT
start point (iteration 0), greedily, on the run's test set, as training evaluates. With
`--final-only`, no model runs: each finished run's last evaluation is read from the greedy answers
it kept (eval/test.json), for runs that kept no checkpoints along the way.

A first wrong step hides what follows it (an SFT model that makes the flaw first is never read for
its arithmetic), so each answer's own lines are also read whole (`line_slips`): arithmetic slips
per computation line (overall and per operation as written: which operations a policy writes
changes as it unlearns the flaw) and copy slips per value carried from the line before. And,
as those depend on what the policy writes, the same on fixed inputs (`vineppo.analysis.probe`):
the reference solutions of the first `--probe-problems` test problems cut before each line's
result and each carried value, decoded greedily: probe_arithmetic(_<op>) and probe_copy, error
rates on inputs every checkpoint shares.

Writes errors.csv (run x checkpoint: accuracy, the share of test problems per kind, slip rates),
table.csv (mean and std over seeds per method and iteration), provenance.json and
error_anatomy.{png,pdf}.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from vineppo import checkpoint as ckpt
from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.probe import Probe, probe_errors, probes
from vineppo.analysis.runs import (
    checkpointed_rl_runs,
    config_labels,
    parse_folders,
    replot,
    run_folders,
    seed_table,
    write_outputs,
)
from vineppo.config import load_config
from vineppo.evaluate import GENERATED, evaluate
from vineppo.inference import HFEngine
from vineppo.models import load_model, load_tokenizer
from vineppo.tasks import PromptFormat, load_task
from vineppo.tasks.arith import ERROR_DETAILS, OPS, error_detail, line_slips

KINDS = ("none", *ERROR_DETAILS)


def anatomy(model_path, cfg, test: list[dict], fixed: list[Probe]) -> dict[str, float]:
    """Greedy accuracy and the share of `test` problems per first-wrong-step kind, for one model;
    its error rates on the fixed probes."""
    model, tok = load_model(model_path).eval(), load_tokenizer(model_path)
    engine = HFEngine(model, tok, batch_size=cfg.eval.batch_size, bos=cfg.task.prompt_bos)
    flaw_ops = tuple(cfg.task.flaw_ops)
    result = evaluate(engine, test, cfg.task.name, batch_size=cfg.eval.batch_size,
                      max_new_tokens=cfg.eval.max_new_tokens, progress=False, flaw_ops=flaw_ops,
                      fmt=PromptFormat.of(cfg.task))
    return {**tally([p["greedy"] for p in result["problems"]], test, flaw_ops, result["greedy_accuracy"]),
            **(probe_errors(engine, fixed) if fixed else {})}


def tally(answers: list[str], test: list[dict], flaw_ops: tuple[str, ...], accuracy: float) -> dict[str, float]:
    """The share of problems per first-wrong-step kind, and the slips made within the answers' own
    lines (`line_slips`: arithmetic slips per computation line, copy slips per carried value)."""
    kinds = Counter(error_detail(a, e["solution"], flaw_ops)[1] for a, e in zip(answers, test, strict=True))
    slips = Counter()
    for a in answers:
        slips.update(line_slips(a))
    return {"accuracy": accuracy, **{k: kinds[k] / len(test) for k in KINDS},
            "arithmetic_slips": slips["arithmetic"] / max(slips["lines"], 1),
            "copy_slips": slips["copy"] / max(slips["carried"], 1), "lines": slips["lines"],
            **{f"arithmetic_slips_{op}": slips[f"arithmetic_{op}"] / max(slips[f"lines_{op}"], 1) for op in OPS},
            **{f"lines_{op}": slips[f"lines_{op}"] for op in OPS}}


def final_anatomy(run: Path, cfg, test: list[dict]) -> dict[str, float]:
    """The same from the greedy answers a run kept of its last evaluation (eval/test.json), no model."""
    result = json.loads((run / "eval" / "test.json").read_text())
    answers = {p["id"]: p for p in result["problems"]}
    missing = [e["id"] for e in test if e["id"] not in answers]
    if missing:
        raise ValueError(f"{run}/eval/test.json has no answer for {len(missing)} test problems ({missing[0]}, ...)")
    accuracy = sum(answers[e["id"]]["greedy_correct"] for e in test) / len(test)
    return tally([answers[e["id"]]["greedy"] for e in test], test, tuple(cfg.task.flaw_ops), accuracy)


def analyse_run(run: Path, label: str, every: int, final_only: bool = False, probe_problems: int = 0) -> list[dict]:
    cfg = load_config(run / "config.yaml")
    task = load_task(cfg.task)
    test = [e for e in task.test if not e.get("flawed_steps")]  # a correct reference to compare with
    fixed = probes(test[:probe_problems])
    if final_only:
        last = json.loads((run / "summary.json").read_text()).get("iterations", cfg.rl.iterations)
        points = [(last, None)]
    else:
        points = [(0, cfg.rl.init), *((s, p) for p in ckpt.list_checkpoints(run / "checkpoints")
                                      if (s := ckpt.checkpoint_step(p)) % every == 0)]
    rows = []
    for step, path in points:
        rows.append({"run": run.name, "method": label, "seed": cfg.seed, "iteration": step, "problems": len(test),
                     **(final_anatomy(run, cfg, test) if path is None else anatomy(path, cfg, test, fixed))})
        print(f"{run.name} iteration {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()
                                                           if k in ("accuracy", *KINDS) and v), flush=True)
    return rows


def table(rows: pd.DataFrame) -> pd.DataFrame:
    cols = ["accuracy", *KINDS, "arithmetic_slips", "copy_slips", *(f"arithmetic_slips_{op}" for op in OPS)]
    cols += [c for c in rows.columns if c.startswith("probe_")]
    return seed_table(rows, cols, ["method", "iteration"])


def plot(t: pd.DataFrame, out: Path) -> None:
    plt = pyplot()
    methods = sorted(t["method"].unique())
    shown = [k for k in ERROR_DETAILS if (t[f"{k}_mean"] > 0).any()]
    fig, axes = plt.subplots(2, len(methods), figsize=(4.2 * len(methods), 7.2), squeeze=False, sharey="row")
    for j, m in enumerate(methods):
        g = t[t["method"] == m].sort_values("iteration")
        axes[0, j].stackplot(g["iteration"], *(g[f"{k}_mean"] for k in shown), labels=shown, alpha=0.85)
        axes[0, j].set(title=m, xlabel="iteration", ylabel="share of test problems, by first wrong step")
        for col, name in (*((f"arithmetic_slips_{op}", f"arithmetic slips per {op} line") for op in OPS),
                          ("copy_slips", "copy slips per carried value")):
            axes[1, j].plot(g["iteration"], g[f"{col}_mean"], marker="o", ms=3, label=name,
                            ls="--" if col == "copy_slips" else "-")
        for col, name in (("probe_arithmetic", "fixed inputs: arithmetic errors"), ("probe_copy", "fixed inputs: copy errors")):
            if f"{col}_mean" in g:
                axes[1, j].plot(g["iteration"], g[f"{col}_mean"], ls=":", marker="x", label=name)
        axes[1, j].set(xlabel="iteration", ylabel="error rate (greedy)")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    axes[1, 0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, out, "error_anatomy")


def finished_rl_runs(folders: list[Path]) -> list[Path]:
    """RL runs that finished (summary.json with an algorithm) and kept their last evaluation's answers."""
    return [d for d in run_folders(folders, marker="summary.json")
            if json.loads((d / "summary.json").read_text()).get("algo") and (d / "eval" / "test.json").exists()]


def main(argv: list[str] | None = None) -> int:
    def add_args(ap):
        ap.add_argument("--every", type=int, default=1, help="checkpoints at iterations divisible by this")
        ap.add_argument("--probe-problems", type=int, default=100, help="test problems whose reference "
                        "solutions make the fixed probes of arithmetic and copying (default 100; 0: none)")
        ap.add_argument("--final-only", action="store_true", help="only each finished run's last evaluation, "
                        "from the greedy answers it kept (eval/test.json): no checkpoints or model needed")
        ap.add_argument("--replot", action="store_true", help="rebuild table.csv and the figure in --out from the errors.csv in the (one) folder given")

    args = parse_folders(argv, __doc__, "results/error_anatomy", add_args)
    if args is None:
        return 2
    if args.every < 1 or args.probe_problems < 0:
        print(f"--every must be >= 1 and --probe-problems >= 0, got {args.every} and {args.probe_problems}",
              file=sys.stderr)
        return 2
    if args.replot:
        return replot(args.folders, args.out, "errors.csv", table, plot)
    runs = (finished_rl_runs(args.folders) if args.final_only else checkpointed_rl_runs(args.folders))
    if not runs:
        print(f"no {'finished ' if args.final_only else ''}RL runs with {'eval/test.json' if args.final_only else 'checkpoints'} under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    other = sorted({load_config(d / "config.yaml").task.name for d in runs} - set(GENERATED))
    if other:
        print(f"tasks {', '.join(other)} have no unique reference solution to locate errors against; "
              f"error_anatomy reads the generated tasks ({', '.join(GENERATED)})", file=sys.stderr)
        return 2
    labels = config_labels(runs)
    rows = [r for d in runs for r in analyse_run(d, labels[d.name], args.every, args.final_only, args.probe_problems)]
    t = write_outputs(args.out, "errors.csv", pd.DataFrame(rows), table, plot, {
        "runs": [str(d) for d in runs], "args": {k: str(v) for k, v in vars(args).items()}})
    print(t.to_string(index=False))
    print(f"wrote {args.out}/errors.csv, table.csv, provenance.json, error_anatomy.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
