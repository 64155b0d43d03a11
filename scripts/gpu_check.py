"""Every GPU check of the project in one run, on a fresh machine, with its outputs in one folder.

    bash scripts/gpu_check.sh results/gpu                          # on a GPU machine (under 10 minutes)
    GPU_CHECK_SCALE=tiny bash scripts/gpu_check.sh /tmp/check      # the CPU-sized version the tests run

Checks, in order, each under its own time limit, each writing `<name>.log` (its output) and an
entry in `summary.json` (status ok | failed | skipped, the reason, seconds, its numbers):
1. env: the device, memory, Python and package versions, which optional packages are importable.
2. tiny: the tiny preset end to end on the device: SFT, then a few RL iterations of every method
   from it, with their test accuracy and seconds per iteration. A method that fails is run again
   with rl.shared_prefix=false (the one decoding path never run on CUDA), and the rest still run.
3. throughput: `benchmarks/gpu_throughput.py` alone on the device, at RhoMath-1.1B size in bf16
   (PPO and VinePPO: generation, MC and training tokens/s, MFU); again with rl.shared_prefix=false
   if it fails.
4. vllm: the vllm engine on the device against the hf engine on VinePPO's MC workload, where vllm
   is installed (else skipped, and why).
5. deepspeed: one RL run of one process through DeepSpeed (bf16 on a GPU), started by torchrun as
   multi-GPU runs are (the launcher's process group: NCCL on a GPU), in micro-batches
   (rl.micro_batch_size) and with checkpoints inside its iterations (rl.save_every_steps), where
   deepspeed is installed (else skipped, and why).
A failed check does not stop the others; the exit status is 1 if any failed.

The output folder gets summary.json and at most six logs (a device tool that returns only a few
files takes them all when the run folders are elsewhere: GPU_CHECK_RUNS=/tmp/gpu_runs).
On a machine without a package index, first run `scripts/gpu_wheels.py` where PyPI is reachable and
bring its `.whl/` along: the wheels there (or in $GPU_CHECK_WHEELS) are installed into a folder of
their own, ahead of the machine's packages, before the checks. Run folders (checkpoints) go to
$GPU_CHECK_RUNS, else `<OUT_DIR>/_runs`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("sft", "restem", "dpo_plus", "ppo", "vineppo", "grpo", "rloo")

SCALES = {
    # What runs where: the GPU version fits in 10 minutes on one H100/H200; the CPU one in ~3 on 2 cores.
    "full": {"device": "cuda", "threads": 0, "sft": ["sft.max_steps=700", "sft.eval_every=0", "task.num_sft=22400"],
             "rl": ["rl.iterations=3", "rl.eval_every=3"], "throughput": [], "mc_episodes": 64,
             "deepspeed": ["rl.micro_batch_size=8", "rl.save_every_steps=8"],
             "limits": {"env": 120, "tiny": 240, "throughput": 240, "vllm": 120, "deepspeed": 90}},
    "tiny": {"device": "cpu", "threads": 1, "sft": ["sft.max_steps=40", "sft.eval_every=0", "task.num_sft=1280",
                                      "task.num_train=200", "task.num_test=16", "model.hidden_size=32",
                                      "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
                                      "model.vocab_size=300"],
             "rl": ["rl.iterations=1", "rl.eval_every=1", "rl.prompts_per_iter=2", "rl.samples_per_prompt=2",
                    "rl.minibatch_size=4", "rl.max_new_tokens=24", "eval.max_new_tokens=24", "rl.vine_k=2",
                    "rl.vine_max_steps=2", "task.num_train=200", "task.num_test=16"],
             "throughput": ["--scale", "tiny", "--iterations", "2", "--prompts", "2", "--samples", "2",
                            "--minibatch", "4", "--max-new-tokens", "16", "--k", "2", "--vine-max-steps", "2"],
             "mc_episodes": 2, "deepspeed": ["rl.micro_batch_size=2", "rl.save_every_steps=1"],
             "limits": {"env": 120, "tiny": 600, "throughput": 300, "vllm": 120, "deepspeed": 300}},
}


def run(cmd: list[str], log: Path, limit: int, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `cmd` from the repository root with `src/` importable; its output goes to `log`."""
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=full_env, stdout=f, stderr=subprocess.STDOUT, timeout=limit)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            f.write(f"\n[gpu_check] stopped after its limit of {limit} s\n")
            code = 124
    return code, log.read_text()


def last_json(text: str) -> dict:
    """The last line of `text` that is a JSON object (what the commands print last)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def install_wheels(wheels: Path, site: Path, log: Path) -> list[str]:
    """Install the wheels in `wheels` (scripts/gpu_wheels.py made them where PyPI is reachable) into
    `site`, ahead of the machine's own packages for this process and every command it starts."""
    files = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not files:
        return []
    code, text = run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                      "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, files)], log, 300)
    if code != 0:
        sys.exit(f"gpu_check: installing the wheels in {wheels} failed (exit {code}); see {log}:\n{text[-2000:]}")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    sys.path.insert(0, str(site))
    return [f.name for f in files]


PACKAGES = ("omegaconf", "math-verify", "datasets", "submitit", "deepspeed", "vllm", "trl")


def package_version(name: str) -> str | None:
    """The version this process (the wheels' site first) would import, or None where absent."""
    for dist in importlib.metadata.distributions(path=sys.path):
        if dist.metadata["Name"] and dist.metadata["Name"].lower().replace("_", "-") == name:
            return dist.version
    return None


def check_env(out: Path, scale: dict) -> dict:
    code = (
        "import json, platform, sys, torch, transformers\n"
        "info = {'python': sys.version.split()[0], 'platform': platform.platform(), 'torch': torch.__version__,\n"
        "        'cuda_available': torch.cuda.is_available(), 'transformers': transformers.__version__}\n"
        "if torch.cuda.is_available():\n"
        "    p = torch.cuda.get_device_properties(0)\n"
        "    info.update(device=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,\n"
        "                bf16=torch.cuda.is_bf16_supported(), gpus=torch.cuda.device_count())\n"
        "print(json.dumps(info))\n")
    status, text = run([sys.executable, "-c", code], out / "env.log", scale["limits"]["env"])
    info = last_json(text)
    info["packages"] = {name: package_version(name) for name in PACKAGES}
    if status != 0:
        return {"status": "failed", "reason": f"exit {status}", **info}
    if scale["device"] == "cuda" and not info.get("cuda_available"):
        return {"status": "failed", "reason": "no CUDA device visible to torch", **info}
    return {"status": "ok", **info}


# The one code path that has never run on CUDA: decoding many responses over one cached prompt
# (shared_prefix.py). A method that fails is run again without it, so that one call on a lent
# machine still yields every number and says whether that path is what broke. One stopped at its
# time limit (exit 124) is not: it is slow, not broken, and a second try would eat the call's time.
FALLBACK = "rl.shared_prefix=false"
TIMED_OUT = 124


def check_tiny(out: Path, scale: dict, work: Path) -> dict:
    """SFT on the device, then every RL method for a few iterations from that SFT model; a method
    that fails is retried once with FALLBACK and the others run regardless."""
    dev = f"device={scale['device']}"
    common = [dev, f"output_dir={work}", f"num_threads={scale['threads']}"]
    log = out / "tiny.log"
    t0 = time.time()
    code, _ = run([sys.executable, "-m", "vineppo.cli", "sft", *common, "run_name=sft", *scale["sft"]], log,
                  scale["limits"]["tiny"])
    if code != 0:
        return {"status": "failed", "reason": f"SFT exit {code}", "seconds": round(time.time() - t0, 1)}
    results = {"sft": json.loads((work / "sft" / "summary.json").read_text())["test_greedy_accuracy"]}
    per_iter, failures, fallback = {}, [], []
    for algo in METHODS[1:]:
        for extra in ([], [FALLBACK]):
            left = scale["limits"]["tiny"] - (time.time() - t0)
            if left < 5:
                code = "out of time"
                break
            name = algo if not extra else f"{algo}_no_shared_prefix"
            code, _ = run([sys.executable, "-m", "vineppo.cli", "rl", *common, f"rl.algo={algo}", f"run_name={name}",
                           f"rl.init={work / 'sft' / 'final'}", *scale["rl"], *extra], log, int(left))
            if code == 0:
                summary = json.loads((work / name / "summary.json").read_text())
                results[algo], per_iter[algo] = summary["test_greedy_accuracy"], summary["seconds_per_iteration"]
                fallback += [algo] if extra else []
            if code in (0, TIMED_OUT):
                break
        if code != 0:
            failures.append(f"{algo} {'exit ' + str(code) if isinstance(code, int) else code}")
    result = {"accuracy": results, "seconds_per_iteration": per_iter, "seconds": round(time.time() - t0, 1)}
    if fallback:
        result["passed_only_with"] = {FALLBACK: fallback}
    reasons = failures + ([f"{', '.join(fallback)} passed only with {FALLBACK}"] if fallback else [])
    return {"status": "failed", "reason": "; ".join(reasons), **result} if reasons else {"status": "ok", **result}


def check_throughput(out: Path, scale: dict) -> dict:
    """benchmarks/gpu_throughput.py; run again with FALLBACK when it fails (see check_tiny)."""
    cmd = [sys.executable, "benchmarks/gpu_throughput.py", *scale["throughput"]]
    code, text = run(cmd, out / "throughput.log", scale["limits"]["throughput"])
    result = last_json(text)
    if code == 0 and "results" in result:
        return {"status": "ok", **result}
    first = f"exit {code}"
    if code == TIMED_OUT:
        return {"status": "failed", "reason": f"{first}: stopped at its time limit"}
    code, text = run([*cmd, "--set", FALLBACK], out / "throughput.log", scale["limits"]["throughput"])
    result = last_json(text)
    if code != 0 or "results" not in result:
        return {"status": "failed", "reason": f"{first}; with {FALLBACK}: exit {code}"}
    return {"status": "failed", "reason": f"{first}; passed only with {FALLBACK}", "passed_only_with": FALLBACK,
            **result}


def check_vllm(out: Path, scale: dict, work: Path) -> dict:
    if importlib.util.find_spec("vllm") is None:
        return {"status": "skipped", "reason": "vllm is not installed here (pip install the `vllm` extra where "
                                               "the machine can reach a package index)"}
    init = work / "sft" / "final"
    if not init.exists():
        return {"status": "skipped", "reason": "no SFT model: the tiny check did not get that far"}
    code, text = run([sys.executable, "benchmarks/rollout_throughput.py", "--init", str(init), "--repeats", "1",
                      "--episodes", str(scale["mc_episodes"]), "--device", scale["device"]], out / "vllm.log",
                     scale["limits"]["vllm"])
    result = last_json(text)
    if code != 0 or result.get("vllm_speedup_vs_naive") is None:
        return {"status": "failed", "reason": f"exit {code}", **result}
    return {"status": "ok", **result}


def check_deepspeed(out: Path, scale: dict, work: Path) -> dict:
    if importlib.util.find_spec("deepspeed") is None:
        return {"status": "skipped", "reason": "deepspeed is not installed here"}
    init = work / "sft" / "final"
    if not init.exists():
        return {"status": "skipped", "reason": "no SFT model: the tiny check did not get that far"}
    bf16 = "true" if scale["device"] == "cuda" else "false"
    env = {"DS_ACCELERATOR": "cpu"} if scale["device"] == "cpu" else None
    t0 = time.time()
    with socket.socket() as sock:  # a free port for the launcher's store
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_addr=127.0.0.1",
                f"--master_port={port}"]
    code, _ = run([*launcher, "-m", "vineppo.cli", "rl", f"device={scale['device']}", f"output_dir={work}",
                   f"num_threads={scale['threads']}",
                   "run_name=deepspeed", "rl.algo=ppo", f"rl.init={init}", "deepspeed.enabled=true",
                   f"deepspeed.bf16={bf16}", *scale["rl"], *scale["deepspeed"]], out / "deepspeed.log",
                  scale["limits"]["deepspeed"], env)
    if code != 0:
        return {"status": "failed", "reason": f"exit {code}"}
    summary = json.loads((work / "deepspeed" / "summary.json").read_text())
    return {"status": "ok", "bf16": bf16 == "true", "test_accuracy": summary["test_greedy_accuracy"],
            "seconds_per_iteration": summary["seconds_per_iteration"], "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "gpu_check").resolve()
    scale_name = os.environ.get("GPU_CHECK_SCALE", "full")
    if scale_name not in SCALES:
        sys.exit(f"GPU_CHECK_SCALE must be one of {', '.join(SCALES)}, got '{scale_name}'")
    scale = SCALES[scale_name]
    out.mkdir(parents=True, exist_ok=True)
    # Run folders (checkpoints) are not results: beside the outputs unless GPU_CHECK_RUNS puts them elsewhere.
    work = Path(os.environ.get("GPU_CHECK_RUNS") or out / "_runs").resolve()
    wheels = install_wheels(Path(os.environ.get("GPU_CHECK_WHEELS") or ROOT / ".whl").resolve(),
                            work.parent / f"{work.name}_site", out / "wheels.log")
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or None
    summary: dict = {"scale": scale_name, "commit": commit, "host": platform.node(), "wheels": wheels, "checks": {}}
    t_start = time.time()
    steps = [("env", lambda: check_env(out, scale)), ("tiny", lambda: check_tiny(out, scale, work)),
             ("throughput", lambda: check_throughput(out, scale)), ("vllm", lambda: check_vllm(out, scale, work)),
             ("deepspeed", lambda: check_deepspeed(out, scale, work))]
    for name, fn in steps:
        t0 = time.time()
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - one broken check must not hide the others' results
            result = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
        result.setdefault("seconds", round(time.time() - t0, 1))
        summary["checks"][name] = result
        summary["seconds"] = round(time.time() - t_start, 1)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")  # after every check
        print(f"[gpu_check] {name}: {result['status']}" + (f" ({result['reason']})" if "reason" in result else ""),
              flush=True)
    failed = [n for n, r in summary["checks"].items() if r["status"] == "failed"]
    print(json.dumps({"ok": not failed, "failed": failed, "seconds": summary["seconds"], "out": str(out)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
