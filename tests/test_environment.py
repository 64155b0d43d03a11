"""pyproject.toml and environment.yml pin the same packages at the same versions."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", r.strip())
        assert m, f"not pinned with ==: {r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_pyproject_and_environment_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    py = _pins(reqs)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins([p for p in pip if not p.startswith("-e")])
    assert py == conda
    assert py["torch"] == "2.13.0"
