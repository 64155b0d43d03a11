"""Do the methods fail on the same held-out problems? Where every method ends on the same plateau
(results/rl_free_hard/), they may share one ceiling (the same problems stay wrong whatever the
method) or reach the same accuracy by different routes (different problems wrong).

    python analysis/shared_errors.py results/rl_free_hard/runs --out results/rl_free_hard/shared_errors

Reads each RL run's final evaluation (eval/test.json: greedy correctness per test problem and the
kind of its first wrong step) and writes:
- errors.csv: per run, greedy accuracy and its wrong problems by first wrong step (the flaw,
  another step, not located);
- overlap.csv: per pair of runs, the Jaccard overlap |A & B| / |A | B| of their wrong-problem
  sets, and the overlap expected were the two runs' errors independent of the problem,
  pq / (p + q - pq) for error rates p and q;
- pairs.csv: the mean overlap between every two methods (same method: across its seeds);
- shared_errors.{png,pdf}: that table as a heat map.
Runs without eval/test.json are listed and left out.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.runs import parse_folders, run_folders
from vineppo.runio import atomic_write_text, git_commit


def wrong_problems(run: Path) -> tuple[dict, set[str], frozenset[str]] | None:
    """(the run's row of errors.csv, its wrong problem ids, all its test problem ids), or None
    without a final evaluation."""
    summary = json.loads((run / "summary.json").read_text())
    path = run / "eval" / "test.json"
    if "algo" not in summary or not path.exists():
        return None
    problems = json.loads(path.read_text())["problems"]
    wrong = [p for p in problems if not p["greedy_correct"]]
    kinds = Counter(p.get("first_error_kind") for p in wrong)
    row = {"run": run.name, "algo": summary["algo"], "seed": summary.get("seed"), "problems": len(problems),
           "greedy_accuracy": 1 - len(wrong) / len(problems), "wrong": len(wrong),
           "wrong_at_flaw": kinds["flaw"], "wrong_elsewhere": kinds["other"],
           "wrong_not_located": len(wrong) - kinds["flaw"] - kinds["other"]}
    return row, {str(p["id"]) for p in wrong}, frozenset(str(p["id"]) for p in problems)


def overlaps(rows: list[dict], wrong: dict[str, set[str]], tested: dict[str, frozenset[str]]) -> pd.DataFrame:
    out = []
    for a, b in itertools.combinations(rows, 2):
        if tested[a["run"]] != tested[b["run"]]:
            raise ValueError(f"{a['run']} and {b['run']} were evaluated on different test sets "
                             f"({a['problems']} and {b['problems']} problems, "
                             f"{len(tested[a['run']] ^ tested[b['run']])} ids in one only)")
        wa, wb = wrong[a["run"]], wrong[b["run"]]
        p, q = len(wa) / a["problems"], len(wb) / b["problems"]
        union = len(wa | wb)
        out.append({"run_a": a["run"], "run_b": b["run"], "algo_a": a["algo"], "algo_b": b["algo"],
                    "both_wrong": len(wa & wb), "either_wrong": union,
                    "jaccard": len(wa & wb) / union if union else float("nan"),
                    "jaccard_if_independent": p * q / (p + q - p * q) if p + q > 0 else float("nan")})
    return pd.DataFrame(out)


def method_pairs(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean overlap per (method, method), the pair's two names in sorted order."""
    key = pairs.apply(lambda r: tuple(sorted((r["algo_a"], r["algo_b"]))), axis=1)
    return (pairs.assign(method_a=[k[0] for k in key], method_b=[k[1] for k in key])
            .groupby(["method_a", "method_b"], as_index=False)
            .agg(jaccard=("jaccard", "mean"), jaccard_sd=("jaccard", "std"), pairs=("jaccard", "size"),
                 jaccard_if_independent=("jaccard_if_independent", "mean")))


def plot(table: pd.DataFrame, out: Path) -> None:
    import seaborn as sns

    plt = pyplot()
    both = pd.concat([table, table.rename(columns={"method_a": "method_b", "method_b": "method_a"})])
    grid = both.drop_duplicates(["method_a", "method_b"]).pivot(index="method_a", columns="method_b",
                                                                 values="jaccard")
    fig, ax = plt.subplots(figsize=(1.2 * len(grid) + 2, 1.0 * len(grid) + 1.5))
    sns.heatmap(grid, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax)
    chance = table["jaccard_if_independent"].mean()
    ax.set(xlabel="", ylabel="", title=f"overlap of wrong test problems (Jaccard)\nindependent errors: {chance:.2f}")
    fig.tight_layout()
    save(fig, out, "shared_errors")


def main(argv: list[str] | None = None) -> int:
    args = parse_folders(argv, __doc__, "results/shared_errors")
    if args is None:
        return 2
    rows, wrong, tested, missing = [], {}, {}, []
    for run in run_folders(args.folders, marker="summary.json"):
        got = wrong_problems(run)
        if got is None:
            missing.append(run.name)
            continue
        rows.append(got[0])
        wrong[run.name], tested[run.name] = got[1], got[2]
    if len(rows) < 2:
        print(f"fewer than two RL runs with eval/test.json under {', '.join(map(str, args.folders))}",
              file=sys.stderr)
        return 2
    try:
        pairs = overlaps(rows, wrong, tested)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    table = method_pairs(pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "errors.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(args.out / "overlap.csv", pairs.to_csv(index=False))
    atomic_write_text(args.out / "pairs.csv", table.to_csv(index=False))
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"folders": [str(f) for f in args.folders], "runs": [r["run"] for r in rows], "missing": missing,
         "commit": git_commit()}, indent=2))
    plot(table, args.out)
    print(pd.DataFrame(rows).to_string(index=False))
    print(table.round(3).to_string(index=False))
    if missing:
        print("without eval/test.json (left out): " + ", ".join(missing))
    print(f"wrote {args.out}/errors.csv, overlap.csv, pairs.csv, shared_errors.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
