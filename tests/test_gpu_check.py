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
