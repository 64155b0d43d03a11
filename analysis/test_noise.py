"""Gaps between methods with the test set's own noise counted: is a gap more than the seeds'
spread, and more than which N problems happen to be in the test set?

    python analysis/test_noise.py runs/test_noise_flaw_ops --out results/test_noise/flaw_ops
    python analysis/test_noise.py runs/table1 --all-pairs --out results/test_noise/final/table1
    python analysis/test_noise.py results/test_noise/final/table1/correct.csv --all-pairs --out /tmp/tn

Reads each finished RL run's per-problem greedy correctness: at every evaluation from
eval/greedy_correct.json (runs from commit 664376f on), else at the last one from eval/test.json; or
a correct.csv this script wrote (the same bits, 500 bytes an evaluation). Runs are labelled as
compute_efficiency.py labels them (`method_labels`: ppo_vlr<rate>, ..., VinePPO by K where K differs). For each
task, evaluation and pair of methods (--method against every other method, every other method
against --baseline, or every pair with --all-pairs), over the seeds both have, paired by seed: the
gap in accuracy; se_unpaired (each method's seed spread: the error compute_efficiency.py's rule
uses), se_seeds (paired over seeds, its --paired table), se_problems (the test set's part) and
se_both (seeds and problems, the two crossed factors; `vineppo.analysis.test_noise`). Then the
two-in-a-row rule of compute_efficiency.py with each error. Writes correct.csv, gaps.csv (every
evaluation), final.csv and final.md (each run's last evaluation, at the most common budget),
separation.json and provenance.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
import yaml

from vineppo.analysis.runs import method_labels, run_folders
from vineppo.analysis.test_noise import gap_noise, paired_matrix, run_bits, two_in_a_row
from vineppo.runio import atomic_write_text, git_commit

COLUMNS = ["run", "method", "task", "seed", "iteration", "iterations", "commit", "greedy_correct"]
ERRORS = ("se_unpaired", "se_seeds", "se_both")


def read_runs(folders: list[Path]) -> tuple[pd.DataFrame, list[str]]:
    """One row per evaluation of each finished RL run (its label, task, seed, the evaluation's
    iteration and the run's, commit, correctness as '0'/'1' in test-set order); the unfinished."""
    rows, missing, configs = [], [], {}
    for d in run_folders(folders):
        rl = (yaml.safe_load((d / "config.yaml").read_text()) or {}).get("rl") or {}
        if not rl.get("init"):
            continue  # an SFT run
        evals, test_file = run_bits(d), d / "eval" / "test.json"
        if not (d / "summary.json").exists() or not (evals is not None or test_file.exists()):
            missing.append(str(d))
            continue
        summary = json.loads((d / "summary.json").read_text())
        if evals is None:
            try:
                problems = json.loads(test_file.read_text())["problems"]
                evals = {int(summary["iterations"]): "".join("1" if p["greedy_correct"] else "0" for p in problems)}
            except (KeyError, TypeError) as e:
                raise ValueError(f"{test_file}: no greedy_correct per problem ({e})") from None
        run = {"run": f"{d.parent.name}/{d.name}", "method": None, "task": summary["task"],
               "seed": int(summary["seed"]), "iterations": int(summary["iterations"]), "commit": summary.get("commit")}
        configs[run["run"]] = (summary["algo"], rl)
        rows += [{**run, "iteration": it, "greedy_correct": bits} for it, bits in sorted(evals.items())]
    labels = method_labels(configs)
    rows = [{**r, "method": labels[r["run"]]} for r in rows]
    return pd.DataFrame(rows, columns=COLUMNS), missing


def read_correct(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"greedy_correct": str, "commit": str})
    absent = [c for c in COLUMNS if c not in df]
    if absent:
        raise ValueError(f"{path}: not a correct.csv (no column {', '.join(absent)})")
    return df[COLUMNS]


def pairs_of(names: list[str], method: str, all_pairs: bool, baseline: str | None = None) -> list[tuple[str, str]]:
    """(method, baseline) pairs: --method against every other; with --baseline every other against
    it; with all_pairs every pair, --method first, then alphabetical."""
    if baseline is not None:
        return [(n, baseline) for n in sorted(names) if n != baseline] if baseline in names else []
    names = sorted(names, key=lambda n: (n != method, n))
    if all_pairs:
        return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return [(method, b) for b in names[1:]] if names and names[0] == method else []


def gap_row(a: dict[int, str], b: dict[int, str]) -> dict:
    """gap_noise of method a against baseline b ({seed: bits}), with each method's accuracy and
    the unpaired (seeds only) error."""
    d, seeds = paired_matrix(a, b)
    n = gap_noise(d)
    acc_a = pd.Series([a[s].count("1") / len(a[s]) for s in seeds])
    acc_b = pd.Series([b[s].count("1") / len(b[s]) for s in seeds])
    unpaired = math.sqrt((acc_a.var(ddof=1) + acc_b.var(ddof=1)) / len(seeds)) if len(seeds) > 1 else float("nan")
    return {"acc_method": float(acc_a.mean()), "acc_baseline": float(acc_b.mean()), **n, "se_unpaired": unpaired}


def gaps(correct: pd.DataFrame, method: str, all_pairs: bool, baseline: str | None = None) -> pd.DataFrame:
    """A row per task, evaluation and pair of methods, over the seeds both have."""
    rows = []
    for (task, iteration), evals in correct.groupby(["task", "iteration"], sort=True):
        by = {m: dict(zip(g["seed"], g["greedy_correct"], strict=True)) for m, g in evals.groupby("method")}
        for a, b in pairs_of(list(by), method, all_pairs, baseline):
            if set(by[a]) & set(by[b]):
                rows.append({"task": task, "iteration": int(iteration), "method": a, "baseline": b, **gap_row(by[a], by[b])})
    cols = ["task", "iteration", "method", "baseline", "seeds", "problems", "acc_method", "acc_baseline", "gap",
            *ERRORS, "se_problems", "discordant"]
    table = pd.DataFrame(rows, columns=cols)
    for e in ERRORS:
        table[f"beyond_2{e}"] = table["gap"].abs() > 2 * table[e]
    return table


def final(correct: pd.DataFrame, method: str, all_pairs: bool, baseline: str | None = None) -> pd.DataFrame:
    """Each run's last evaluation, at the most common budget per task (no pair compares budgets)."""
    last = correct[correct["iteration"] == correct["iterations"]]
    budget = last.groupby("task")["iterations"].agg(lambda s: s.value_counts().idxmax())
    return gaps(last[last["iterations"] == last["task"].map(budget)], method, all_pairs, baseline)


def separation(table: pd.DataFrame) -> dict:
    """The two-in-a-row rule for each task and pair under each error."""
    out = {}
    for (task, a, b), g in table.sort_values("iteration").groupby(["task", "method", "baseline"]):
        out[f"{task}: {a} vs {b}"] = {e: two_in_a_row(list(zip(g["iteration"], g["gap"], g[e], strict=True)))
                                      for e in ERRORS}
    return out


def markdown(table: pd.DataFrame) -> str:
    lines = ["| task | iteration | method | baseline | seeds | gap (points) | s.e. unpaired | s.e. seeds (paired) | "
             "s.e. problems | s.e. both | beyond 2 s.e. (unpaired / paired / both) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    yes = {True: "yes", False: "no"}
    for r in table.itertuples():
        lines.append(f"| {r.task} | {r.iteration} | {r.method} | {r.baseline} | {r.seeds} | {100 * r.gap:+.2f} | "
                     f"{100 * r.se_unpaired:.2f} | {100 * r.se_seeds:.2f} | {100 * r.se_problems:.2f} | "
                     f"{100 * r.se_both:.2f} | {yes[r.beyond_2se_unpaired]} / {yes[r.beyond_2se_seeds]} / "
                     f"{yes[r.beyond_2se_both]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path, nargs="+", help="sweep output folders, run folders or correct.csv files")
    ap.add_argument("--out", type=Path, default=Path("results/test_noise"))
    ap.add_argument("--method", default="vineppo", help="compared with every other method (default vineppo)")
    ap.add_argument("--all-pairs", action="store_true", help="every pair of methods")
    ap.add_argument("--baseline", help="every other method against this one (instead of --method's pairs)")
    args = ap.parse_args(argv)
    bad = [str(f) for f in args.inputs if not (f.is_dir() or (f.suffix == ".csv" and f.is_file()))]
    if bad:
        print(f"not a folder or a correct.csv: {', '.join(bad)}", file=sys.stderr)
        return 2
    folders = [f for f in args.inputs if f.is_dir()]
    parts, missing = [read_correct(c) for c in args.inputs if c.suffix == ".csv"], []
    if folders:
        from_runs, missing = read_runs(folders)
        parts.append(from_runs)
    correct = pd.concat(parts, ignore_index=True)
    if correct.empty:
        print(f"no finished RL runs with per-problem results under {', '.join(map(str, args.inputs))}", file=sys.stderr)
        return 2
    table = gaps(correct, args.method, args.all_pairs, args.baseline)
    last = final(correct, args.method, args.all_pairs, args.baseline)
    if table.empty:
        print(f"no runs of {args.baseline or args.method} (methods there: {', '.join(sorted(set(correct['method'])))}); "
              "--method NAME or --all-pairs", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "correct.csv",
                      correct.sort_values(["task", "method", "seed", "iteration"]).to_csv(index=False))
    atomic_write_text(args.out / "gaps.csv", table.to_csv(index=False))
    atomic_write_text(args.out / "final.csv", last.to_csv(index=False))
    atomic_write_text(args.out / "final.md", markdown(last))
    sep = separation(table)
    atomic_write_text(args.out / "separation.json", json.dumps(sep, indent=2))
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"inputs": [str(f) for f in args.inputs], "commit": git_commit(), "missing_runs": missing,
         "run_commits": sorted(set(correct["commit"].dropna()))}, indent=2))
    print(markdown(last))
    if table["iteration"].nunique() > 1:
        for pair, rules in sep.items():
            print(f"{pair}: separated (two in a row) " + ", ".join(
                f"{e}: {'yes, ' + ('ahead' if r['ahead'] > 0 else 'behind' if r['ahead'] < 0 else 'crossing') if r['separated'] else 'no'}"
                for e, r in rules.items()))
    if missing:
        print("missing or unfinished runs: " + ", ".join(missing))
    print(f"wrote {args.out}/correct.csv, gaps.csv, final.csv, final.md, separation.json, provenance.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
