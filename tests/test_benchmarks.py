"""The CPU benchmarks run with the engines that are installed and say what they skipped and why
(here: without vllm, as in `.venv`)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import rollout_throughput as bench  # noqa: E402


@pytest.mark.slow
def test_rollout_throughput_without_vllm(easy_sft_checkpoint, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now fails, as where it is not installed
    assert bench.vllm_missing() is not None
    result = bench.main(["--init", str(easy_sft_checkpoint), "--episodes", "3", "--k", "2", "--max-new-tokens", "30",
                         "--repeats", "2", "--batch-size", "16"])
    out = capsys.readouterr().out
    assert "skipping vllm: vllm is not installed" in out
    assert json.loads(out.strip().splitlines()[-1]) == result  # the last line is the JSON
    assert set(result["tokens_per_s"]) == {"naive", "hf"} and "vllm" in result["skipped"]
    assert result["vllm_speedup_vs_naive"] is None and result["hf_speedup_vs_naive"] > 0
    # The median of 2 runs: each engine's printed row lists both runs.
    assert sum(1 for line in out.splitlines() if line.startswith(("naive", "hf")) and len(line.split()) == 8) == 2


def test_vllm_missing_is_about_vllm_itself(monkeypatch):
    """The old guard imported our engine module, which imports without vllm: it never skipped."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    import vineppo.inference.vllm  # noqa: F401 - imports fine without vllm

    assert "vllm is not installed" in bench.vllm_missing()


def test_iteration_speed_summary_by_hand():
    import iteration_speed

    def rec(g, v, t, r):
        return {"time/generation_s": g, "time/value_estimation_s": v, "time/training_s": t, "train/reward": r}

    records = [rec(9, 9, 9, 0.0), rec(1, 2, 3, 0.5), rec(2, 2, 4, 0.5), rec(1, 1, 1, 1.0)]
    s = iteration_speed.summarise(records)
    # iteration 1 (27 s) is warm-up; the rest total 6, 8, 3 s -> median 6
    assert (s["s_per_iter"], s["min"], s["max"]) == (6, 3, 8)
    assert (s["generation"], s["value_estimation"], s["training"]) == (1, 2, 3)
    assert s["reward"] == 0.5


def test_iteration_speed_checks_out_the_earlier_commit(tmp_path):
    import subprocess

    import iteration_speed

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD~1"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("no earlier commit in this clone")
    where = iteration_speed.worktree("HEAD~1", tmp_path / "before")
    try:
        assert (where / "src" / "vineppo" / "loop.py").exists()
        rev = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert rev.strip() == head.stdout.strip()
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)


def test_grading_throughput(monkeypatch, capsys):
    """Both settings grade every case of the built workloads right (else the script exits), the
    symbolic workload goes through the pool and the plain numbers never need it."""
    import grading_throughput

    from vineppo import grading

    assert sum(e for *_, e in grading_throughput.symbolic_workload(40)) not in (0, 40)  # both verdicts occur
    result = grading_throughput.main(["--n", "40", "--repeats", "1", "--workers", "2"])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1]) == result
    assert result["workers"] == 2 and result["symbolic_speedup"] > 0 and result["numbers_speedup"] > 0
    assert [line.split()[-1] for line in out.splitlines() if line.startswith(("symbolic ", "numbers "))] == \
        ["40", "40", "0", "0"]  # comparisons that need math-verify
    assert grading._grading_pool is None  # shut down at the end
    grading.set_workers(1)
