"""Finding run folders for the analysis scripts: what they are given on the command line."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from vineppo.config import RLConfig, load_config
from vineppo.runio import read_jsonl


def parse_folders(argv: list[str] | None, doc: str, default_out: str,
                  add_args: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace | None:
    """`folders... [--out OUT]` (plus a script's own options, `add_args`); None (after saying which)
    when a folder does not exist."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", type=Path, nargs="+", help="sweep output folders or run folders")
    ap.add_argument("--out", type=Path, default=Path(default_out))
    if add_args is not None:
        add_args(ap)
    args = ap.parse_args(argv)
    bad = [str(f) for f in args.folders if not f.is_dir()]
    if bad:
        print(f"not a folder: {', '.join(bad)}", file=sys.stderr)
        return None
    return args


MEASURES = ("auto", "greedy", "sampled")


def choose_measure(folders: list[Path], asked: str = "auto") -> str:
    """The test measure the curves read: `asked`, or with 'auto' the sampled one (eval/sampled_accuracy,
    the mean over rl.eval_samples samples per problem, the authors' and the paper preset's) where
    every RL run logged it at every evaluation, else greedy accuracy."""
    if asked != "auto":
        return asked
    evals = [r for d in run_folders(folders) if (d / "summary.json").exists() and (d / "metrics.jsonl").exists()
             and "algo" in json.loads((d / "summary.json").read_text())
             for r in read_jsonl(d / "metrics.jsonl") if "eval/greedy_accuracy" in r]
    return "sampled" if evals and all("eval/sampled_accuracy" in r for r in evals) else "greedy"


def run_folders(folders: list[Path], marker: str = "config.yaml") -> list[Path]:
    """Each folder that is a run (holds `marker`), or the runs directly inside it."""
    return [d for f in folders for d in ([f] if (f / marker).exists() else sorted(f.iterdir()))
            if d.is_dir() and (d / marker).exists()]


def no_runs(folders: list[Path]) -> int:
    print(f"no finished RL runs with evaluations under {', '.join(map(str, folders))}", file=sys.stderr)
    return 2


def ppo_label(rl: dict) -> str | None:
    """A PPO run's method name where its value network is trained otherwise than the default:
    ppo_vlr<rate> (`rl.value_learning_rate`), ppo_noclip / ppo_vclip<c> (`rl.value_clip`),
    ppo_head<init> (`rl.value_head_init`), or several (ppo_vlr0.003_noclip); None for the default."""
    parts = []
    if rl.get("value_learning_rate") is not None:
        parts.append(f"vlr{rl['value_learning_rate']:g}")
    clip = rl.get("value_clip", RLConfig.value_clip)
    if clip is None:
        parts.append("noclip")
    elif clip != RLConfig.value_clip:
        parts.append(f"vclip{clip:g}")
    if rl.get("value_head_init", RLConfig.value_head_init) != RLConfig.value_head_init:
        parts.append(f"head{rl['value_head_init']}")
    return "_".join(["ppo", *parts]) if parts else None


def method_labels(runs: dict[str, tuple[str, dict]]) -> dict[str, str]:
    """Each run's method name from {run: (algorithm, its `rl` config)}: the algorithm; for PPO
    `ppo_label`'s where its value network is trained otherwise; vineppo_k<K> where the runs hold
    more than one K (a K ablation: each K a method of its own); _nowhiten appended for runs
    without whitened advantages (`rl.whiten_advantages=false`); for VinePPO runs whose steps end
    otherwise than the task's rule, _<rule> (`rl.vine_steps`: _response, _lines, _math, _lines_answer, or
    _regex<6 hex digits of the pattern's SHA-1>)."""
    vine_k = {run: rl.get("vine_k") for run, (algo, rl) in runs.items() if algo == "vineppo"}
    by_k = len(set(vine_k.values())) > 1
    labels = {}
    for run, (algo, rl) in runs.items():
        name = ((ppo_label(rl) or algo) if algo == "ppo" else f"vineppo_k{vine_k[run]}" if by_k and run in vine_k
                else algo)
        rule = rl.get("vine_steps", "auto") if algo == "vineppo" else "auto"
        if rule != "auto":
            name += "_" + (rule if ":" not in rule else "regex" + hashlib.sha1(rule[len("regex:"):].encode()).hexdigest()[:6])
        labels[run] = name + ("_nowhiten" if rl.get("whiten_advantages", True) is False else "")
    return labels


def checkpointed_rl_runs(folders: list[Path]) -> list[Path]:
    """The RL runs under `folders` (their log has `train/reward`; an SFT folder's has not) that kept
    checkpoints, for the analyses that reload the policy along training."""
    from vineppo.checkpoint import list_checkpoints

    out = []
    for d in run_folders(folders):
        records = read_jsonl(d / "metrics.jsonl") if (d / "metrics.jsonl").exists() else []
        if records and "train/reward" in records[0] and list_checkpoints(d / "checkpoints"):
            out.append(d)
    return out


def config_labels(runs: list[Path]) -> dict[str, str]:
    """`method_labels` of run folders from their recorded configs, with _kl<coef> appended where a
    run's KL coefficient is not the default."""
    rl = {d.name: load_config(d / "config.yaml").rl for d in runs}
    base = method_labels({name: (r.algo, dataclasses.asdict(r)) for name, r in rl.items()})
    return {name: base[name] + (f"_kl{r.kl_coef:g}" if r.kl_coef != RLConfig.kl_coef else "") for name, r in rl.items()}


def seed_table(rows, cols: list[str], by: list[str]):
    """Mean and std (ddof 1) over seeds of `cols` per group of `by`, as `<col>_mean` / `<col>_std`,
    with the number of seeds (rows) per group."""
    g = rows.groupby(by)
    out = g[cols].mean().add_suffix("_mean").join(g[cols].std(ddof=1).add_suffix("_std"))
    return out.join(g.size().rename("seeds")).reset_index()


def write_outputs(out: Path, csv_name: str, rows, table: Callable, plot: Callable,
                  provenance: dict | None = None):
    """An analysis's outputs under `out`: its per-run rows (`csv_name`), `table(rows)` as table.csv,
    provenance.json (with the commit that wrote it) when given, and `plot(table, out)`'s figure.
    Returns the table."""
    import json

    from vineppo.runio import atomic_write_text, git_commit

    out.mkdir(parents=True, exist_ok=True)
    t = table(rows)
    atomic_write_text(out / csv_name, rows.to_csv(index=False))
    atomic_write_text(out / "table.csv", t.to_csv(index=False))
    if provenance is not None:
        atomic_write_text(out / "provenance.json", json.dumps({**provenance, "commit": git_commit()}, indent=2))
    plot(t, out)
    return t


def replot(folders: list[Path], out: Path, csv_name: str, table: Callable, plot: Callable) -> int:
    """`--replot`: table.csv and the figure rebuilt in `out` from the `csv_name` in the one folder
    given (copied to `out` when it is elsewhere); no provenance is rewritten."""
    import pandas as pd

    src = folders[0] / csv_name
    if len(folders) != 1 or not src.exists():
        print(f"--replot takes one folder holding {csv_name}; got {', '.join(map(str, folders))}", file=sys.stderr)
        return 2
    write_outputs(out, csv_name, pd.read_csv(src), table, plot)
    print(f"rebuilt {out}/table.csv and the figure from {src}")
    return 0
