"""The launcher: sweep expansion, dry run, skipping complete runs, Slurm end to end, requeue."""

import json
import shutil
import subprocess
import time

import pytest

from vineppo.config import ConfigError, load_config, make_config
from vineppo.launch import JobRunner, expand, launch, load_profile, load_sweep, make_executor
from vineppo.runio import read_jsonl

ALGOS = ["restem", "dpo_plus", "ppo", "vineppo", "grpo", "rloo"]


def quiet(*_args, **_kwargs):
    pass


def test_table1_dry_run_lists_exactly_the_expected_jobs(tmp_path):
    out = launch(["sweep=table1", f"output_dir={tmp_path}", "--dry-run"], log=quiet)
    names = [j.name for j in out["jobs"]]
    expected = ["sft-arith", "sft-arith_hard"] + [f"{a}-{t}-s{s}" for t in ("arith", "arith_hard")
                                                   for a in ALGOS for s in range(3)]
    assert sorted(names) == sorted(expected) and len(names) == 38
    assert out["submitted"] == [] and not any(tmp_path.iterdir())  # nothing ran, nothing written
    ppo = next(j for j in out["jobs"] if j.name == "ppo-arith_hard-s1")
    assert ppo.overrides["rl.init"] == f"{tmp_path}/sft-arith_hard/final"
    assert (ppo.overrides["seed"], ppo.overrides["rl.iterations"], ppo.overrides["rl.algo"]) == (1, 5, "ppo")
    assert len(launch(["sweep=table1", "seeds=2", "--dry-run"], log=quiet)["jobs"]) == 2 + 2 * 6 * 2
    # The paper table: both base models, each from its released SFT checkpoints.
    assert len(launch(["sweep=table1", "preset=paper", "--dry-run"], log=quiet)["jobs"]) == 2 * (2 + 2 * 6 * 3)
    paper = launch(["sweep=table1", "preset=paper", "seeds=1", "--dry-run"], log=quiet)["jobs"]
    assert {j.name: j.overrides["model.name_or_path"] for j in paper if j.stage == 1} == {
        "rho1b-sft-gsm8k": "realtreetune/rho-1b-sft-GSM8K", "rho1b-sft-math": "realtreetune/rho-1b-sft-MATH",
        "deepseek7b-sft-gsm8k": "realtreetune/deepseekmath-7b-sft-GSM8K",
        "deepseek7b-sft-math": "realtreetune/deepseekmath-7b-sft-MATH-v2"}
    assert all(j.command == "eval" for j in paper if j.stage == 1)
    by_name = {j.name: j for j in paper}
    assert by_name["rho1b-vineppo-math-s0"].overrides["rl.init"] == "realtreetune/rho-1b-sft-MATH"
    assert by_name["deepseek7b-ppo-gsm8k-s0"].overrides["rl.init"] == "realtreetune/deepseekmath-7b-sft-GSM8K"
    assert by_name["deepseek7b-ppo-gsm8k-s0"].after == "deepseek7b-sft-gsm8k"
    only = launch(["sweep=table1", "preset=paper", "seeds=1", "base=deepseek7b", "--dry-run"], log=quiet)["jobs"]
    assert len(only) == 2 + 2 * 6 and all(j.name.startswith("deepseek7b-") for j in only)
    # A base's per-method settings: the authors' 7B PPO keeps Adam on the CPU, nothing else does;
    # the command line still wins.
    offloaded = {n for n, j in by_name.items() if j.overrides.get("deepspeed.offload_optimizer")}
    assert offloaded == {"deepseek7b-ppo-gsm8k-s0", "deepseek7b-ppo-math-s0"}
    assert make_config(by_name["deepseek7b-ppo-math-s0"].overrides).deepspeed.offload_optimizer is True
    assert make_config(by_name["deepseek7b-vineppo-math-s0"].overrides).deepspeed.offload_optimizer is False
    user = launch(["sweep=table1", "preset=paper", "seeds=1", "base=deepseek7b", "deepspeed.offload_optimizer=false",
                   "--dry-run"], log=quiet)["jobs"]
    assert not any(j.overrides["deepspeed.offload_optimizer"] for j in user)
    # Local concurrency: the sweep's default for the preset (tiny: 2 jobs, 1 thread each), the
    # command line over it, one job at a time where the sweep says nothing.
    assert out["max_parallel"] == 2 and ppo.overrides["num_threads"] == 1
    assert launch(["sweep=table1", "max_parallel=3", "--dry-run"], log=quiet)["max_parallel"] == 3
    assert launch(["sweep=table1", "preset=paper", "--dry-run"], log=quiet)["max_parallel"] == 1
    assert "num_threads" not in by_name["rho1b-vineppo-math-s0"].overrides


def test_a_bases_per_algo_settings_must_name_a_method():
    sweep = load_sweep("table1")
    sweep["bases"]["paper"]["deepseek7b"]["per_algo"] = {"ppp": {"deepspeed.offload_optimizer": True}}
    with pytest.raises(ConfigError, match="base 'deepseek7b': per_algo names 'ppp', which is no method"):
        expand(sweep, "table1", "paper", 1, {})


def test_paper_table_on_slurm_gives_each_base_its_profile():
    """RhoMath-1.1B's jobs on 4 x A100 (4 DeepSpeed processes per RL job), DeepSeekMath-7B's on
    8 x H100 (8); the dry run says so; `profile=` on the command line wins for every job."""
    lines = []
    out = launch(["sweep=table1", "preset=paper", "seeds=1", "cluster=slurm", "--dry-run"], log=lines.append)
    jobs, procs = {j.name: j for j in out["jobs"]}, out["processes"]
    assert jobs["rho1b-ppo-math-s0"].profile == "a100x4" and procs["rho1b-ppo-math-s0"] == 4
    assert jobs["deepseek7b-ppo-math-s0"].profile == "h100x8" and procs["deepseek7b-ppo-math-s0"] == 8
    assert procs["deepseek7b-sft-math"] == 1 and jobs["deepseek7b-ppo-math-s0"].overrides["deepspeed.enabled"] is True
    text = "\n".join(lines)
    assert "rl deepseek7b-vineppo-gsm8k-s0" in text and "Slurm profile h100x8" in text and "8 processes" in text
    assert "base models: deepseek7b, rho1b" in text
    forced = launch(["sweep=table1", "preset=paper", "seeds=1", "cluster=slurm", "profile=local", "--dry-run"],
                    log=quiet)
    assert {j.profile for j in forced["jobs"]} == {"local"}
    with pytest.raises(ConfigError, match="unknown base 'deepseek'; available: rho1b, deepseek7b"):
        launch(["sweep=table1", "preset=paper", "base=deepseek", "--dry-run"], log=quiet)
    with pytest.raises(ConfigError, match="no base models for preset 'tiny'"):
        launch(["sweep=table1", "base=rho1b", "--dry-run"], log=quiet)


def test_table_keeps_base_models_apart(tmp_path):
    """Two base models' runs: one row per base and method, each gain measured from its own SFT."""
    from vineppo.launch import Job, write_table

    def job(name, base, command, task, seed, acc, algo=None):
        d = tmp_path / name
        d.mkdir()
        summary = {"test_greedy_accuracy": acc, "commit": "x"}
        if command == "rl":
            summary.update(algo=algo, grad_steps=8, seconds_per_iteration=1.0)
            (d / "metrics.jsonl").write_text(json.dumps({"time/generation_s": 1, "time/value_estimation_s": 1}) + "\n")
        (d / "summary.json").write_text(json.dumps(summary))
        return Job(name, command, {"task.name": task, "seed": seed}, 1 if command != "rl" else 2,
                   marker=d / "summary.json", base=base)

    jobs = [job("a-sft-gsm8k", "a", "eval", "gsm8k", 0, 0.30), job("b-sft-gsm8k", "b", "eval", "gsm8k", 0, 0.60),
            job("a-ppo-gsm8k-s0", "a", "rl", "gsm8k", 0, 0.40, "ppo"),
            job("b-ppo-gsm8k-s0", "b", "rl", "gsm8k", 0, 0.65, "ppo")]
    text = write_table(jobs, tmp_path / "table", log=quiet).read_text()
    assert "| a ppo | 0.400 ± 0.000 |" in text and "| b ppo | 0.650 ± 0.000 |" in text
    assert "| a ppo | +10.0 ± 0.0; worst +10.0; 1/1 |" in text and "| b ppo | +5.0 ± 0.0; worst +5.0; 1/1 |" in text
    assert "a PPO & 40.0 $\\pm$ 0.0" in (tmp_path / "table.tex").read_text()


def test_grid_sweeps_name_every_point(tmp_path):
    jobs = expand(load_sweep("mc_samples"), "mc_samples", "tiny", 1, {"output_dir": str(tmp_path)})
    assert [j.name for j in jobs] == ["sft-arith", "vineppo_vine_k1-arith-s0", "vineppo_vine_k3-arith-s0",
                                      "vineppo_vine_k9-arith-s0"]
    assert [j.overrides.get("rl.vine_k") for j in jobs[1:]] == [1, 3, 9]


def test_vine_steps_sweep_sets_the_step_rule(tmp_path):
    """vine_steps: VinePPO at the task's rule, the authors' GSM8K rule and one step per response,
    on both presets."""
    from vineppo.config import make_config

    jobs = expand(load_sweep("vine_steps"), "vine_steps", "tiny", 1, {"output_dir": str(tmp_path)})
    assert [j.name for j in jobs] == ["sft-arith", "vineppo_vine_stepsauto-arith-s0",
                                      "vineppo_vine_stepslines_answer-arith-s0", "vineppo_vine_stepsresponse-arith-s0"]
    assert [make_config(j.overrides).rl.vine_steps for j in jobs[1:]] == ["auto", "lines_answer", "response"]
    paper = expand(load_sweep("vine_steps"), "vine_steps", "paper", 1, {"output_dir": str(tmp_path)})
    assert sorted(j.name for j in paper if j.command == "rl") == [
        "vineppo_vine_stepsauto-gsm8k-s0", "vineppo_vine_stepsauto-math-s0",
        "vineppo_vine_stepslines_answer-gsm8k-s0", "vineppo_vine_stepslines_answer-math-s0",
        "vineppo_vine_stepsresponse-gsm8k-s0", "vineppo_vine_stepsresponse-math-s0"]


def test_flaw_ops_sweep_flaws_every_kind_of_step_unless_told(tmp_path):
    """flaw_ops: every job (SFT and RL) gets the four-operation flaw; `task.flaw_ops=[sub]` on the
    command line is the table's arith again (the control arm of results/flaw_ops/run.sh)."""
    from vineppo.config import make_config

    jobs = expand(load_sweep("flaw_ops"), "flaw_ops", "tiny", 1, {"output_dir": str(tmp_path)})
    assert [j.name for j in jobs] == ["sft-arith", "ppo-arith-s0", "vineppo-arith-s0", "grpo-arith-s0"]
    cfgs = [make_config(j.overrides) for j in jobs]
    assert all(c.task.flaw_ops == ["add", "sub", "mul", "div"] for c in cfgs)
    assert cfgs[0].task.flaw_rate == 0.6 and cfgs[0].task.num_sft > 0  # the tiny preset's pool
    assert all(c.rl.iterations == 8 and c.rl.eval_every == 1 for c in cfgs[1:])
    control = expand(load_sweep("flaw_ops"), "flaw_ops", "tiny", 1,
                     {"output_dir": str(tmp_path), "task.flaw_ops": ["sub"]})
    assert all(make_config(j.overrides).task.flaw_ops == ["sub"] for j in control)


def test_a_list_of_grids_adds_up_their_jobs(tmp_path):
    """critic_lr: PPO at three value-network rates (null: the policy's, named plain "ppo") and VinePPO."""
    jobs = expand(load_sweep("critic_lr"), "critic_lr", "tiny", 2, {"output_dir": str(tmp_path)})
    rl = [j for j in jobs if j.command == "rl"]
    assert [j.name for j in rl] == [f"{t}-arith_hard-s{s}" for t in ("ppo", "ppo_value_learning_rate0.0003",
                                                                     "ppo_value_learning_rate0.003", "vineppo")
                                    for s in (0, 1)]
    assert [j.overrides.get("rl.value_learning_rate") for j in rl[::2]] == [None, 3e-4, 3e-3, None]
    assert [j.overrides["rl.algo"] for j in rl[::2]] == ["ppo", "ppo", "ppo", "vineppo"]
    assert all(j.overrides["rl.iterations"] == 8 and j.overrides["rl.eval_every"] == 1 for j in rl)


def test_sweep_file_typos_are_named(tmp_path, monkeypatch):
    import vineppo.launch as launch_module

    monkeypatch.setattr(launch_module, "SWEEPS_DIR", tmp_path)
    (tmp_path / "a.yaml").write_text("tasks: {tiny: [arith]}\nrl:\n  grid: {rl.algo: [ppo]}\n  overides: {}\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'overides' at the section 'rl'; valid: grid, overrides"):
        load_sweep("a")
    (tmp_path / "b.yaml").write_text("tasks: {tiny: [arith]}\nrl: {grid: {rl.algo: [ppo]}}\nseed: 3\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'seed' at the top level"):
        load_sweep("b")
    (tmp_path / "c.yaml").write_text("tasks: {tiny: [arith]}\nrl: {grid: [ppo, vineppo]}\n")
    with pytest.raises(ConfigError, match="rl.grid must be a mapping"):
        load_sweep("c")


def test_a_sweep_and_a_slurm_profile_of_your_own(tmp_path):
    """sweep=path/to/file.yaml runs a sweep kept outside the repository (your model and data), its
    runs under runs/<file name>[-preset]; profile=path/to/file.yaml likewise a Slurm profile. A
    path that is not there, or a key the file should not hold, is named."""
    mine = tmp_path / "my_gsm8k.yaml"
    mine.write_text("seeds: 2\ntasks: {paper: [gsm8k]}\n"
                    "overrides: {paper: {task.train_path: /data/train.jsonl, task.test_path: /data/test.jsonl}}\n"
                    "sft: {init: {paper: {gsm8k: /models/my-sft}}}\nrl: {grid: {rl.algo: [ppo, vineppo]}}\n")
    jobs = launch([f"sweep={mine}", "preset=paper", "--dry-run"], log=quiet)["jobs"]
    assert [(j.command, j.name) for j in jobs] == [("eval", "sft-gsm8k"), ("rl", "ppo-gsm8k-s0"), ("rl", "ppo-gsm8k-s1"),
                                                   ("rl", "vineppo-gsm8k-s0"), ("rl", "vineppo-gsm8k-s1")]
    assert {j.overrides["output_dir"] for j in jobs} == {"runs/my_gsm8k-paper"}
    assert jobs[0].overrides["model.name_or_path"] == "/models/my-sft"
    assert {j.overrides["rl.init"] for j in jobs[1:]} == {"/models/my-sft"}
    assert {j.overrides["task.train_path"] for j in jobs} == {"/data/train.jsonl"}
    with pytest.raises(ConfigError, match=f"sweep={tmp_path}/none.yaml: no such file"):
        launch([f"sweep={tmp_path}/none.yaml", "--dry-run"], log=quiet)

    cluster = tmp_path / "my_cluster.yml"
    cluster.write_text("partition: a100\ngpus: 4\ncpus: 32\nmem_gb: 256\ntime_min: 1440\naccount: mylab\n")
    assert load_profile(str(cluster), {"time_min": 60}) == {**load_profile(str(cluster), {}), "timeout_min": 60}
    assert load_profile(str(cluster), {})["slurm_partition"] == "a100"
    out = launch([f"sweep={mine}", "preset=paper", "cluster=slurm", f"profile={cluster}", "--dry-run"], log=quiet)
    assert {j.profile for j in out["jobs"]} == {str(cluster)}
    (tmp_path / "typo.yaml").write_text("partion: a100\n")
    with pytest.raises(ConfigError, match=f"unknown Slurm profile key 'partion' in {tmp_path}/typo.yaml"):
        load_profile(str(tmp_path / "typo.yaml"), {})
    with pytest.raises(ConfigError, match="profile=elsewhere/none.yaml: no such file"):
        load_profile("elsewhere/none.yaml", {})


@pytest.mark.slow
def test_your_model_and_data_through_a_sweep_file(tmp_path, tiny_model_and_tokenizer):
    """The README's "your own model and data" as one sweep kept outside the repository: on the
    paper preset, `sft.train` fine-tunes your base model (model.name_or_path) on your GSM8K-format
    file first, then each method of the grid runs RL from that SFT model, and the table is
    written. Without sft.train (or an sft.init) the paper preset names what is missing."""
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    rows = tmp_path / "data.jsonl"
    rows.write_text("".join(json.dumps({"question": f"Ava has {i} apples and buys {i + 1} more. How many?",
                                        "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}"}) + "\n"
                            for i in range(8)))
    settings = {"task.train_path": str(rows), "task.test_path": str(rows), "task.num_validation": 0,
                "model.name_or_path": str(tmp_path / "base"), "model.dtype": "float32", "model.max_length": 128,
                "model.gradient_checkpointing": False, "deepspeed.enabled": False, "device": "cpu", "num_threads": 1,
                "sft.batch_size": 4, "sft.eval_every": 0, "eval.num_samples": 0,
                "eval.max_new_tokens": 8, "eval.batch_size": 8, "rl.iterations": 1, "rl.prompts_per_iter": 2,
                "rl.samples_per_prompt": 2, "rl.minibatch_size": 4, "rl.max_new_tokens": 8, "rl.eval_samples": 0,
                "rl.vine_k": 2, "rl.eval_every": 1}
    sweep = tmp_path / "mine.yaml"
    sweep.write_text(json.dumps({"seeds": 1, "tasks": {"paper": ["gsm8k"]}, "overrides": {"paper": settings},
                                 "rl": {"grid": {"rl.algo": ["vineppo", "grpo"]}},
                                 "table": {"paper": str(tmp_path / "table")}}))
    with pytest.raises(ConfigError, match="SFT checkpoint of base 'paper' on task 'gsm8k' is missing .*sft.train"):
        launch([f"sweep={sweep}", "preset=paper", "--dry-run"], log=quiet)
    sweep.write_text(sweep.read_text()[:-1] + ', "sft": {"train": {"paper": true}}}')
    out = launch([f"sweep={sweep}", "preset=paper", "cluster=debug", f"output_dir={tmp_path / 'runs'}"], log=quiet)
    assert not out["errors"] and [j.command for j in out["jobs"]] == ["sft", "rl", "rl"]
    sft = tmp_path / "runs" / "sft-gsm8k"
    assert json.loads((sft / "summary.json").read_text())["train_steps"] == 4  # the preset's 2 epochs of 8 at 4
    assert load_config(sft / "config.yaml").model.name_or_path == str(tmp_path / "base")  # your model, fine-tuned
    for algo in ("vineppo", "grpo"):
        run = tmp_path / "runs" / f"{algo}-gsm8k-s0"
        assert load_config(run / "config.yaml").rl.init == str(sft / "final")  # RL from the SFT trained here
        assert json.loads((run / "summary.json").read_text())["iterations"] == 1
    table = (tmp_path / "table.md").read_text()
    assert "| sft |" in table and "| vineppo |" in table and "| grpo |" in table


def test_bad_input_names_what_is_wrong():
    with pytest.raises(ConfigError, match="unknown sweep 'tabel1'; available: .*table1"):
        launch(["sweep=tabel1", "--dry-run"], log=quiet)
    with pytest.raises(ConfigError, match="did you mean 'rl.learning_rate'"):
        launch(["sweep=smoke", "rl.lerning_rate=1", "--dry-run"], log=quiet)
    with pytest.raises(ConfigError, match="cluster must be one of"):
        launch(["sweep=smoke", "cluster=slrum", "--dry-run"], log=quiet)
    with pytest.raises(ConfigError, match="did you mean 'partition'"):
        load_profile("local", {"partion": "gpu"})
    assert load_profile("local", {"time_min": 5})["timeout_min"] == 5


def test_launcher_runs_its_own_checkout_and_hands_it_to_its_jobs(tmp_path):
    """experiments/launch.py in another checkout (here a stand-in whose package only reports where
    it was imported from) imports that checkout's package, not the installed one, and puts its src/
    first on the PYTHONPATH that its local and Slurm jobs inherit."""
    import os
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "experiments").mkdir()
    shutil.copy(repo / "experiments" / "launch.py", tmp_path / "experiments" / "launch.py")
    (tmp_path / "src" / "vineppo").mkdir(parents=True)
    (tmp_path / "src" / "vineppo" / "__init__.py").write_text("")
    (tmp_path / "src" / "vineppo" / "launch.py").write_text(
        "import os, subprocess, sys\n"
        "def main():\n"
        "    print('launcher', __file__)\n"
        "    child = 'import vineppo.launch as l; print(\"job\", l.__file__)'\n"
        "    subprocess.run([sys.executable, '-c', child], check=True)\n"
        "    return 0\n")
    env = {**os.environ, "PYTHONPATH": "/elsewhere"}
    out = subprocess.run([sys.executable, str(tmp_path / "experiments" / "launch.py")], cwd="/", env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    fake = str(tmp_path / "src" / "vineppo" / "launch.py")
    assert out.stdout.splitlines() == [f"launcher {fake}", f"job {fake}"]


def test_paper_eval_job_runs_with_its_settings_as_they_are(tmp_path, tiny_model_and_tokenizer):
    """A stage-1 eval job (the paper table evaluates each released SFT checkpoint) gets its resolved
    settings as values: a null one stays null (printed and parsed again it was the string 'None',
    which a float key refuses), and it prompts in the paper preset's format."""
    from vineppo.launch import Job

    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "sft")
    tok.save_pretrained(tmp_path / "sft")
    rows = tmp_path / "gsm8k.jsonl"
    rows.write_text("".join(json.dumps({"question": f"Ava has {i} apples. How many?", "answer": f"{i}\n#### {i}"}) + "\n"
                            for i in range(3)))
    overrides = {"preset": "paper", "task.name": "gsm8k", "task.test_path": str(rows), "task.train_path": str(rows),
                 "model.name_or_path": str(tmp_path / "sft"), "model.dtype": "float32", "device": "cpu",
                 "engine": "hf", "eval.batch_size": 3, "eval.max_new_tokens": 4, "rl.value_clip": None,
                 "output_dir": str(tmp_path), "run_name": "sft-gsm8k"}
    job = Job("sft-gsm8k", "eval", overrides, stage=1, marker=tmp_path / "done.json")
    summary = JobRunner(job)()
    assert summary["num_problems"] == 3 and job.is_complete()
    assert json.loads((tmp_path / "done.json").read_text())["test_greedy_accuracy"] == summary["greedy_accuracy"]
    from vineppo.config import make_config
    from vineppo.evaluate import evaluate
    from vineppo.inference import HFEngine
    from vineppo.tasks import TINY_FORMAT, PromptFormat, load_task

    test = load_task(make_config(overrides).task, with_train=False).test
    greedy = [p["greedy"] for p in json.loads((tmp_path / "sft-gsm8k.json").read_text())["problems"]]

    def answers(engine, fmt):
        return [p["greedy"] for p in evaluate(engine, test, "gsm8k", max_new_tokens=4, progress=False, fmt=fmt)["problems"]]

    assert greedy == answers(HFEngine(model, tok, bos=True), PromptFormat.of(make_config(["preset=paper"]).task))
    assert greedy != answers(HFEngine(model, tok), TINY_FORMAT)


def test_help_lists_every_sweep_with_its_description_and_every_profile(capsys):
    from vineppo.launch import SWEEPS_DIR, main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    sweeps = sorted(SWEEPS_DIR.glob("*.yaml"))
    assert len(sweeps) >= 10
    for path in sweeps:
        description = load_sweep(path.stem)["description"]
        assert f"  {path.stem:<20} {description}\n" in out + "\n"
    assert "Slurm profiles (slurm/): a100x4, default, h100x8, local" in out
    assert main([]) == 2 and "usage:" in capsys.readouterr().err  # nothing asked: usage, as an error
    assert main(["sweep=tabel1"]) == 2 and "unknown sweep 'tabel1'" in capsys.readouterr().err


@pytest.mark.slow
def test_complete_sweep_submits_nothing_and_a_deleted_run_reruns_alone(tmp_path):
    args = ["sweep=smoke", f"output_dir={tmp_path}"]
    first = launch(args, log=quiet)
    assert first["errors"] == {} and sorted(first["submitted"]) == ["ppo-arith-s0", "sft-arith", "vineppo-arith-s0"]
    again = launch(args, log=quiet)
    assert again["submitted"] == []
    before = json.loads((tmp_path / "vineppo-arith-s0" / "summary.json").read_text())
    shutil.rmtree(tmp_path / "ppo-arith-s0")
    third = launch(args, log=quiet)
    assert third["submitted"] == ["ppo-arith-s0"] and (tmp_path / "ppo-arith-s0" / "summary.json").exists()
    assert json.loads((tmp_path / "vineppo-arith-s0" / "summary.json").read_text()) == before
    # More iterations asked: the RL runs continue from their checkpoints; the SFT run is not redone.
    longer = launch(args + ["rl.iterations=3"], log=quiet)
    assert sorted(longer["submitted"]) == ["ppo-arith-s0", "vineppo-arith-s0"]
    after = json.loads((tmp_path / "vineppo-arith-s0" / "summary.json").read_text())
    assert after["iterations"] == 3 and after["extended_from"][0]["iterations"] == 2
    assert [r["iteration"] for r in read_jsonl(tmp_path / "vineppo-arith-s0" / "metrics.jsonl")] == [1, 2, 3]


def slurm_up() -> bool:
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_slurm = pytest.mark.skipif(not slurm_up(), reason="no Slurm: run `bash slurm/local-cluster.sh` (CI does)")


@pytest.mark.slow
@needs_slurm
def test_smoke_sweep_on_slurm(tmp_path):
    out = launch(["sweep=smoke", "cluster=slurm", "profile=local", f"output_dir={tmp_path}"], log=quiet)
    assert out["errors"] == {}
    for name in ("sft-arith", "ppo-arith-s0", "vineppo-arith-s0"):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert 0.0 <= summary["test_greedy_accuracy"] <= 1.0
    assert [r["iteration"] for r in read_jsonl(tmp_path / "vineppo-arith-s0" / "metrics.jsonl")] == [1, 2]


@pytest.mark.slow
@needs_slurm
def test_rl_jobs_of_two_processes_on_slurm(tmp_path):
    """processes=2: each RL job is one Slurm job of 2 tasks that join one torch.distributed group
    (gloo here) and train through DeepSpeed ZeRO-2; the SFT job runs as a single task."""
    out = launch(["sweep=smoke", "cluster=slurm", "profile=local", "processes=2", f"output_dir={tmp_path}"], log=quiet)
    assert out["errors"] == {}
    for name in ("ppo-arith-s0", "vineppo-arith-s0"):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["processes"] == 2 and 0.0 <= summary["test_greedy_accuracy"] <= 1.0
        assert [r["iteration"] for r in read_jsonl(tmp_path / name / "metrics.jsonl")] == [1, 2]
        shards = list((tmp_path / name / "checkpoints" / "step-2" / "deepspeed" / "state").glob("*optim_states.pt"))
        assert len(shards) == 2
    assert "processes" not in json.loads((tmp_path / "sft-arith" / "summary.json").read_text())


@pytest.mark.slow
@needs_slurm
def test_requeued_slurm_job_resumes_and_matches_an_uninterrupted_run(tmp_path):
    """`scontrol requeue` kills the job mid-training; Slurm reruns it; it resumes from its last
    checkpoint and ends with the same metrics as a run that was never interrupted."""
    extra = {"rl.iterations": 8, "rl.eval_every": 4}
    ref_jobs = expand(load_sweep("smoke"), "smoke", "tiny", 1, {"output_dir": str(tmp_path / "ref"), **extra})
    jobs = expand(load_sweep("smoke"), "smoke", "tiny", 1, {"output_dir": str(tmp_path / "pre"), **extra})
    local = make_executor("local", tmp_path / "_local", None)
    for j in (ref_jobs[0], ref_jobs[2]):  # SFT, then uninterrupted VinePPO
        local.submit(JobRunner(j)).result()
    shutil.copytree(tmp_path / "ref" / "sft-arith", tmp_path / "pre" / "sft-arith")
    slurm = make_executor("slurm", tmp_path / "_slurm", load_profile("local", {}))
    job = slurm.submit(JobRunner(jobs[2]))
    metrics = tmp_path / "pre" / "vineppo-arith-s0" / "metrics.jsonl"
    deadline = time.time() + 300
    while not (metrics.exists() and len(read_jsonl(metrics)) >= 2):
        assert time.time() < deadline and not job.done(), "job ended before it could be requeued"
        time.sleep(0.2)
    subprocess.run(["scontrol", "requeue", str(job.job_id)], check=True)
    job.result()
    info = subprocess.run(["scontrol", "show", "job", str(job.job_id)], capture_output=True, text=True).stdout
    assert "Restarts=1" in info

    def strip(path):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(path)]

    assert strip(metrics) == strip(tmp_path / "ref" / "vineppo-arith-s0" / "metrics.jsonl")
    assert len(strip(metrics)) == 8


def test_table_mean_std_markdown_and_latex(tmp_path):
    """Fake finished runs with known accuracies -> the table's means and sample stds."""
    from vineppo.launch import write_table

    jobs = expand(load_sweep("smoke"), "smoke", "tiny", 2, {"output_dir": str(tmp_path / "runs")})
    acc = {"sft-arith": 0.30, "ppo-arith-s0": 0.20, "ppo-arith-s1": 0.30, "vineppo-arith-s0": 0.40}
    for j in jobs:
        if j.name not in acc:
            continue  # vineppo-arith-s1 stays missing
        j.marker.parent.mkdir(parents=True)
        summary = {"test_greedy_accuracy": acc[j.name], "commit": "abc"}
        if j.command == "rl":
            summary.update(algo=j.overrides["rl.algo"], grad_steps=4, seconds_per_iteration=2.0)
            (j.marker.parent / "metrics.jsonl").write_text(json.dumps(
                {"time/generation_s": 1.0, "time/value_estimation_s": 0.5}) + "\n")
        j.marker.write_text(json.dumps(summary))
    md = write_table(jobs, tmp_path / "table1", log=quiet).read_text()
    assert "| sft | 0.300 ± 0.000 |" in md
    assert "| ppo | 0.250 ± 0.071 | 2 |" in md  # std of (0.2, 0.3) with ddof=1 = 0.0707
    assert "| vineppo | 0.400 ± 0.000 | 1 |" in md
    assert "Missing or unfinished: vineppo-arith-s1" in md
    tex = (tmp_path / "table1.tex").read_text()
    assert "PPO & 25.0 $\\pm$ 7.1 \\\\" in tex and "VinePPO & 40.0 $\\pm$ 0.0 \\\\" in tex
    assert len((tmp_path / "table1.csv").read_text().strip().splitlines()) == 1 + 4
    assert "Test accuracy: greedy." in md
    # Where every finished run also sampled its test problems (the paper preset), the table gives
    # the sampled accuracy (the SFT evaluation's key is sampled_accuracy, RL's test_sampled_accuracy).
    for j in jobs:
        if j.marker.exists():
            summary = json.loads(j.marker.read_text())
            key = "test_sampled_accuracy" if j.command == "rl" else "sampled_accuracy"
            j.marker.write_text(json.dumps({**summary, key: summary["test_greedy_accuracy"] + 0.1}))
    md = write_table(jobs, tmp_path / "table1", log=quiet).read_text()
    assert "| sft | 0.400 ± 0.000 |" in md and "| ppo | 0.350 ± 0.071 | 2 |" in md
    assert "Test accuracy: the mean over each problem's samples" in md


def test_every_slurm_profile_loads_and_paper_profiles_match_the_paper():
    from vineppo.launch import PROFILES_DIR, load_profile

    for path in PROFILES_DIR.glob("*.yaml"):
        assert isinstance(load_profile(path.stem, {}), dict)
    # SPEC.md: 4 x A100 for RhoMath-1.1B, 8 x H100 for DeepSeekMath-7B.
    assert load_profile("a100x4", {})["gpus_per_node"] == 4 and load_profile("h100x8", {})["gpus_per_node"] == 8
    assert load_profile("h100x8", {"time_min": 60})["timeout_min"] == 60
    # One task (training process) per GPU.
    assert load_profile("a100x4", {})["tasks_per_node"] == 4 and load_profile("h100x8", {})["tasks_per_node"] == 8


class FakeExecutor:
    """Jobs 'run' for a number of polls given by their name's cost; one named in `fail` fails."""

    def __init__(self, fail=(), cost=None):
        self.order, self.fail, self.clock, self.cost, self.done_at = [], set(fail), 0, cost or {}, {}

    def submit(self, runner):
        ex, job = self, runner.job
        ex.order.append(job.name)
        ends = ex.clock + ex.cost.get(job.name, 3 if "vineppo" in job.name else 1)

        class Handle:
            job_id = len(ex.order)

            def done(self):
                ex.clock += 1
                if ex.clock >= ends:
                    ex.done_at.setdefault(job.name, len(ex.order))
                return ex.clock >= ends

            def results(self):
                if job.name in ex.fail:
                    raise RuntimeError(f"{job.name} broke")

        return Handle()


def test_local_runs_start_after_their_sft_longest_first_and_skip_after_failure(tmp_path, monkeypatch):
    from vineppo import launch as L

    monkeypatch.setattr(L, "POLL_S", 0.0)
    jobs = expand(load_sweep("table1"), "table1", "tiny", 1, {"output_dir": str(tmp_path)})
    ex = FakeExecutor()
    assert L.run_local(jobs, ex, max_parallel=2, log=quiet) == {}
    assert ex.order[:2] == ["sft-arith", "sft-arith_hard"]
    # Within each task, VinePPO then PPO start first; no RL job starts before its task's SFT.
    arith = [n for n in ex.order if n.endswith("-arith-s0")]
    assert arith[:2] == ["vineppo-arith-s0", "ppo-arith-s0"] and len(arith) == 6
    # A task's RL jobs start as soon as its own SFT is done, while the other SFT still runs.
    ex = FakeExecutor(cost={"sft-arith_hard": 50})
    L.run_local(jobs, ex, max_parallel=2, log=quiet)
    assert ex.order[2] == "vineppo-arith-s0" and ex.done_at["sft-arith_hard"] > ex.order.index("rloo-arith-s0")
    # A failed SFT skips exactly its own task's RL jobs; the other task runs.
    ex = FakeExecutor(fail={"sft-arith_hard"})
    errors = L.run_local(jobs, ex, max_parallel=2, log=quiet)
    assert errors["sft-arith_hard"].startswith("RuntimeError")
    assert sorted(k for k, v in errors.items() if v == "skipped: its SFT job failed") == sorted(
        f"{a}-arith_hard-s0" for a in ALGOS)
    assert not any(n.endswith("arith_hard-s0") for n in ex.order)


def test_gain_over_sft_hand_worked():
    import pandas as pd

    from vineppo.launch import gain_lines

    df = pd.DataFrame([{"method": "sft", "task": "a", "seed": 0, "test_accuracy": 0.4}]
                      + [{"method": "ppo", "task": "a", "seed": s, "test_accuracy": acc}
                         for s, acc in enumerate((0.5, 0.38, 0.6))])
    # Gains 10, -2, 20 points: mean 9.33; std 11.02, standard error 11.02 / sqrt(3) = 6.36.
    assert gain_lines(df, ["a"])[-1] == "| ppo | +9.3 ± 6.4; worst -2.0; 2/3 |"
    assert gain_lines(df[df["method"] != "sft"], ["a"]) == []


def test_a_run_begun_on_several_processes_resumes_through_deepspeed_on_one(tmp_path):
    """Resubmitted with processes=1, an RL run that recorded DeepSpeed on (begun on several
    processes) keeps it on: its checkpoints are DeepSpeed's, and the run would otherwise stop on
    the changed key. Runs without a folder yet, and an explicit deepspeed.enabled=false, are left as
    asked. A run begun on one process without DeepSpeed, resubmitted on several, is refused by name
    before anything is submitted (its plain checkpoints do not load into DeepSpeed)."""
    from vineppo.config import to_yaml

    first = launch(["sweep=smoke", f"output_dir={tmp_path}", "--dry-run"], log=quiet)["jobs"]
    rl_jobs = [j for j in first if j.command == "rl"]
    begun = rl_jobs[0]
    begun.marker.parent.mkdir(parents=True)
    begun.marker.parent.joinpath("config.yaml").write_text(
        to_yaml(make_config([f"{k}={v}" for k, v in begun.overrides.items() if v is not None]
                            + ["deepspeed.enabled=true"])))
    again = {j.name: j for j in launch(["sweep=smoke", f"output_dir={tmp_path}", "processes=1", "--dry-run"],
                                       log=quiet)["jobs"]}
    assert again[begun.name].overrides["deepspeed.enabled"] is True
    assert all("deepspeed.enabled" not in again[j.name].overrides for j in rl_jobs[1:])
    told = {j.name: j for j in launch(["sweep=smoke", f"output_dir={tmp_path}", "deepspeed.enabled=false",
                                       "--dry-run"], log=quiet)["jobs"]}
    assert told[begun.name].overrides["deepspeed.enabled"] is False
    begun.marker.parent.joinpath("config.yaml").write_text(
        to_yaml(make_config([f"{k}={v}" for k, v in begun.overrides.items() if v is not None])))  # without it
    with pytest.raises(ConfigError, match=f"{begun.name} began on one process without DeepSpeed"):
        launch(["sweep=smoke", f"output_dir={tmp_path}", "processes=2", "--dry-run"], log=quiet)
    assert launch(["sweep=smoke", f"output_dir={tmp_path}", "--dry-run"], log=quiet)["jobs"]  # on one: as it began
