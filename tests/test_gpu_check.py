"""scripts/gpu_check.sh at its CPU size: every check runs (or says why it is skipped), its numbers
are the runs' own, and everything lands in one folder."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_check_at_tiny_scale(tmp_path):
    out = tmp_path / "check"
    # No wheels: a .whl/ made here for the GPU machine's Python (scripts/gpu_wheels.py) does not
    # install on this one; installing wheels has its own tests below.
    (tmp_path / "no_wheels").mkdir()
    env = {**os.environ, "GPU_CHECK_SCALE": "tiny", "OMP_NUM_THREADS": "1", "GPU_CHECK_WHEELS": str(tmp_path / "no_wheels")}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)], env=env, capture_output=True,
                          text=True, timeout=1500)
    assert (out / "summary.json").exists(), (proc.stdout + proc.stderr)[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    checks = summary["checks"]
    assert list(checks) == ["env", "tiny", "throughput", "vllm", "deepspeed"], proc.stdout[-2000:]
    assert checks["env"]["status"] == "ok" and checks["env"]["cuda_available"] is False
    tiny = checks["tiny"]
    assert tiny["status"] == "ok", tiny
    assert set(tiny["accuracy"]) == {"sft", "restem", "dpo_plus", "ppo", "vineppo", "grpo", "rloo"}
    for algo, acc in tiny["accuracy"].items():  # the numbers are the runs' own summaries
        run = out / "_runs" / algo / "summary.json"
        assert json.loads(run.read_text())["test_greedy_accuracy"] == acc and 0.0 <= acc <= 1.0
    assert {r["method"] for r in checks["throughput"]["results"]} == {"ppo", "vineppo"}
    if importlib.util.find_spec("vllm") is None:
        assert checks["vllm"]["status"] == "skipped" and "not installed" in checks["vllm"]["reason"]
    if importlib.util.find_spec("deepspeed") is not None:
        assert checks["deepspeed"]["status"] == "ok" and checks["deepspeed"]["bf16"] is False
    failed = [n for n, c in checks.items() if c["status"] == "failed"]
    assert proc.returncode == (1 if failed else 0) and not failed, proc.stdout[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["ok"] is True
    assert {p.name for p in out.iterdir()} >= {"summary.json", "env.log", "tiny.log", "throughput.log"}
    assert len([p for p in out.iterdir() if p.is_file()]) <= 8  # what a device tool's $OUT returns


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_wheel(folder: Path, value: int) -> Path:
    """A one-module wheel by hand: what pip needs (METADATA, WHEEL, RECORD) and nothing more."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vineppo_probe_pkg-1.0-py3-none-any.whl"
    info = "vineppo_probe_pkg-1.0.dist-info"
    files = {"vineppo_probe_pkg/__init__.py": f"VALUE = {value}\n",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: vineppo-probe-pkg\nVersion: 1.0\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in {**files, f"{info}/RECORD": record}.items():
            z.writestr(name, text)
    return path


def test_install_wheels_puts_them_ahead_for_this_process_and_its_commands(tmp_path, monkeypatch):
    gpu_check = load_script("gpu_check")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "/nonexistent-before")
    assert gpu_check.install_wheels(tmp_path / "none", tmp_path / "site0", tmp_path / "w0.log") == []
    assert os.environ["PYTHONPATH"] == "/nonexistent-before"  # nothing to install: nothing changed

    make_wheel(tmp_path / "wheels", value=41)
    names = gpu_check.install_wheels(tmp_path / "wheels", tmp_path / "site", tmp_path / "w.log")
    assert names == ["vineppo_probe_pkg-1.0-py3-none-any.whl"]
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "site"), "/nonexistent-before"]
    assert gpu_check.package_version("vineppo-probe-pkg") == "1.0"
    assert gpu_check.package_version("no-such-package-here") is None
    code, text = gpu_check.run([sys.executable, "-c", "import vineppo_probe_pkg as p; print(p.VALUE + 1)"],
                               tmp_path / "child.log", 60)
    assert code == 0 and text.strip().splitlines()[-1] == "42"


def test_install_wheels_stops_with_the_folder_named_on_a_broken_wheel(tmp_path, monkeypatch):
    gpu_check = load_script("gpu_check")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip file")
    with pytest.raises(SystemExit, match="wheels"):
        gpu_check.install_wheels(tmp_path / "wheels", tmp_path / "site", tmp_path / "w.log")


def fake_runs(work: Path, fails: dict[str, int], calls: list[list[str]]):
    """A stand-in for gpu_check.run: the command's run writes a summary (accuracy by method), except
    methods in `fails`, which exit with that code (code 1: only without rl.shared_prefix=false)."""
    accuracy = {"sft": 0.25, "restem": 0.5, "dpo_plus": 0.5625, "ppo": 0.75, "vineppo": 0.8125, "grpo": 0.6875,
                "rloo": 0.625}

    def run(cmd, log, limit, env=None):
        calls.append(cmd)
        name = next(a.split("=", 1)[1] for a in cmd if a.startswith("run_name="))
        algo = next((a.split("=", 1)[1] for a in cmd if a.startswith("rl.algo=")), "sft")
        code = fails.get(algo, 0)
        if code not in (0, 1) or (code == 1 and "rl.shared_prefix=false" not in cmd):
            return code, ""
        (work / name).mkdir(parents=True)
        (work / name / "summary.json").write_text(json.dumps({"test_greedy_accuracy": accuracy[algo],
                                                              "seconds_per_iteration": 1.5}))
        return 0, ""
    return run, accuracy


def test_tiny_check_retries_a_failing_method_without_shared_prefix_and_runs_the_rest(tmp_path, monkeypatch):
    gpu_check = load_script("gpu_check")
    calls: list[list[str]] = []
    run, accuracy = fake_runs(tmp_path / "runs", {"vineppo": 1, "grpo": 2, "rloo": 124}, calls)
    monkeypatch.setattr(gpu_check, "run", run)
    result = gpu_check.check_tiny(tmp_path, gpu_check.SCALES["tiny"], tmp_path / "runs")
    assert result["status"] == "failed"
    assert result["reason"] == "grpo exit 2; rloo exit 124; vineppo passed only with rl.shared_prefix=false"
    assert result["accuracy"] == {k: v for k, v in accuracy.items() if k not in ("grpo", "rloo")}
    assert result["passed_only_with"] == {"rl.shared_prefix=false": ["vineppo"]}
    names = [next(a for a in c if a.startswith("run_name=")) for c in calls]
    assert names == ["run_name=sft", "run_name=restem", "run_name=dpo_plus", "run_name=ppo", "run_name=vineppo",
                     "run_name=vineppo_no_shared_prefix", "run_name=grpo", "run_name=grpo_no_shared_prefix",
                     "run_name=rloo"]  # rloo ran after grpo failed; stopped at its time limit, it is not retried


def test_tiny_check_is_ok_when_every_method_passes_first_time(tmp_path, monkeypatch):
    gpu_check = load_script("gpu_check")
    calls: list[list[str]] = []
    run, accuracy = fake_runs(tmp_path / "runs", {}, calls)
    monkeypatch.setattr(gpu_check, "run", run)
    result = gpu_check.check_tiny(tmp_path, gpu_check.SCALES["tiny"], tmp_path / "runs")
    assert result["status"] == "ok" and "reason" not in result and "passed_only_with" not in result
    assert result["accuracy"] == accuracy and len(calls) == 7
    assert not any("rl.shared_prefix=false" in c for c in calls)


def test_throughput_check_does_not_retry_a_run_stopped_at_its_time_limit(tmp_path, monkeypatch):
    gpu_check = load_script("gpu_check")
    calls: list[list[str]] = []
    monkeypatch.setattr(gpu_check, "run", lambda cmd, log, limit, env=None: (calls.append(cmd), (124, ""))[1])
    result = gpu_check.check_throughput(tmp_path, gpu_check.SCALES["tiny"])
    assert len(calls) == 1 and result == {"status": "failed", "reason": "exit 124: stopped at its time limit"}


@pytest.mark.parametrize("second", [0, 1])
def test_throughput_check_runs_again_without_shared_prefix(tmp_path, monkeypatch, second):
    gpu_check = load_script("gpu_check")
    calls: list[list[str]] = []
    line = json.dumps({"device": "x", "results": [{"method": "ppo"}]})

    def run(cmd, log, limit, env=None):
        calls.append(cmd)
        return (1, "Traceback ...") if len(calls) == 1 else (second, line if second == 0 else "still broken")
    monkeypatch.setattr(gpu_check, "run", run)
    result = gpu_check.check_throughput(tmp_path, gpu_check.SCALES["tiny"])
    assert calls[1][-2:] == ["--set", "rl.shared_prefix=false"] and "--set" not in calls[0]
    assert result["status"] == "failed"
    if second == 0:  # the numbers are kept, and the cause named
        assert result["reason"] == "exit 1; passed only with rl.shared_prefix=false"
        assert result["results"] == [{"method": "ppo"}]
    else:
        assert result["reason"] == "exit 1; with rl.shared_prefix=false: exit 1" and "results" not in result


def test_gpu_throughput_passes_set_overrides_to_the_config(tmp_path):
    """--set reaches the run's config: a misspelt key stops with the closest valid one named."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--scale", "tiny",
                           "--device", "cpu", "--set", "rl.shared_prefx=false"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "rl.shared_prefx" in proc.stderr and "rl.shared_prefix" in proc.stderr.replace("rl.shared_prefx", "")
