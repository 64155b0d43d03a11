"""Wheels for a GPU machine without a package index: what `scripts/gpu_check.sh` needs there and
the machine lacks, at this environment's pinned versions, in one folder to carry along.

    .venv/bin/python scripts/gpu_wheels.py [--dest .whl]      # here, where PyPI is reachable

The GPU machines lent to this project (one H100/H200, Python 3.12, torch 2.11, transformers 5.17;
issue 16) have no omegaconf, math-verify and its parsers, submitit or deepspeed, and an older
transformers than the one pinned here. Versions come from the running interpreter's installed
packages (the pinned `.venv`), so the machine runs what the tests ran. Binary wheels are fetched
for CPython 3.12 on manylinux x86-64; deepspeed, published only as source, is built here into a
pure-Python wheel (its CUDA ops compile on first use there). `scripts/gpu_check.sh` installs
whatever `.whl/` holds before it starts (GPU_CHECK_WHEELS names another folder).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path

# Missing on the GPU machine (issue 16's facts and the device's package list), with what they need
# that it lacks too. The rest of their requirements (numpy, pyyaml, sympy, huggingface-hub >= 1.31,
# tokenizers 0.23, safetensors, regex, cloudpickle, einops, msgpack, ninja, psutil, py-cpuinfo) is there.
PACKAGES = (
    "transformers",                                   # 5.17 there; the shared-prefix cache keyword differs
    "omegaconf", "antlr4-python3-runtime",            # configs
    "math-verify", "latex2sympy2_extended",           # grading
    "submitit",                                       # the launcher
    "deepspeed", "hjson", "pydantic", "pydantic_core", "annotated-types", "typing-inspection",
)
SOURCE_ONLY = {"deepspeed"}  # no wheel on PyPI: built here without build isolation (uses this torch)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
LIMIT_MB = 48  # the device call carries 64 MiB in all, the working tree included


def pinned(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """name -> version installed in this interpreter; a clear error for one that is not installed."""
    versions, missing = {}, []
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            missing.append(name)
    if missing:
        sys.exit(f"gpu_wheels: {', '.join(missing)} not installed in {sys.executable}; run it with the project's "
                 "environment (bash scripts/ensure_env.sh; .venv/bin/python scripts/gpu_wheels.py)")
    return versions


def download_cmd(name: str, version: str, dest: Path, python: str = "3.12") -> list[str]:
    """pip's command for one wheel of the GPU machine's kind (CPython 3.12, manylinux x86-64)."""
    if name in SOURCE_ONLY:
        return [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dest),
                f"{name}=={version}"]
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", python,
            "--implementation", "cp", *platforms, "-d", str(dest), f"{name}=={version}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=Path(".whl"), help="the folder to fill (default .whl)")
    parser.add_argument("--python", default="3.12", help="the Python version there (default 3.12, the GPU "
                        "machine's; this machine's for a rehearsal here)")
    args = parser.parse_args(argv)
    versions = pinned()
    args.dest.mkdir(parents=True, exist_ok=True)
    for name, version in versions.items():
        print(f"gpu_wheels: {name}=={version}", flush=True)
        proc = subprocess.run(download_cmd(name, version, args.dest, args.python), capture_output=True, text=True,
                              env={**os.environ, "DS_BUILD_OPS": "0"})
        if proc.returncode != 0:
            sys.exit(f"gpu_wheels: pip could not get {name}=={version}:\n{proc.stderr[-2000:]}")
    wheels = sorted(args.dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"gpu_wheels: {len(wheels)} wheels, {total:.1f} MiB in {args.dest}")
    if total > LIMIT_MB:
        sys.exit(f"gpu_wheels: {total:.1f} MiB is over {LIMIT_MB} MiB, too much to carry; empty {args.dest} "
                 "of wheels from other runs and run again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
