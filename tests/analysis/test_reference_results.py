"""The figures' numbers in results/ come out again, as committed, from the run files kept there
(scripts/figures.sh): the analysis scripts and the reference outputs agree. A change to an analysis
that moves a committed number fails here until the results are rebuilt (`make figures`)."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from .test_value_quality_script import load_script

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"

# (script, arguments before --out, the committed output folder), as in scripts/figures.sh.
JOBS = [
    ("sft_curve", ["results/table1_runs"], "sft_curve"),
    ("compute_efficiency", ["results/compute_efficiency/runs", "--paired"], "compute_efficiency"),
    ("compute_efficiency", ["results/compute_efficiency/runs", "--tolerance", "0.01"], "compute_efficiency/tolerance_0.01"),
    ("ablations", ["results/ablations/runs/*"], "ablations"),
    ("compute_efficiency", ["results/compute_efficiency_hard/runs"], "compute_efficiency_hard"),
    ("compute_efficiency", ["results/rl_free_hard/runs", "--baseline", "restem", "--tolerance", "0.01"],
     "rl_free_hard"),
    ("compute_efficiency", ["results/rl_free_hard/runs", "--baseline", "dpo_plus", "--tolerance", "0.01"],
     "rl_free_hard/dpo_plus"),
    ("compute_efficiency", ["results/rl_free_hard/runs"], "rl_free_hard/ppo"),
    ("shared_errors", ["results/rl_free_hard/runs"], "rl_free_hard/shared_errors"),
    ("compute_efficiency", ["results/wall_clock_hard/runs", "--method", "vineppo_k9"], "wall_clock_hard"),
    ("compute_efficiency", ["results/wall_clock_hard/runs", "--method", "vineppo_k3"], "wall_clock_hard/k3"),
    ("ablations", ["results/mc_samples_hard/runs", "results/compute_efficiency_hard/runs", "--at-iteration", "4"],
     "mc_samples_hard"),
    ("ablations", ["results/temperature_hard/runs", "results/compute_efficiency_hard/runs", "--at-iteration", "4"],
     "temperature_hard"),
    ("credit_assignment", ["dial", "results/credit_dial/runs"], "credit_dial"),
    ("critic", ["results/critic_lr_hard/runs", "results/value_fit_hard/runs"], "critic_lr_hard"),
    ("compute_efficiency", ["results/critic_lr_hard/runs", "--method", "ppo_vlr0.0003"], "critic_lr_hard/vs_ppo"),
    ("compute_efficiency", ["results/critic_lr_hard/runs", "results/wall_clock_hard/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.0003"], "critic_lr_hard/vs_vineppo"),
    ("compute_efficiency", ["results/critic_lr_hard/runs", "results/wall_clock_hard/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.003"], "critic_lr_hard/vs_vineppo_vlr0.003"),
    ("critic", ["results/value_clip_hard/runs", "results/critic_lr_hard/runs"], "value_clip_hard"),
    ("compute_efficiency", ["results/value_clip_hard/runs", "results/wall_clock_hard/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.0003_noclip"], "value_clip_hard/vs_vineppo_vlr0.0003"),
    ("compute_efficiency", ["results/value_clip_hard/runs", "results/wall_clock_hard/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.003_noclip"], "value_clip_hard/vs_vineppo_vlr0.003"),
    ("compute_efficiency", ["results/grpo_rloo_hard/runs", "--baseline", "grpo"], "grpo_rloo_hard"),
    ("compute_efficiency", ["results/grpo_rloo_hard/runs", "--baseline", "rloo"], "grpo_rloo_hard/rloo"),
    ("compute_efficiency", ["results/grad_clip_hard/runs", "results/wall_clock_hard/runs/vineppo_k9-*"], "grad_clip_hard"),
    ("compute_efficiency", ["results/wall_clock_per_model/runs", "--method", "vineppo_k9"], "wall_clock_per_model"),
    ("compute_efficiency", ["results/wall_clock_per_model/runs", "--method", "vineppo_k3"], "wall_clock_per_model/k3"),
    ("critic", ["results/critic_lr_per_model/runs", "results/wall_clock_per_model/runs"], "critic_lr_per_model"),
    ("compute_efficiency", ["results/critic_lr_per_model/runs", "results/wall_clock_per_model/runs/ppo-*",
                            "--method", "ppo_vlr0.0003"], "critic_lr_per_model/vs_ppo"),
    ("compute_efficiency", ["results/critic_lr_per_model/runs", "results/wall_clock_per_model/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.0003"], "critic_lr_per_model/vs_vineppo_vlr0.0003"),
    ("compute_efficiency", ["results/critic_lr_per_model/runs", "results/wall_clock_per_model/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.003"], "critic_lr_per_model/vs_vineppo_vlr0.003"),
    ("rl_table", ["results/table1_ppo_per_model/runs"], "table1_ppo_per_model"),
    ("ablations", ["results/wall_clock_per_model/runs", "--at-iteration", "4", "--kl-at", "0.85", "--baseline", "ppo"],
     "kl_per_model"),
    ("ablations", ["results/temperature_per_model/runs", "results/temperature_hard/runs/vineppo_*",
                   "results/wall_clock_per_model/runs/ppo-*", "results/wall_clock_per_model/runs/vineppo_k9-*",
                   "--at-iteration", "4"], "temperature_per_model"),
    ("compute_efficiency", ["results/whiten_hard/runs", "--method", "vineppo_nowhiten", "--baseline", "ppo_nowhiten"],
     "whiten_hard"),
    ("compute_efficiency", ["results/whiten_hard/runs", "--method", "ppo_vlr0.003_nowhiten", "--baseline",
                            "ppo_nowhiten"], "whiten_hard/critic_vlr0.003"),
    ("compute_efficiency", ["results/whiten_hard/runs", "results/wall_clock_per_model/runs/ppo-*", "--method",
                            "ppo_nowhiten", "--baseline", "ppo"], "whiten_hard/ppo_vs_whitened"),
    ("critic", ["results/whiten_hard/runs", "results/wall_clock_per_model/runs", "results/critic_lr_per_model/runs"],
     "whiten_hard/critic"),
    ("compute_efficiency", ["results/value_head_hard/runs/normal", "results/grad_clip_hard/runs", "--baseline", "ppo",
                            "--method", "ppo_headnormal", "--paired"], "value_head_hard"),
    ("compute_efficiency", ["results/value_head_hard/runs/normal", "results/wall_clock_per_model/runs/vineppo_k9-*",
                            "--baseline", "ppo_headnormal", "--method", "vineppo", "--paired"], "value_head_hard/vs_vineppo"),
    ("critic", ["results/value_head_hard/runs/normal", "results/grad_clip_hard/runs"], "value_head_hard/critic"),
    ("critic", ["results/value_clip_per_model/runs", "results/critic_lr_per_model/runs"], "value_clip_per_model"),
    ("compute_efficiency", ["results/value_clip_per_model/runs", "results/wall_clock_per_model/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.0003_noclip"], "value_clip_per_model/vs_vineppo_vlr0.0003"),
    ("compute_efficiency", ["results/value_clip_per_model/runs", "results/wall_clock_per_model/runs/vineppo_k9-*",
                            "--baseline", "ppo_vlr0.003_noclip"], "value_clip_per_model/vs_vineppo_vlr0.003"),
    ("credit_assignment", ["dial", "results/credit_dial_per_model/runs"], "credit_dial_per_model"),
    ("credit_assignment", ["dial", "results/credit_dial_per_model/joint_runs", "results/credit_dial_per_model/runs/sft-arith",
                           "results/credit_dial_per_model/runs/vineppo-*"], "credit_dial_per_model/joint_clip"),
    ("credit_assignment", ["dial", "results/credit_dial_grpo_rloo/runs/grpo-*", "results/credit_dial_per_model/runs/sft-arith",
                           "results/credit_dial_per_model/runs/vineppo-*", "--baseline", "grpo"], "credit_dial_grpo_rloo"),
    ("credit_assignment", ["dial", "results/credit_dial_grpo_rloo/runs/rloo-*", "results/credit_dial_per_model/runs/sft-arith",
                           "results/credit_dial_per_model/runs/vineppo-*", "--baseline", "rloo"],
     "credit_dial_grpo_rloo/rloo"),
    ("compute_efficiency", ["results/flaw_ops/all/runs", "--paired"], "flaw_ops/all"),
    ("compute_efficiency", ["results/flaw_ops/all/runs", "--baseline", "grpo", "--paired"], "flaw_ops/all/vs_grpo"),
    ("compute_efficiency", ["results/flaw_ops/sub/runs", "--paired"], "flaw_ops/sub"),
    ("compute_efficiency", ["results/flaw_ops/sub/runs", "--baseline", "grpo", "--paired"], "flaw_ops/sub/vs_grpo"),
    ("compute_efficiency", ["results/flaw_ops/long/runs", "--baseline", "grpo", "--paired"], "flaw_ops/long"),
    ("compute_efficiency", ["results/flaw_ops/longer/runs", "--paired"], "flaw_ops/longer"),
    ("compute_efficiency", ["results/flaw_ops/longer/runs", "--baseline", "grpo", "--paired"], "flaw_ops/longer/vs_grpo"),
    ("compute_efficiency", ["results/flaw_ops/longer/runs", "--baseline", "rloo", "--paired"], "flaw_ops/longer/vs_rloo"),
    ("compute_efficiency", ["results/flaw_ops/longer/runs", "--baseline", "restem", "--paired"],
     "flaw_ops/longer/vs_restem"),
    ("compute_efficiency", ["results/flaw_ops/longer/runs", "--baseline", "dpo_plus", "--paired"],
     "flaw_ops/longer/vs_dpo_plus"),
    ("rl_table", ["results/flaw_ops/longer/runs"], "flaw_ops/longer/table"),
    ("ablations", ["results/flaw_ops/longer/runs", "--kl-at", "0.7", "0.8", "0.85", "0.9", "--train-at", "0.4", "0.5", "0.6", "0.7", "0.8", "0.85",
                   "--baseline", "ppo"], "flaw_ops/longer/kl_generalisation"),
    ("ablations", ["results/flaw_ops/longer/runs", "--kl-at", "0.7", "0.8", "0.85", "0.9", "--train-at", "0.4", "0.5", "0.6", "0.7", "0.8", "0.85",
                   "--baseline", "vineppo_k9"], "flaw_ops/longer/kl_generalisation/vs_vineppo"),
    ("ablations", ["results/flaw_ops/longer/k/runs", "results/flaw_ops/longer/runs/vineppo-arith-s[0-5]",
                   "results/flaw_ops/longer/runs/ppo-arith-s[0-5]", "--at-iteration", "30", "--kl-at", "0.8", "0.85",
                   "--train-at", "0.5", "0.6", "0.7", "0.8", "--baseline", "ppo"], "flaw_ops/longer/k"),
    ("compute_efficiency", ["results/flaw_ops/longer/k/runs", "results/flaw_ops/longer/runs/vineppo-arith-s[0-5]",
                            "results/flaw_ops/longer/runs/ppo-arith-s[0-5]", "--method", "vineppo_k3", "--baseline",
                            "vineppo_k9", "--paired"], "flaw_ops/longer/k/k3_vs_k9"),
    ("compute_efficiency", ["results/flaw_ops/longer/k/runs", "results/flaw_ops/longer/runs/vineppo-arith-s[0-5]",
                            "results/flaw_ops/longer/runs/ppo-arith-s[0-5]", "--method", "vineppo_k27", "--baseline",
                            "vineppo_k9", "--paired"], "flaw_ops/longer/k/k27_vs_k9"),
    ("compute_efficiency", ["results/flaw_ops/longer/critic/runs", "results/flaw_ops/longer/runs/vineppo-arith-s*",
                            "results/flaw_ops/longer/runs/ppo-arith-s*", "--baseline", "ppo_vlr0.003", "--paired"],
     "flaw_ops/longer/critic/vs_vineppo"),
    ("compute_efficiency", ["results/flaw_ops/longer/critic/runs", "results/flaw_ops/longer/runs/vineppo-arith-s*",
                            "results/flaw_ops/longer/runs/ppo-arith-s*", "--method", "ppo_vlr0.003", "--paired"],
     "flaw_ops/longer/critic/vs_ppo"),
    ("critic", ["results/flaw_ops/longer/critic/runs", "results/flaw_ops/longer/runs/vineppo-arith-s*",
                "results/flaw_ops/longer/runs/ppo-arith-s*"], "flaw_ops/longer/critic/critic"),
    ("error_anatomy", ["results/flaw_ops/longer/errors_final", "--replot"], "flaw_ops/longer/errors_final"),
    ("kl_exact", ["results/flaw_ops/longer/kl_exact", "--replot"], "flaw_ops/longer/kl_exact"),
    ("kl_exact", ["results/flaw_ops/longer/kl_exact/wide/ppo", "--replot"], "flaw_ops/longer/kl_exact/wide/ppo"),
    ("kl_exact", ["results/flaw_ops/longer/kl_exact/wide/vineppo", "--replot"], "flaw_ops/longer/kl_exact/wide/vineppo"),
    ("error_anatomy", ["results/flaw_ops/longer/kl_exact/errors", "--replot"], "flaw_ops/longer/kl_exact/errors"),
    ("compute_efficiency", ["results/flaw_ops/longer/steps/runs/vineppo_auto-*",
                            "results/flaw_ops/longer/steps/runs/vineppo_response-*", "--baseline", "vineppo",
                            "--method", "vineppo_response", "--paired"], "flaw_ops/longer/steps/vs_response"),
    ("compute_efficiency", ["results/flaw_ops/longer/steps/runs/vineppo_auto-*",
                            "results/flaw_ops/longer/steps/runs/vineppo_operand-*", "--baseline", "vineppo",
                            "--method", "vineppo_regex3170db", "--paired"], "flaw_ops/longer/steps/vs_regex3170db"),
    ("compute_efficiency", ["results/flaw_ops/longer/steps/runs/vineppo_response-*",
                            "results/flaw_ops/longer/runs/grpo-arith-s[0-5]", "--baseline", "grpo", "--method",
                            "vineppo_response", "--paired"], "flaw_ops/longer/steps/response_vs_grpo"),
    ("error_anatomy", ["results/flaw_ops/longer/steps/errors", "--replot"], "flaw_ops/longer/steps/errors"),
    ("compute_efficiency", ["results/flaw_ops/longer/steps/answer/runs/vineppo_lines_answer-*",
                            "results/flaw_ops/longer/steps/runs/vineppo_auto-*", "--baseline", "vineppo",
                            "--method", "vineppo_lines_answer", "--paired"], "flaw_ops/longer/steps/answer"),
    ("compute_efficiency", ["results/flaw_ops/longer/steps/runs/vineppo_response-*",
                            "results/flaw_ops/longer/runs/rloo-arith-s[0-5]", "--baseline", "rloo", "--method",
                            "vineppo_response", "--paired"], "flaw_ops/longer/steps/response_vs_rloo"),
    ("compute_efficiency", ["results/flaw_ops/longer/runs/grpo-arith-*", "results/flaw_ops/longer/runs/rloo-arith-*",
                            "--baseline", "rloo", "--method", "grpo", "--paired"], "flaw_ops/longer/steps/grpo_vs_rloo"),
    ("copy_stutter", ["results/flaw_ops/longer/steps/stutter", "--replot"], "flaw_ops/longer/steps/stutter"),
    ("copy_stutter", ["results/flaw_ops/longer/steps/stutter_methods", "--replot"],
     "flaw_ops/longer/steps/stutter_methods"),
    ("copy_stutter", ["results/flaw_ops/longer/steps/no_add_flaw/stutter", "--replot"],
     "flaw_ops/longer/steps/no_add_flaw/stutter"),
    ("error_anatomy", ["results/flaw_ops/longer/steps/no_add_flaw/errors", "--replot"],
     "flaw_ops/longer/steps/no_add_flaw/errors"),
    ("compute_efficiency", ["results/flaw_ops/longer/steps/no_add_flaw/runs/vineppo-*",
                            "results/flaw_ops/longer/steps/no_add_flaw/runs/grpo-*", "--baseline", "grpo", "--paired"],
     "flaw_ops/longer/steps/no_add_flaw/vs_grpo"),
    ("test_noise", ["results/test_noise/compute_efficiency/runs"], "test_noise/compute_efficiency"),
    ("test_noise", ["results/test_noise/flaw_ops/runs"], "test_noise/flaw_ops"),
    ("compute_efficiency", ["results/test_noise/compute_efficiency/runs", "--paired"],
     "test_noise/compute_efficiency/speedup"),
    ("compute_efficiency", ["results/test_noise/flaw_ops/runs", "--baseline", "grpo", "--paired"],
     "test_noise/flaw_ops/speedup"),
    ("test_noise", ["results/test_noise/wall_clock_per_model/runs", "--baseline", "ppo"],
     "test_noise/wall_clock_per_model"),
    ("compute_efficiency", ["results/test_noise/wall_clock_per_model/runs", "--method", "vineppo_k9", "--paired"],
     "test_noise/wall_clock_per_model/speedup"),
    ("compute_efficiency", ["results/test_noise/wall_clock_per_model/runs", "--method", "vineppo_k3", "--paired"],
     "test_noise/wall_clock_per_model/speedup_k3"),
    ("test_noise", ["results/test_noise/final/table1/correct.csv", "--all-pairs"], "test_noise/final/table1"),
    ("test_noise", ["results/test_noise/final/flaw_ops_longer/correct.csv", "--all-pairs"],
     "test_noise/final/flaw_ops_longer"),
    ("test_noise", ["results/test_noise/final/grpo_rloo_hard/correct.csv", "--all-pairs"],
     "test_noise/final/grpo_rloo_hard"),
    ("test_noise", ["results/test_noise/final/wall_clock_per_model/correct.csv", "--all-pairs"],
     "test_noise/final/wall_clock_per_model"),
]
LABELS = {"run", "commit"}  # where the run folders were read from, and which code wrote them: not numbers


def same_table(got: pd.DataFrame, ref: pd.DataFrame, name: str) -> None:
    assert sorted(got.columns) == sorted(ref.columns), name
    cols = [c for c in ref.columns if c not in LABELS]
    key = [c for c in cols if ref[c].dtype == object] or cols
    got, ref = (t[cols].sort_values(key, kind="stable").reset_index(drop=True) for t in (got, ref))
    assert len(got) == len(ref), name
    for c in cols:
        if pd.api.types.is_numeric_dtype(ref[c]):
            assert got[c].to_numpy() == pytest.approx(ref[c].to_numpy(), abs=1e-9, nan_ok=True), f"{name}: {c}"
        else:
            assert got[c].tolist() == ref[c].tolist(), f"{name}: {c}"


def numbers(d):
    """A speedup.json section without where it was read from."""
    if isinstance(d, dict):
        return {k: numbers(v) for k, v in d.items() if k not in ("commit", "folders")}
    if isinstance(d, list):
        return [numbers(v) for v in d]
    return round(d, 9) if isinstance(d, float) and math.isfinite(d) else d


@pytest.mark.slow
@pytest.mark.parametrize(("script", "args", "folder"), JOBS, ids=[j[2] for j in JOBS])
def test_reference_outputs_rebuild(script, args, folder, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = [m for a in args for m in (sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(a)) if set("*?[") & set(a) else [a])]
    assert load_script(script).main([*args, "--out", str(tmp_path)]) == 0
    ref_dir = RESULTS / folder
    tables = sorted(p.name for p in ref_dir.glob("*.csv"))
    assert tables, f"no tables in {ref_dir}"
    for name in tables:
        assert (tmp_path / name).exists(), f"{folder}/{name} not written"
        same_table(pd.read_csv(tmp_path / name), pd.read_csv(ref_dir / name), f"{folder}/{name}")
    if (ref_dir / "speedup.json").exists():
        got, ref = (json.loads((d / "speedup.json").read_text()) for d in (tmp_path, ref_dir))
        assert numbers(got) == numbers(ref), f"{folder}/speedup.json"


def test_jobs_match_the_script():
    """Every job here is a line of scripts/figures.sh, so the test checks what `make figures` runs."""
    text = (ROOT / "scripts" / "figures.sh").read_text()
    for script, args, folder in JOBS:
        line = f"run analysis/{script}.py {' '.join(args)} --out results/{folder}"
        assert line in " ".join(text.split()), line


def test_every_kept_run_records_its_config_and_commit():
    """results/ holds real runs only: each run folder kept there has its config and the commit that
    ran it (a run folder ignored by git would leave the figures above without their inputs)."""
    import re

    summaries = sorted(RESULTS.rglob("summary.json"))
    assert len(summaries) >= 100
    for path in summaries:
        assert (path.parent / "config.yaml").is_file(), f"{path.parent}: no config.yaml"
        commit = json.loads(path.read_text()).get("commit")
        assert commit and re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit), f"{path}: commit {commit!r}"
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return  # not a git checkout: nothing can be ignored
    ignored = subprocess.run(["git", "check-ignore", *map(str, summaries)], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert not ignored, f"ignored by git, so missing from a clone: {ignored[:3]}"


BLAME = sorted(p.parent.relative_to(RESULTS) for pattern in ("credit_blame_*/it*/*/blame.csv",
                                                               "value_quality_sampler/blame/*/blame.csv")
               for p in RESULTS.glob(pattern))


def test_blame_outputs_are_kept():
    assert len(BLAME) >= 11  # credit_blame_hard (2 checkpoints x 3 critics), credit_blame_vlr (3), value_quality_sampler (2)


@pytest.mark.parametrize("folder", BLAME, ids=[str(b) for b in BLAME])
def test_blame_summaries_rebuild(folder, tmp_path):
    """Each blame_summary.csv comes out again from its blame.csv (`credit_assignment.py blame-summary`,
    as scripts/figures.sh runs it), and its provenance records the runs' configs and a commit."""
    import shutil

    shutil.copy(RESULTS / folder / "blame.csv", tmp_path / "blame.csv")
    assert load_script("credit_assignment").main(["blame-summary", str(tmp_path)]) == 0
    same_table(pd.read_csv(tmp_path / "blame_summary.csv"), pd.read_csv(RESULTS / folder / "blame_summary.csv"),
               f"{folder}/blame_summary.csv")
    prov = json.loads((RESULTS / folder / "provenance.json").read_text())
    assert prov["commit"] and all("run_config" in r for r in prov["runs"].values())
    assert (RESULTS / folder).parent.parent.joinpath("run.sh").is_file()


@pytest.mark.parametrize(("method", "now", "earlier"), [
    ("vineppo_k9", "wall_clock_per_model", "wall_clock_hard"), ("vineppo_k3", "wall_clock_per_model", "wall_clock_hard"),
    ("ppo", "wall_clock_per_model", "grad_clip_hard"), ("ppo", "credit_blame_per_model", "wall_clock_per_model"),
    ("ppo_vlr3e-4", "credit_blame_per_model", "critic_lr_per_model"),
    ("ppo_vlr3e-3", "credit_blame_per_model", "critic_lr_per_model")])
def test_reruns_reproduce_their_accuracies(method, now, earlier):
    """Runs made again, in another session, whose code path had not changed (wall_clock_per_model/:
    VinePPO from wall_clock_hard/, PPO clipped per model from grad_clip_hard/; credit_blame_per_model/:
    PPO with checkpoints kept, from wall_clock_per_model/ and critic_lr_per_model/): every seed's test
    accuracy at every evaluation is the same number (same seed and config give the same numbers on CPU)."""
    def accuracies(folder):
        rows = {}
        for path in sorted((RESULTS / folder / "runs").glob(f"{method}-*/metrics.jsonl")):
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            rows[path.parent.name] = [(r["iteration"], r["eval/greedy_accuracy"]) for r in records]
        return rows

    assert len(accuracies(now)) == 6 and accuracies(now) == accuracies(earlier)


def test_main_table_runs_reproduce_earlier_runs():
    """The main table's runs (table1_runs/, a fresh-clone `make tiny`) against earlier sessions' runs
    of the same code path: every RestEM, DPO+, VinePPO, GRPO and RLOO run has the test accuracy of
    its seed in table1_rerun_7be5850/, every PPO run (clipped per model since) that of
    table1_ppo_per_model/, and the SFT runs log the same losses and evaluations."""
    def final(folder, name):
        return json.loads((RESULTS / folder / name / "summary.json").read_text())["test_greedy_accuracy"]

    runs = sorted(p.parent.name for p in (RESULTS / "table1_runs").glob("*-s*/summary.json"))
    assert len(runs) == 36
    for name in runs:
        earlier = "table1_ppo_per_model/runs" if name.startswith("ppo-") else "table1_rerun_7be5850/runs"
        assert final("table1_runs", name) == final(earlier, name), name
    def losses(folder, name):
        lines = (RESULTS / folder / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]

    for task in ("arith", "arith_hard"):
        assert losses("table1_runs", f"sft-{task}") == losses("table1_rerun_7be5850/runs", f"sft-{task}")


def test_main_table_reruns_record_for_record():
    """table1_rerun_e7616c2_f54beba/: `make tiny` again, its jobs at commits e7616c2 to f54beba
    (each in its summary.json), 159 or more after table1_runs/'s (new settings with their old
    defaults, checkpoint, config and ZeRO-3 changes between): every run logs table1_runs/'s
    records, losses, rewards and evaluations alike (only time/ differs)."""
    def records(folder, name):
        lines = (RESULTS / folder / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]

    runs = sorted(p.parent.name for p in (RESULTS / "table1_rerun_e7616c2_f54beba" / "runs").glob("*/summary.json"))
    assert len(runs) == 38 and runs == sorted(p.parent.name for p in (RESULTS / "table1_runs").glob("*/summary.json"))
    for name in runs:
        again = records("table1_rerun_e7616c2_f54beba/runs", name)
        assert len(again) >= 5 and again == records("table1_runs", name), name


def test_dial_sft_reproduces_across_code_versions():
    """credit_dial_per_model/'s SFT (today's code) logs every loss and evaluation of credit_dial/'s
    (commit 1843b51): its RL numbers moved with later RL changes, its starting point did not."""
    def losses(folder):
        lines = (RESULTS / folder / "runs" / "sft-arith" / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]

    now = losses("credit_dial_per_model")
    assert len(now) > 50 and now == losses("credit_dial")


def test_longer_runs_repeat_the_shorter_ones_where_they_overlap():
    """flaw_ops/long/ (20 iterations) against flaw_ops/all/ (8), and flaw_ops/longer/ (40) against
    both: the same seed and config up to the shorter run's end, so every run logs the same reward,
    losses and test accuracy there (longer/'s VinePPO and GRPO runs continued long/'s from their
    checkpoints; its PPO runs started afresh)."""
    def records(folder, run, upto):  # long/ and longer/ evaluate every 2 iterations, all/ after each
        lines = (RESULTS / "flaw_ops" / folder / "runs" / run / "metrics.jsonl").read_text().splitlines()
        keep = ("train/reward", "loss/policy", "eval/greedy_accuracy", "eval/greedy_flawed")
        return [{k: r[k] for k in keep if k in r and (k.startswith(("train", "loss")) or r["iteration"] % 2 == 0)}
                for r in map(json.loads, lines) if r["iteration"] <= upto]

    runs = sorted(p.name for p in (RESULTS / "flaw_ops" / "long" / "runs").iterdir())
    assert len(runs) == 24
    for run in runs:
        long, short = records("long", run, 8), records("all", run, 8)
        assert len(short) == 8 and long == short, run
    longer = sorted(p.name for p in (RESULTS / "flaw_ops" / "longer" / "runs").iterdir())
    assert len(longer) == 120 and set(runs) < set(longer)  # 6 methods x 20 seeds
    in_all = {p.name for p in (RESULTS / "flaw_ops" / "all" / "runs").iterdir()}
    for run in longer:  # RLOO, RestEM and DPO+ (and seeds 12-19) have no shorter run to repeat
        assert len(records("longer", run, 40)) == 40, run
        if run in runs or run in in_all:
            folder, upto = ("long", 20) if run in runs else ("all", 8)
            assert records("longer", run, upto) == records(folder, run, upto), run
    # GRPO seed 0 trained 40 iterations from scratch at a later commit: the same numbers as the run
    # that continued long/'s 20 iterations, so longer/'s fresh seeds and continued seeds compare
    assert records("longer/scratch_check", "grpo-arith-s0", 40) == records("longer", "grpo-arith-s0", 40)


def test_step_rule_runs_repeat_longer_where_the_rule_is_the_default():
    """flaw_ops/longer/steps/: the `auto` arm (rl.vine_steps added, left at the task's rule) logs
    longer/'s VinePPO numbers exactly, at a later commit; `response` and the operand split share
    its first rollouts but estimate other states, so they part from it at the first update."""
    def records(folder, run):
        lines = (RESULTS / "flaw_ops" / folder / "runs" / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]

    for s in range(6):
        auto = records("longer/steps", f"vineppo_auto-arith-s{s}")
        assert len(auto) == 40 and auto == records("longer", f"vineppo-arith-s{s}")
        for arm, states in (("response", 256.0), ("operand", None)):
            other = records("longer/steps", f"vineppo_{arm}-arith-s{s}")
            assert len(other) == 40 and other[0]["train/reward"] == auto[0]["train/reward"]
            assert other[0]["vine/num_states"] == (states or other[0]["vine/num_states"])
            if arm == "operand":  # a state after every line's first operand as well as every line
                assert auto[0]["vine/num_states"] < other[0]["vine/num_states"] <= 2 * auto[0]["vine/num_states"]
            assert other[0]["loss/policy"] != auto[0]["loss/policy"]


def test_stutter_reruns_repeat_longer():
    """flaw_ops/longer/steps/stutter_methods/: PPO and GRPO rerun with checkpoints kept, at a later
    commit, log longer/'s numbers record for record, so the checkpoints copy_stutter read are those
    runs'."""
    def records(folder, run):
        lines = (RESULTS / "flaw_ops" / folder / "runs" / run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/")} for line in lines]

    runs = sorted(p.name for p in (RESULTS / "flaw_ops" / "longer" / "steps" / "stutter_methods" / "runs").iterdir())
    assert runs == ["grpo-arith-s0", "grpo-arith-s1", "ppo-arith-s0", "ppo-arith-s1"]
    for run in runs:
        again = records("longer/steps/stutter_methods", run)
        assert len(again) == 40 and again == records("longer", run), run


def test_test_noise_runs_repeat_the_earlier_ones():
    """test_noise/'s runs reran compute_efficiency/ (8 iterations), flaw_ops/longer/'s VinePPO and
    GRPO (to iteration 22) and wall_clock_per_model/ (8 iterations) at later commits, now keeping every evaluation's per-problem bits: they
    log the same numbers, and each evaluation's bits average to its logged accuracy."""
    def records(path, upto):
        return [{k: v for k, v in r.items() if not k.startswith("time/")}
                for r in map(json.loads, (path / "metrics.jsonl").read_text().splitlines()) if r["iteration"] <= upto]

    for part, earlier, upto, count in (("compute_efficiency", RESULTS / "compute_efficiency" / "runs", 8, 6),
                                       ("flaw_ops", RESULTS / "flaw_ops" / "longer" / "runs", 22, 40),
                                       ("wall_clock_per_model", RESULTS / "wall_clock_per_model" / "runs", 8, 18)):
        runs = sorted((RESULTS / "test_noise" / part / "runs").iterdir())
        assert len(runs) == count, part
        for d in runs:
            now = records(d, upto)
            assert len(now) == upto and now == records(earlier / d.name, upto), d.name
            bits = json.loads((d / "eval" / "greedy_correct.json").read_text())["iterations"]
            logged = {str(r["iteration"]): r["eval/greedy_accuracy"] for r in now if "eval/greedy_accuracy" in r}
            assert set(bits) == set(logged), d.name
            assert all(bits[i].count("1") / len(bits[i]) == pytest.approx(acc) for i, acc in logged.items()), d.name


def test_sampler_comparison_differs_by_the_sampler_alone():
    """value_quality_sampler/: the PPO run made again is value_quality_per_model/'s paper-rate run
    record for record, and the analysis before the sampler fix, run on it, gives that folder's
    states and numbers exactly; so `fixed/` and `before/` differ only where the samples are drawn
    at the run's top-p (0.9) instead of 1.0. The responses blamed are the same either way (drawn at
    the run's top-p before too); only their MC values are drawn anew."""
    here, there = RESULTS / "value_quality_sampler", RESULTS / "value_quality_per_model"

    def records(path):
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("time/") and k != "train/episodes"}
                for line in path.read_text().splitlines() if line.strip()]

    again = records(here / "run" / "metrics.jsonl")
    assert len(again) == 4 and again == records(there / "runs" / "ppo_vlrnull-arith-s0" / "metrics.jsonl")[:4]
    for step, folder in ((2, "vlrnull"), (4, "vlrnull/step4")):
        for table in ("states.csv", "summary.csv"):
            same_table(pd.read_csv(here / "before" / f"step{step}" / table), pd.read_csv(there / folder / table), table)
        fixed = pd.read_csv(here / "fixed" / f"step{step}" / "summary.csv")
        before = pd.read_csv(here / "before" / f"step{step}" / "summary.csv")
        assert not fixed["mae"].equals(before["mae"])  # other samples
        assert json.loads((here / "before" / f"step{step}" / "provenance.json").read_text())["code_commit"] == "afb6670"
    blamed = {code: pd.read_csv(here / "blame" / code / "blame.csv") for code in ("fixed", "before")}
    assert blamed["fixed"]["id"].tolist() == blamed["before"]["id"].tolist()
    assert blamed["fixed"]["wrong_step"].tolist() == blamed["before"]["wrong_step"].tolist()
    assert blamed["fixed"]["mc_values"].tolist() != blamed["before"]["mc_values"].tolist()
