"""Sweeps -> jobs -> submitit (local or Slurm), resuming whatever is unfinished.

A sweep (`experiments/sweeps/<name>.yaml`) has two stages. Stage 1 gives each task its SFT start
point: the tiny preset trains it here, the paper preset evaluates the released SFT checkpoint.
Stage 2 runs the RL grid (e.g. `rl.algo`) x tasks x seeds from that start point. A job is
complete when its run folder holds `summary.json` (for RL, of as many iterations as asked); complete
jobs are never submitted again, and unfinished ones resume from their last checkpoint (the training
loops save one per iteration), so a rerun with a larger rl.iterations trains each RL run longer.
"""

from __future__ import annotations

import difflib
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vineppo.config import CHOICES, ConfigError, load_config, make_config, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
SWEEPS_DIR = ROOT / "experiments" / "sweeps"
PROFILES_DIR = ROOT / "slurm"
POLL_S = 2.0
"""Seconds between checks on running jobs."""
LAUNCH_KEYS = ("sweep", "preset", "cluster", "seeds", "profile", "max_parallel", "processes", "base")
CLUSTERS = ("local", "slurm", "debug")
SLURM_KEYS = {  # profile key -> submitit AutoExecutor parameter
    "partition": "slurm_partition", "gpus": "gpus_per_node", "cpus": "cpus_per_task", "mem_gb": "mem_gb",
    "time_min": "timeout_min", "account": "slurm_account", "qos": "slurm_qos", "nodes": "nodes",
    "array_parallelism": "slurm_array_parallelism", "constraint": "slurm_constraint", "tasks": "tasks_per_node",
}


@dataclass
class Job:
    name: str
    """Run folder name under the sweep's output_dir."""
    command: str
    """sft | rl | eval."""
    overrides: dict[str, Any]
    """Config overrides, fully resolved (preset, task, seed, output_dir, run_name, init)."""
    stage: int
    after: str | None = None
    """The stage-1 job this one starts from."""
    marker: Path = field(default=Path())
    """Exists once the job has finished."""
    base: str | None = None
    """The base model's key in the sweep's `bases` (the paper table has two), or None."""
    profile: str | None = None
    """The Slurm profile this job's base model runs on (the command line's `profile=` wins)."""

    def is_complete(self) -> bool:
        """Finished, and an RL run to as many iterations as asked (more continue it from its last
        checkpoint: a sweep rerun with a larger rl.iterations trains its runs longer)."""
        if not self.marker.exists():
            return False
        if self.command != "rl":
            return True
        asked = make_config(self.overrides).rl.iterations
        return json.loads(self.marker.read_text()).get("iterations", asked) >= asked


def began_with_deepspeed(job: Job) -> bool | None:
    """Whether an RL job's run folder recorded DeepSpeed on (None: no run folder yet). A run begun
    on several processes resumes on one through DeepSpeed; one begun without it, on one process."""
    recorded = job.marker.parent / "config.yaml"
    return load_config(recorded).deepspeed.enabled if recorded.exists() else None


class JobRunner:
    """The callable submitit pickles. On preemption or timeout submitit calls `checkpoint`, which
    requeues the same call; the run then resumes from its last checkpoint."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self) -> dict[str, Any]:
        join_allocation()
        cfg = make_config(self.job.overrides)
        if self.job.command == "sft":
            from vineppo.sft import train_sft

            return train_sft(cfg, progress=False)
        if self.job.command == "rl":
            from vineppo.loop import train_rl

            return train_rl(cfg)
        from vineppo.cli import cmd_eval

        result = cmd_eval(self.job.overrides)  # the values as they are, not printed and parsed again
        summary = {k: v for k, v in result.items() if k != "problems"}
        summary["test_greedy_accuracy"] = result["greedy_accuracy"]
        from vineppo.runio import atomic_write_json

        atomic_write_json(self.job.marker, summary)
        return summary

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(JobRunner(self.job))


def join_allocation() -> None:
    """In a job of several tasks (one per GPU), export what torch.distributed needs (RANK,
    WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); the training loop then joins the group."""
    import submitit

    try:
        env = submitit.JobEnvironment()
        several = env.num_tasks > 1
    except Exception:  # noqa: BLE001 - not inside a submitit job (e.g. the debug executor)
        return
    if several:
        # Each task sees only its own GPU (as cuda:0), so an in-process vLLM engine lands on it too.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=True, overwrite=True)


# What a sweep file may hold, per section ("" = the top level); anything else is a typo.
SWEEP_KEYS = {"": {"description", "seeds", "tasks", "bases", "sft", "rl", "overrides", "max_parallel", "table"},
              "rl": {"grid", "overrides"}, "sft": {"init", "overrides", "train"}}


def available_sweeps() -> list[str]:
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))


def yaml_file(value: str, folder: Path, key: str) -> Path:
    """A sweep or Slurm profile: by name, `folder/<name>.yaml`; or your own file outside the
    repository, as a path (a value with a '/' or ending in .yaml or .yml)."""
    if "/" in value or value.endswith((".yaml", ".yml")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigError(f"{key}={value}: no such file")
        return path
    return folder / f"{value}.yaml"


def load_sweep(name: str) -> dict[str, Any]:
    """The sweep `name` (experiments/sweeps/<name>.yaml) or the sweep file at path `name`, checked."""
    path = yaml_file(name, SWEEPS_DIR, "sweep")
    if not path.exists():
        raise ConfigError(f"unknown sweep '{name}'; available: {', '.join(available_sweeps())}, "
                          "or a sweep file of your own as sweep=path/to/file.yaml")
    data = OmegaConf.to_container(OmegaConf.load(path))
    if not isinstance(data, dict) or "tasks" not in data or "rl" not in data:
        raise ConfigError(f"{path}: a sweep needs 'tasks' and 'rl' sections")
    for section, allowed in SWEEP_KEYS.items():
        keys = data if section == "" else (data.get(section) or {})
        unknown = sorted(set(keys) - allowed) if isinstance(keys, dict) else []
        if unknown:
            where = f"section '{section}'" if section else "top level"
            raise ConfigError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))} at the {where}; "
                              f"valid: {', '.join(sorted(allowed))}")
    grid = data["rl"].get("grid")
    if grid is not None and not (isinstance(grid, dict) or (isinstance(grid, list) and grid
                                                             and all(isinstance(g, dict) for g in grid))):
        raise ConfigError(f"{path}: rl.grid must be a mapping of key -> values, or a list of such mappings")
    return data


def _per_preset(section: dict[str, Any] | None, preset: str) -> dict[str, Any]:
    return dict((section or {}).get(preset) or {})


def sweep_bases(sweep: dict[str, Any], name: str, preset: str, only: str | None) -> dict[str, dict[str, Any]]:
    """The base models the sweep runs on this preset: {key: {name, profile, sft: {task: checkpoint},
    overrides: {key: value} for all its jobs, per_algo: {algo: {key: value}} for its RL jobs}};
    one unnamed base (key "") where the sweep lists none (the tiny preset trains its own SFT model).
    `only` picks one base by key."""
    bases = _per_preset(sweep.get("bases"), preset)
    if not bases:
        if only is not None:
            raise ConfigError(f"sweep '{name}' has no base models for preset '{preset}'; drop base={only}")
        return {"": {"sft": _per_preset((sweep.get("sft") or {}).get("init"), preset)}}
    if only is not None:
        if only not in bases:
            raise ConfigError(f"sweep '{name}', preset '{preset}': unknown base '{only}'; available: "
                              f"{', '.join(bases)}")
        bases = {only: bases[only]}
    return bases


def expand(sweep: dict[str, Any], name: str, preset: str, seeds: int, user: dict[str, Any],
           base: str | None = None) -> list[Job]:
    """Every job of the sweep, in order: stage-1 jobs first. `user` overrides apply to every job.
    With several base models (the paper table), each base gets its own SFT start points and RL
    jobs, named `<base>-...`; `base` picks one of them."""
    tasks = sweep["tasks"].get(preset)
    if not tasks:
        raise ConfigError(f"sweep '{name}' has no tasks for preset '{preset}'")
    out_dir = Path(user.get("output_dir", f"runs/{name}" if preset == "tiny" else f"runs/{name}-{preset}"))
    common = {"preset": preset, **_per_preset(sweep.get("overrides"), preset), **user, "output_dir": str(out_dir)}
    jobs: list[Job] = []
    sft = sweep.get("sft") or {}
    train = sft.get("train", False)  # true, or per preset: {paper: true}
    train_sft = bool(train.get(preset, False) if isinstance(train, dict) else train)
    rl = sweep["rl"]
    # One grid (key -> values; every combination is a job), or a list of grids whose jobs add up.
    grids = rl.get("grid") or {"rl.algo": ["vineppo"]}
    points = [dict(zip(g, values, strict=True)) for g in (grids if isinstance(grids, list) else [grids])
              for values in itertools.product(*g.values())]
    for key, spec in sweep_bases(sweep, name, preset, base).items():
        prefix = f"{key}-" if key else ""
        extra = dict(spec.get("overrides") or {})  # the base model's own settings,
        per_algo = {a: dict(v or {}) for a, v in (spec.get("per_algo") or {}).items()}  # and per method
        for algo in set(per_algo) - set(CHOICES["rl.algo"]):
            raise ConfigError(f"sweep '{name}', base '{key}': per_algo names '{algo}', which is no method; "
                              f"methods: {', '.join(CHOICES['rl.algo'])}")
        profile, first = spec.get("profile"), len(jobs)
        for task in tasks:
            b = {**common, "task.name": task, **_per_preset(sft.get("overrides"), preset), **extra}
            jname = f"{prefix}sft-{task}"
            # The SFT start: a given checkpoint (the paper's released ones), whose SFT row is its
            # evaluation; else SFT trained here from model.name_or_path (the tiny preset's own
            # model, or with sft.train your base model on your data).
            init = (spec.get("sft") or {}).get(task)
            if init is not None:
                jobs.append(Job(jname, "eval", {**b, "model.name_or_path": init, "run_name": jname}, 1,
                                marker=out_dir / jname / "summary.json", base=key or None, profile=profile))
            elif preset != "paper" or train_sft:
                jobs.append(Job(jname, "sft", {**b, "seed": 0, "run_name": jname}, 1,
                                marker=out_dir / jname / "summary.json", base=key or None, profile=profile))
            else:
                raise ConfigError(f"sweep '{name}': the SFT checkpoint of base '{key or preset}' on task '{task}' "
                                  f"is missing (sft.init; or sft.train: {{{preset}: true}} to train SFT first, "
                                  "from model.name_or_path)")
        for task in tasks:
            sft_job = next(j for j in jobs[first:] if j.name == f"{prefix}sft-{task}")
            init = sft_job.overrides["model.name_or_path"] if sft_job.command == "eval" else \
                str(out_dir / sft_job.name / "final")
            for point in points:
                tag = "_".join([str(point.get("rl.algo", "vineppo"))] +
                               [f"{k.split('.')[-1]}{v}" for k, v in point.items() if k != "rl.algo" and v is not None])
                for seed in range(seeds):
                    jname = f"{prefix}{tag}-{task}-s{seed}"
                    ov = {**common, "task.name": task, **_per_preset(rl.get("overrides"), preset), **extra,
                          **per_algo.get(point.get("rl.algo", "vineppo"), {}), **point,
                          "seed": seed, "rl.init": init, "run_name": jname}
                    ov.update(user)  # the command line wins over the sweep's settings,
                    ov.update(point)  # but not over the grid point that defines the job
                    jobs.append(Job(jname, "rl", ov, 2, after=sft_job.name, marker=out_dir / jname / "summary.json",
                                    base=key or None, profile=profile))
    jobs.sort(key=lambda j: j.stage)  # stable: stage-1 jobs first, each base's in order
    for j in jobs:  # validate every job's config now, not on the cluster an hour later
        make_config(j.overrides)
    return jobs


def load_profile(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The Slurm profile `name` (slurm/<name>.yaml) or the profile file at path `name`, with the
    command line's slurm.* overrides."""
    path = yaml_file(name, PROFILES_DIR, "profile")
    if not path.exists():
        names = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown Slurm profile '{name}'; available: {', '.join(names)}, "
                          "or a profile file of your own as profile=path/to/file.yaml")
    prof = OmegaConf.to_container(OmegaConf.load(path)) or {}
    assert isinstance(prof, dict)
    prof.update(overrides)
    for key in prof:
        if key not in SLURM_KEYS:
            close = difflib.get_close_matches(key, list(SLURM_KEYS), n=1, cutoff=0.0)
            raise ConfigError(f"unknown Slurm profile key '{key}' in {path} or slurm.* overrides; "
                              f"did you mean '{close[0]}'?")
    return {SLURM_KEYS[k]: v for k, v in prof.items() if v is not None}


def make_executor(cluster: str, folder: Path, profile: dict[str, Any] | None, processes: int = 1):
    """`processes` > 1: each job runs that many tasks (one per GPU; Slurm's --ntasks-per-node)."""
    import submitit

    if cluster == "slurm":
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        ex.update_parameters(**{**(profile or {}), "tasks_per_node": processes})
        return ex
    if cluster == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=24 * 60, tasks_per_node=processes)
        return ex
    if processes > 1:
        raise ConfigError("cluster=debug runs one process; use cluster=local or cluster=slurm with processes > 1")
    return submitit.DebugExecutor(folder=folder)


def poll(running: list[tuple[Job, Any]], errors: dict[str, str], finished: set[str], log=print) -> None:
    """Move every done job out of `running`, into `finished` or (with its error) `errors`."""
    for j, h in list(running):
        if h.done():
            running.remove((j, h))
            try:
                h.results()  # one result per task; a failed task raises
                finished.add(j.name)
                log(f"finished {j.name}")
            except Exception as e:  # noqa: BLE001 - report every failure, keep the others going
                errors[j.name] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
                log(f"FAILED {j.name}: {errors[j.name]} (logs: {getattr(h, 'paths', None) and h.paths.stderr})")


def run_slurm_stage(jobs: list[Job], executor, log=print) -> dict[str, str]:
    """Submit the stage's jobs as one Slurm job array and wait for them. Returns {job name: error}."""
    errors: dict[str, str] = {}
    if not jobs:
        return errors
    with executor.batch():
        handles = [executor.submit(JobRunner(j)) for j in jobs]
    running = list(zip(jobs, handles, strict=True))
    for j, h in running:
        log(f"submitted {j.name} as Slurm job {h.job_id}")
    while running:
        poll(running, errors, set(), log)
        if running:
            time.sleep(POLL_S)
    return errors


COST_RANK = {"vineppo": 0, "ppo": 1, "grpo": 2, "rloo": 2}
"""Local runs start the longest jobs first (VinePPO, PPO, GRPO and RLOO, then RestEM and DPO+), so
that two workers do not end with one long job running alone."""


def run_local(jobs: list[Job], executor, max_parallel: int, log=print) -> dict[str, str]:
    """Run `jobs` here, at most `max_parallel` at a time. A job starts as soon as the job it starts
    from (`after`) has finished, not when its whole stage has; among ready jobs, SFT first, then the
    longest. A job whose start point failed is skipped. `executor` is one executor or one per
    stage (RL jobs may run several processes each). Returns {job name: error}."""
    errors: dict[str, str] = {}
    names = {j.name for j in jobs}
    pending = sorted(jobs, key=lambda j: (j.stage, COST_RANK.get(j.overrides.get("rl.algo"), 9)))
    running: list[tuple[Job, Any]] = []
    finished: set[str] = set()
    while pending or running:
        for j in [j for j in pending if j.after in errors]:
            pending.remove(j)
            errors[j.name] = "skipped: its SFT job failed"
            log(f"skipped {j.name}: {j.after} failed")
        ready = [j for j in pending if j.after is None or j.after not in names or j.after in finished]
        while ready and len(running) < max_parallel:
            j = ready.pop(0)
            pending.remove(j)
            h = (executor[j.stage] if isinstance(executor, dict) else executor).submit(JobRunner(j))
            log(f"started {j.name} (local job {h.job_id})")
            running.append((j, h))
        poll(running, errors, finished, log)
        if running:
            time.sleep(POLL_S)
    return errors


def describe(job: Job) -> str:
    keys = ", ".join(f"{k}={v}" for k, v in job.overrides.items())
    state = "done" if job.is_complete() else "todo"
    return f"[stage {job.stage}] [{state}] {job.command} {job.name} -> {job.marker.parent}\n    {keys}"


def parse_launch_args(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bool]:
    dry_run = "--dry-run" in argv
    args = parse_overrides([a for a in argv if a != "--dry-run"])
    launch = {"sweep": None, "preset": "tiny", "cluster": "local", "seeds": None, "profile": None,
              "max_parallel": None, "processes": None, "base": None}
    slurm = {}
    user = {}
    for k, v in args.items():
        if k in LAUNCH_KEYS:
            launch[k] = v
        elif k.startswith("slurm."):
            slurm[k.removeprefix("slurm.")] = v
        else:
            user[k] = v
    if launch["sweep"] is None:
        raise ConfigError(f"give a sweep: sweep=NAME; available: {', '.join(available_sweeps())}")
    if launch["cluster"] not in CLUSTERS:
        raise ConfigError(f"cluster must be one of {', '.join(CLUSTERS)}, got '{launch['cluster']}'")
    make_config({k: v for k, v in user.items()})  # unknown keys -> error naming the closest key
    return launch, slurm, user, dry_run


def launch(argv: list[str], log=print) -> dict[str, Any]:
    """Run (or with --dry-run, list) a sweep. Returns {"jobs", "submitted", "errors", "table", "max_parallel"}."""
    opts, slurm, user, dry_run = parse_launch_args(argv)
    sweep = load_sweep(str(opts["sweep"]))
    sweep_seeds = sweep.get("seeds", 3)  # a number, or one per preset
    if isinstance(sweep_seeds, dict):
        sweep_seeds = sweep_seeds.get(opts["preset"], 3)
    seeds = int(opts["seeds"] if opts["seeds"] is not None else sweep_seeds)
    # Local concurrency: the command line's, else the sweep's for this preset, else one job at a time.
    max_parallel = int(opts["max_parallel"] or (sweep.get("max_parallel") or {}).get(opts["preset"]) or 1)
    jobs = expand(sweep, Path(str(opts["sweep"])).stem, str(opts["preset"]), seeds, user,  # runs/<its name>
                  base=None if opts["base"] is None else str(opts["base"]))
    on_slurm = opts["cluster"] == "slurm"
    # Each job's Slurm profile: the command line's, else its base model's, else `default`.
    profiles: dict[str, dict[str, Any]] = {}
    for j in jobs:
        j.profile = str(opts["profile"] or j.profile or "default")
        if on_slurm and j.profile not in profiles:
            profiles[j.profile] = load_profile(j.profile, slurm)
    # Processes per RL job: the command line's, else its Slurm profile's tasks, else one. Several
    # processes train through DeepSpeed; SFT and evaluation jobs use one.
    processes: dict[str, int] = {}
    for j in jobs:
        n = int(opts["processes"] or (profiles[j.profile].get("tasks_per_node") if on_slurm else None) or 1)
        processes[j.name] = n if j.command == "rl" else 1
        began = began_with_deepspeed(j) if j.command == "rl" and not j.is_complete() else None
        if processes[j.name] > 1:
            if j.overrides.get("deepspeed.enabled") is False:
                raise ConfigError(f"processes={n} needs deepspeed.enabled=true, not false")
            if began is False:
                raise ConfigError(f"{j.marker.parent} began on one process without DeepSpeed and its checkpoints "
                                  f"are plain torch ones: it continues on one process only (processes=1), or give "
                                  "a new output_dir for a run on several")
            j.overrides["deepspeed.enabled"] = True
        elif began and "deepspeed.enabled" not in j.overrides:
            j.overrides["deepspeed.enabled"] = True  # its checkpoints are DeepSpeed's: it goes on through it
    todo = [j for j in jobs if not j.is_complete()]
    out_dir = Path(jobs[0].overrides["output_dir"])
    if dry_run:
        for j in jobs:
            where = f"\n    Slurm profile {j.profile}" if on_slurm else ""
            log(describe(j) + where + (f"\n    {processes[j.name]} processes" if processes[j.name] > 1 else ""))
        bases = sorted({j.base for j in jobs if j.base})
        log(f"{len(jobs)} jobs, {len(todo)} to run; outputs under {out_dir}"
            + (f"; base models: {', '.join(bases)}" if bases else ""))
        return {"jobs": jobs, "submitted": [], "errors": {}, "table": None, "max_parallel": max_parallel,
                "processes": processes}
    errors: dict[str, str] = {}
    submitted: list[str] = []
    if on_slurm:  # a job array per stage and resource shape; stage 2 is submitted once stage 1 is done
        for stage in (1, 2):
            for j in todo:
                if j.stage == stage and j.after in errors:
                    errors[j.name] = "skipped: its SFT job failed"
            stage_jobs = [j for j in todo if j.stage == stage and j.name not in errors]
            shapes = dict.fromkeys((j.profile, processes[j.name]) for j in stage_jobs)
            for prof, n in shapes:
                group = [j for j in stage_jobs if (j.profile, processes[j.name]) == (prof, n)]
                executor = make_executor("slurm", out_dir / "_submitit", dict(profiles[prof]), n)
                submitted += [j.name for j in group]
                errors.update(run_slurm_stage(group, executor, log))
    else:
        n = int(opts["processes"] or 1)
        executors = {stage: make_executor(str(opts["cluster"]), out_dir / "_submitit", None,
                                          n if stage == 2 else 1) for stage in (1, 2)}
        errors.update(run_local(todo, executors, max_parallel, log))
        submitted = [j.name for j in todo if not errors.get(j.name, "").startswith("skipped")]
    table = None
    if sweep.get("table"):
        path = sweep["table"].get(opts["preset"]) if isinstance(sweep["table"], dict) else sweep["table"]
        table = write_table(jobs, Path(path), log) if path else None
    log(f"{len(jobs)} jobs: {len(jobs) - len(todo)} already complete, {len(submitted)} run, {len(errors)} failed")
    for name, err in errors.items():
        log(f"  {name}: {err}")
    return {"jobs": jobs, "submitted": submitted, "errors": errors, "table": table, "max_parallel": max_parallel}


def write_table(jobs: list[Job], out: Path, log=print) -> Path:
    """`<out>.md` and `<out>.csv`: SFT start point and every RL method, mean ± std over seeds."""
    import pandas as pd

    from vineppo.runio import atomic_write_text, git_commit, read_jsonl

    rows = []
    for j in jobs:
        if not j.is_complete():
            continue
        s = json.loads(j.marker.read_text())
        row = {"run": j.name, "base": j.base or "", "task": j.overrides["task.name"], "seed": j.overrides.get("seed", 0),
               "test_accuracy": s["test_greedy_accuracy"], "greedy_accuracy": s["test_greedy_accuracy"],
               "sampled_accuracy": s.get("test_sampled_accuracy", s.get("sampled_accuracy")),
               "commit": s.get("commit")}
        if j.command == "rl":
            records = read_jsonl(j.marker.parent / "metrics.jsonl")
            row.update(method=s["algo"], grad_steps=s["grad_steps"], s_per_iteration=s["seconds_per_iteration"],
                       generation_s=sum(r["time/generation_s"] for r in records) / max(len(records), 1),
                       value_estimation_s=sum(r["time/value_estimation_s"] for r in records) / max(len(records), 1))
        else:
            row.update(method="sft")
        rows.append(row)
    df = pd.DataFrame(rows)
    sampled = bool(rows) and df["sampled_accuracy"].notna().all()
    if sampled:  # every run sampled its test problems (the paper preset): the authors' measure
        df["test_accuracy"] = df["sampled_accuracy"]
    if rows:  # a row per method, or per base model and method where the table has several bases
        df["label"] = [f"{b} {m}" if b else m for b, m in zip(df["base"], df["method"], strict=True)]
    missing = [j.name for j in jobs if not j.is_complete()]
    lines: list[str] = []
    if rows:
        tasks = list(dict.fromkeys(df["task"]))
        lines = ["| method | " + " | ".join(f"{t} test acc." for t in tasks) + " | seeds | grad steps | s / iteration |",
                 "|---|" + "---|" * (len(tasks) + 3)]
        for method, g in df.groupby("label", sort=False):
            cells = []
            for t in tasks:
                acc = g[g["task"] == t]["test_accuracy"]
                std = acc.std(ddof=1) if len(acc) > 1 else 0.0
                cells.append(f"{acc.mean():.3f} ± {std:.3f}" if len(acc) else "-")
            steps = f"{int(g['grad_steps'].mean())}" if "grad_steps" in g and g["grad_steps"].notna().any() else "-"
            secs = f"{g['s_per_iteration'].mean():.1f}" if "s_per_iteration" in g and g["s_per_iteration"].notna().any() else "-"
            seeds = g.groupby("task")["seed"].nunique().max()
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {seeds} | {steps} | {secs} |")
        lines += gain_lines(df, tasks)
    if rows:
        lines += ["", "Test accuracy: " + ("the mean over each problem's samples (pass@1; eval.num_samples / "
                                           "rl.eval_samples at eval.temperature), as the authors report it."
                                           if sampled else "greedy.")]
    lines += ["", f"Written by experiments/launch.py at commit `{git_commit()}` from {len(rows)} finished runs."]
    if missing:
        lines.append("Missing or unfinished: " + ", ".join(missing))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".csv"), df.to_csv(index=False) if rows else "")
    if rows:
        atomic_write_text(out.with_suffix(".tex"), latex_table(df))
    log("\n".join(lines))
    log(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.csv')}")
    return out.with_suffix(".md")


def gain_lines(df, tasks: list[str]) -> list[str]:
    """Each RL method's gain over its SFT start per task: mean ± standard error over seeds, the
    worst seed, and how many seeds end above SFT (RL gains count only if every seed shows them)."""
    if "base" not in df:
        df = df.assign(base="")
    if "label" not in df:
        df = df.assign(label=df["method"])
    sft = {(b, t): df[(df["method"] == "sft") & (df["task"] == t) & (df["base"] == b)]["test_accuracy"]
           for b in df["base"].unique() for t in tasks}
    if not any(len(a) for a in sft.values()):
        return []
    lines = ["", "Gain over SFT (test accuracy, points): mean ± standard error over seeds; worst seed; seeds above SFT.",
             "", "| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for method, g in df[df["method"] != "sft"].groupby("label", sort=False):
        cells = []
        base = g["base"].iloc[0]  # a label is one base model's method: its own SFT start
        for t in tasks:
            acc = g[g["task"] == t]["test_accuracy"]
            if not len(acc) or not len(sft[base, t]):
                cells.append("-")
                continue
            gain = 100 * (acc - sft[base, t].mean())
            se = gain.std(ddof=1) / len(gain) ** 0.5 if len(gain) > 1 else 0.0
            cells.append(f"{gain.mean():+.1f} ± {se:.1f}; worst {gain.min():+.1f}; {int((gain > 0).sum())}/{len(gain)}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


METHOD_NAMES = {"sft": "SFT", "restem": "RestEM", "dpo_plus": "DPO$^+$", "ppo": "PPO", "vineppo": "VinePPO",
                "grpo": "GRPO", "rloo": "RLOO"}


def latex_table(df) -> str:
    """The main table as a LaTeX tabular: one row per method, one column per task, mean $\\pm$ std."""
    tasks = list(dict.fromkeys(df["task"]))
    lines = ["\\begin{tabular}{l" + "c" * len(tasks) + "}", "\\toprule",
             "Method & " + " & ".join(t.replace("_", "\\_") for t in tasks) + " \\\\", "\\midrule"]
    df = df if "label" in df else df.assign(label=df["method"], base="")
    for _label, g in df.groupby("label", sort=False):
        method, base = g["method"].iloc[0], g["base"].iloc[0]
        cells = []
        for t in tasks:
            acc = 100 * g[g["task"] == t]["test_accuracy"]
            std = acc.std(ddof=1) if len(acc) > 1 else 0.0
            cells.append(f"{acc.mean():.1f} $\\pm$ {std:.1f}" if len(acc) else "--")
        name = METHOD_NAMES.get(method, method)
        lines.append(f"{base + ' ' if base else ''}{name} & " + " & ".join(cells) + " \\\\")
    return "\n".join(lines + ["\\bottomrule", "\\end{tabular}"]) + "\n"


USAGE = """usage: python experiments/launch.py sweep=NAME [preset=tiny|paper] [cluster=local|slurm]
       [seeds=N] [base=NAME] [profile=NAME] [processes=N] [max_parallel=N] [slurm.KEY=VALUE ...]
       [key=value ...] [--dry-run]

  sweep, profile   a name below, or the path of a YAML file of your own (sweep=~/my_sweep.yaml)
  --dry-run        list every job (stage, done/todo, config overrides, run folder); runs nothing
  preset           tiny (default: generated tasks, models trained here) or paper (the authors' SFT
                   checkpoints on GSM8K and MATH)
  cluster          local (default: submitit on this machine), slurm (profile from slurm/NAME.yaml),
                   debug (in this process)
  key=value        any config key (`vineppo keys` lists them), e.g. rl.iterations=10

Finished runs are skipped and unfinished ones resume from their last checkpoint."""


def usage() -> str:
    """The command's usage, with every sweep and its description and every Slurm profile."""
    lines = [USAGE, "", "sweeps (experiments/sweeps/):"]
    for name in available_sweeps():
        description = OmegaConf.load(SWEEPS_DIR / f"{name}.yaml").get("description", "")
        lines.append(f"  {name:<20} {description}")
    lines += ["", "Slurm profiles (slurm/): " + ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help", "help"} & set(argv):
        print(usage())
        return 0
    if not argv:
        print(usage(), file=sys.stderr)
        return 2
    try:
        result = launch(argv)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
