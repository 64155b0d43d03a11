"""scripts/gpu_wheels.py: the wheels it fetches are this environment's pins, for the GPU machine's
kind (CPython 3.12, manylinux x86-64); deepspeed, source-only, is built here. No network here."""

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "scripts" / "gpu_wheels.py")
gpu_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_wheels)


def project_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", d).groups() for d in deps)


def test_versions_are_the_projects_pins():
    versions, pins = gpu_wheels.pinned(), project_pins()
    for name in ("transformers", "omegaconf", "math-verify", "submitit", "deepspeed"):
        assert versions[name] == pins[name], name
    assert set(versions) == set(gpu_wheels.PACKAGES)


def test_a_package_not_installed_is_named():
    with pytest.raises(SystemExit, match="no-such-package-xyz"):
        gpu_wheels.pinned(("omegaconf", "no-such-package-xyz"))


def test_commands_fetch_for_the_gpu_machine_and_build_deepspeed_here(tmp_path):
    cmd = gpu_wheels.download_cmd("pydantic_core", "2.50.5", tmp_path)
    assert cmd[3:5] == ["download", "--no-deps"] and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("--implementation") + 1] == "cp"
    assert "manylinux_2_17_x86_64" in cmd and cmd[-1] == "pydantic_core==2.50.5"
    ds = gpu_wheels.download_cmd("deepspeed", "0.19.8", tmp_path)
    assert ds[3:6] == ["wheel", "--no-deps", "--no-build-isolation"] and ds[-1] == "deepspeed==0.19.8"
