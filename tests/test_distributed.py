"""Data-parallel RL through DeepSpeed: the config it gets, how work is split, and a real 2-process
ZeRO run on the CPU (gloo) whose curves match the single-process run on the same data."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vineppo import partial
from vineppo.config import ConfigError, DeepSpeedConfig, make_config
from vineppo.distributed import World, deepspeed_config, shards_of
from vineppo.loop import loss_items, merge_vine_stats, train_rl
from vineppo.runio import read_jsonl

from .conftest import EASY
from .stop_at_loss import STOPPED
from .test_loop import RL


def test_deepspeed_config_follows_the_settings():
    conf = deepspeed_config(DeepSpeedConfig(enabled=True), grad_clip=1.0, learning_rate=1e-6, micro_batch=32,
                            world_size=2, on_gpu=True)
    assert conf["zero_optimization"] == {"stage": 2}
    assert conf["bf16"] == {"enabled": True}  # auto: bf16 on GPU
    assert conf["train_batch_size"] == 64 and conf["gradient_clipping"] == 1.0
    assert conf["optimizer"]["params"]["lr"] == 1e-6 and conf["optimizer"]["params"]["torch_adam"] is True
    cpu = deepspeed_config(DeepSpeedConfig(enabled=True, zero_stage=3, offload_optimizer=True), 0.5, 1e-4, 8, 4,
                           on_gpu=False)
    assert cpu["bf16"] == {"enabled": False}  # auto: fp32 on CPU
    assert cpu["zero_optimization"]["stage"] == 3
    assert cpu["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert "torch_adam" not in cpu["optimizer"]["params"]  # offload needs DeepSpeed's CPU Adam
    with pytest.raises(ConfigError, match="zero_stage"):
        deepspeed_config(DeepSpeedConfig(zero_stage=4), 1.0, 1e-4, 8, 1, False)
    with pytest.raises(ConfigError, match="bf16"):
        deepspeed_config(DeepSpeedConfig(bf16="maybe"), 1.0, 1e-4, 8, 1, False)
    with pytest.raises(ConfigError, match="offload_optimizer"):
        deepspeed_config(DeepSpeedConfig(zero_stage=0, offload_optimizer=True), 1.0, 1e-4, 8, 1, False)


def test_rollout_shards_are_dealt_round_robin():
    assert shards_of(World(0, 2, 0), 2) == [0] and shards_of(World(1, 2, 1), 2) == [1]
    assert shards_of(World(1, 3, 1), 8) == [1, 4, 7]
    assert shards_of(World(), 4) == [0, 1, 2, 3]  # one process generates every shard
    with pytest.raises(ConfigError, match="rollout_shards"):
        shards_of(World(0, 4, 0), 2)


def test_loss_items_and_merged_stats():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert loss_items("ppo", mask) == 6.0
    assert loss_items("dpo_plus", mask) == 2.0  # rows are (chosen, rejected) pairs
    merged = merge_vine_stats([{"vine/num_states": 3.0, "vine/num_unique_states": 2.0, "vine/mean_value": 1.0},
                               {"vine/num_states": 1.0, "vine/num_unique_states": 1.0, "vine/mean_value": 0.0}])
    assert merged == {"vine/num_states": 4.0, "vine/num_unique_states": 3.0, "vine/mean_value": 0.75}


def test_several_processes_need_deepspeed(tmp_path, monkeypatch):
    monkeypatch.setattr("vineppo.loop.init_world", lambda: World(0, 2, 0))
    cfg = make_config(EASY + RL + ["rl.init=unused", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="deepspeed.enabled=true"):
        train_rl(cfg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], nproc: int, tmp_path, stop_at: int | None = None) -> subprocess.CompletedProcess:
    """`vineppo rl` in `nproc` processes; with `stop_at`, every process stopped at that loss
    computation (tests/stop_at_loss.py), as a killed job."""
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    program = ["-m", "vineppo.cli", "rl"] if stop_at is None else [str(Path(__file__).with_name("stop_at_loss.py")),
                                                                   str(stop_at)]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", *program, *args]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    if stop_at is None:
        assert out.returncode == 0, out.stderr[-4000:]
    else:
        assert out.returncode != 0 and f"exitcode  : {STOPPED}" in out.stderr, out.stderr[-4000:]
    return out


LOSS_TOLERANCE = 1e-4
"""Absolute difference allowed between the 2-process and the 1-process losses: the same math, but
gradients summed in another order (gloo's all-reduce), so fp32 rounding differs slightly."""


@pytest.mark.slow
@pytest.mark.parametrize("algo,stage,checkpointing", [("ppo", 2, False), ("ppo", 3, False), ("vineppo", 3, False),
                                                      ("ppo", 3, True)])
def test_two_process_deepspeed_matches_one_process(tmp_path, easy_sft_checkpoint, algo, stage, checkpointing):
    """PPO (policy and value network, an engine each, clipped each on its own) under ZeRO-2 and
    ZeRO-3 (sharded value network in the no-grad values pass too), VinePPO under ZeRO-3, and PPO
    under ZeRO-3 with model.gradient_checkpointing (both sides): 2 processes with gloo against plain Adam in one process on the same episodes
    (rollout_shards=2 in both), 3 iterations; the same losses and pre-clip gradient norms."""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", f"rl.algo={algo}", "rl.iterations=3",
                        "rl.eval_every=3", "rl.rollout_shards=2", "num_threads=1", "device=cpu",
                        f"model.gradient_checkpointing={checkpointing}",
                        "rl.autocast=null"]  # the same fp32 math on both sides (DeepSpeed has its own bf16)
    single = train_rl(make_config(args + [f"output_dir={tmp_path / 'one'}"]))
    torchrun(args + [f"output_dir={tmp_path / 'two'}", "deepspeed.enabled=true", f"deepspeed.zero_stage={stage}"],
             2, tmp_path)
    one = read_jsonl(tmp_path / "one" / f"{algo}-arith-s0" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "two" / f"{algo}-arith-s0" / "metrics.jsonl")
    assert [r["iteration"] for r in two] == [1, 2, 3]
    keys = ["loss/policy", "loss/kl", "loss/clip_fraction"] + (["loss/value"] if algo == "ppo" else [])
    norms = ["train/grad_norm"] + (["train/grad_norm_value"] if algo == "ppo" else [])
    for a, b in zip(one, two, strict=True):
        # Same episodes: same rewards, token counts and (VinePPO) MC states.
        assert a["train/reward"] == b["train/reward"]
        assert a["train/tokens_generated"] == b["train/tokens_generated"]
        assert a["train/grad_steps"] == b["train/grad_steps"]
        assert a.get("vine/num_states") == b.get("vine/num_states")
        for k in keys:
            assert abs(a[k] - b[k]) <= LOSS_TOLERANCE, (a["iteration"], k, a[k], b[k])
        for k in norms:
            assert b[k] == pytest.approx(a[k], rel=1e-3), (a["iteration"], k, a[k], b[k])
    assert one[-1]["eval/greedy_accuracy"] == two[-1]["eval/greedy_accuracy"]
    assert single["test_greedy_accuracy"] == two[-1]["eval/greedy_accuracy"]
    # The checkpoint holds the policy (HF format) and DeepSpeed's optimizer shards of both processes.
    ckpt = tmp_path / "two" / f"{algo}-arith-s0" / "checkpoints" / "step-3"
    assert (ckpt / "config.json").exists() and (ckpt / "state.pt").exists()
    assert len(list((ckpt / "deepspeed" / "state").glob("*optim_states.pt"))) == 2
    assert (ckpt / "deepspeed_value").is_dir() == (algo == "ppo")  # the value network's own engine


@pytest.mark.slow
@pytest.mark.parametrize("algo,stage,micro", [("ppo", 2, 3), ("dpo_plus", 3, 2)])
def test_micro_batches_on_two_processes_take_the_same_steps(tmp_path, easy_sft_checkpoint, monkeypatch, algo,
                                                            stage, micro):
    """rl.micro_batch_size under DeepSpeed: each of 2 processes runs its share of a mini-batch in
    passes of `micro` episodes (PPO: 4 as 3 + 1; DPO+: 2 pairs as 1 + 1, and where a mini-batch
    has one pair left, the process without one takes as many passes at weight 0), the engines
    stepping at the last pass; the same steps as one process taking whole mini-batches:
    losses within 1e-4, pre-clip gradient norms within 0.1%, the same test accuracy."""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", f"rl.algo={algo}", "rl.rollout_shards=2",
                        "num_threads=1", "device=cpu", "rl.autocast=null", "rl.prompts_per_iter=6"]
    train_rl(make_config(args + [f"output_dir={tmp_path / 'one'}"]))
    torchrun(args + [f"output_dir={tmp_path / 'two'}", "deepspeed.enabled=true", f"deepspeed.zero_stage={stage}",
                     f"rl.micro_batch_size={micro}"], 2, tmp_path)
    one = read_jsonl(tmp_path / "one" / f"{algo}-arith-s0" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "two" / f"{algo}-arith-s0" / "metrics.jsonl")
    keys = {"ppo": ["loss/policy", "loss/kl", "loss/value"], "dpo_plus": ["loss/policy"]}[algo]
    assert len(one) == len(two) == 2
    for a, b in zip(one, two, strict=True):
        assert a["train/grad_steps"] == b["train/grad_steps"] and a["train/num_units"] == b["train/num_units"]
        for k in keys:
            assert abs(a[k] - b[k]) <= LOSS_TOLERANCE, (a["iteration"], k, a[k], b[k])
        assert b["train/grad_norm"] == pytest.approx(a["train/grad_norm"], rel=1e-3)
    assert one[-1]["eval/greedy_accuracy"] == two[-1]["eval/greedy_accuracy"]
    if algo == "dpo_plus":  # 4 pairs a step: an odd count leaves a mini-batch split unevenly
        assert any(r["train/num_units"] % 2 for r in one)


@pytest.mark.slow
def test_optimizer_offload_takes_the_same_steps(tmp_path, easy_sft_checkpoint):
    """deepspeed.offload_optimizer=true (the authors' 7B PPO, and so the paper table's): Adam's state
    and update on the CPU (DeepSpeed's CPU Adam, compiled on first use) for the policy and the
    value network, one process under ZeRO-2, against plain Adam: PPO for 2 iterations on the same
    episodes, the same losses and pre-clip gradient norms."""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", "rl.algo=ppo", "rl.iterations=2", "rl.eval_every=2",
                        "num_threads=1", "device=cpu", "rl.autocast=null"]
    train_rl(make_config(args + [f"output_dir={tmp_path / 'plain'}"]))
    train_rl(make_config(args + [f"output_dir={tmp_path / 'offload'}", "deepspeed.enabled=true",
                                 "deepspeed.zero_stage=2", "deepspeed.offload_optimizer=true"]))
    plain = read_jsonl(tmp_path / "plain" / "ppo-arith-s0" / "metrics.jsonl")
    offload = read_jsonl(tmp_path / "offload" / "ppo-arith-s0" / "metrics.jsonl")
    assert len(plain) == len(offload) == 2
    for a, b in zip(plain, offload, strict=True):
        assert a["train/reward"] == b["train/reward"] and a["train/grad_steps"] == b["train/grad_steps"]
        for k in ("loss/policy", "loss/kl", "loss/value", "loss/clip_fraction"):
            assert abs(a[k] - b[k]) <= LOSS_TOLERANCE, (a["iteration"], k, a[k], b[k])
        for k in ("train/grad_norm", "train/grad_norm_value"):
            assert b[k] == pytest.approx(a[k], rel=1e-3), (a["iteration"], k, a[k], b[k])
    assert plain[-1]["loss/policy"] != 0 and plain[-1]["train/grad_norm"] > 0
    state = tmp_path / "offload" / "ppo-arith-s0" / "checkpoints" / "step-2" / "deepspeed" / "state"
    assert list(state.glob("*optim_states.pt"))  # DeepSpeed's own optimizer state, saved to resume


@pytest.mark.slow
def test_restem_epoch_choice_on_two_processes_matches_one(tmp_path, easy_sft_checkpoint):
    """RestEM with rl.restem_select=validation under ZeRO-2 on 2 processes (each scoring half the
    validation problems; an undone epoch restored from DeepSpeed's own checkpoint) against one
    process with plain Adam: the same validation accuracies, epochs kept, steps and losses."""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", "rl.algo=restem", "rl.iterations=3", "rl.eval_every=3",
                        "rl.rollout_shards=2", "num_threads=1", "device=cpu", "rl.autocast=null", "rl.epochs=4",
                        "rl.restem_select=validation", "task.num_validation=12", "rl.learning_rate=1e-3",
                        "task.num_train=600"]
    train_rl(make_config(args + [f"output_dir={tmp_path / 'one'}"]))
    torchrun(args + [f"output_dir={tmp_path / 'two'}", "deepspeed.enabled=true", "deepspeed.zero_stage=2"], 2, tmp_path)
    one = read_jsonl(tmp_path / "one" / "restem-arith-s0" / "metrics.jsonl")
    two = read_jsonl(tmp_path / "two" / "restem-arith-s0" / "metrics.jsonl")
    assert any(f"restem/validation_accuracy_e{r['restem/epochs_kept'] + 1}" in r for r in one)  # one undone
    for a, b in zip(one, two, strict=True):
        assert {k: v for k, v in a.items() if k.startswith("restem/")} == \
            {k: v for k, v in b.items() if k.startswith("restem/")}
        assert a["train/grad_steps"] == b["train/grad_steps"] and a["train/reward"] == b["train/reward"]
        assert ("loss/policy" in a) == ("loss/policy" in b)  # none where no sample was right
        assert abs(a.get("loss/policy", 0.0) - b.get("loss/policy", 0.0)) <= LOSS_TOLERANCE
    assert not (tmp_path / "two" / "restem-arith-s0" / ".restem-epoch").exists()


@pytest.mark.slow
def test_deepspeed_run_resumes_from_its_checkpoint(tmp_path, easy_sft_checkpoint):
    """One process through DeepSpeed (its own private process group): stopped after 2 iterations and
    resumed to 3 from the checkpoint (policy + DeepSpeed's optimizer state), it logs exactly what an
    uninterrupted 3-iteration run logs. Resuming with the other engine layout is refused by name."""
    base = EASY + RL + [f"rl.init={easy_sft_checkpoint}", "rl.algo=ppo", "deepspeed.enabled=true", "rl.eval_every=10"]
    train_rl(make_config(base + ["rl.iterations=3", f"output_dir={tmp_path / 'ref'}"]))
    train_rl(make_config(base + ["rl.iterations=2", f"output_dir={tmp_path / 'cut'}"]))
    step2 = tmp_path / "cut" / "ppo-arith-s0" / "checkpoints" / "step-2"
    assert (step2 / "deepspeed").is_dir() and (step2 / "deepspeed_value").is_dir()  # policy and value engines
    joint = base + ["rl.iterations=3", "rl.grad_clip_scope=joint", f"output_dir={tmp_path / 'cut'}"]
    with pytest.raises(ConfigError, match="rl.grad_clip_scope: 'per_model' there, 'joint' now"):
        train_rl(make_config(joint))  # the run's recorded config refuses it first
    config_yaml = tmp_path / "cut" / "ppo-arith-s0" / "config.yaml"
    recorded = config_yaml.read_text()
    config_yaml.unlink()  # without it, the checkpoint's own layout still refuses it
    with pytest.raises(ConfigError, match="separate policy and value engines; resume it with rl.grad_clip_scope=per_model"):
        train_rl(make_config(joint))
    config_yaml.write_text(recorded)
    train_rl(make_config(base + ["rl.iterations=3", f"output_dir={tmp_path / 'cut'}"]))

    def strip(path):
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "eval/"))} for r in read_jsonl(path)]

    ref, cut = strip(tmp_path / "ref" / "ppo-arith-s0" / "metrics.jsonl"), strip(tmp_path / "cut" / "ppo-arith-s0" / "metrics.jsonl")
    assert len(cut) == 3 and cut == ref


@pytest.mark.slow
def test_two_process_run_resumes_inside_an_iteration(tmp_path, easy_sft_checkpoint):
    """2 processes under ZeRO-2 with rl.save_every_steps=1, both stopped at the second step of the
    second iteration's second epoch and rerun: the run resumes from its partial checkpoint (each
    process its own share of the iteration's sums and its optimizer shard) and logs what an
    uninterrupted 2-process run logs."""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", "rl.algo=ppo", "rl.rollout_shards=2", "num_threads=1",
                        "device=cpu", "rl.autocast=null", "deepspeed.enabled=true", "deepspeed.zero_stage=2"]
    torchrun(args + [f"output_dir={tmp_path / 'ref'}"], 2, tmp_path)
    cut = args + [f"output_dir={tmp_path / 'cut'}", "rl.save_every_steps=1"]
    # 16 episodes in mini-batches of 8, 2 epochs: 4 steps an iteration; the 7th loss is the last epoch's 2nd step.
    torchrun(cut, 2, tmp_path, stop_at=7)
    run = tmp_path / "cut" / "ppo-arith-s0"
    assert [p.name for p in (run / ".partial" / "iteration-2").glob("step-*")] == ["step-6"]
    assert len(list((run / ".partial" / "iteration-2" / "step-6" / "deepspeed" / "state").glob("*optim*"))) == 2
    torchrun(cut, 2, tmp_path)

    def strip(path):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(path)]

    ref = strip(tmp_path / "ref" / "ppo-arith-s0" / "metrics.jsonl")
    assert len(ref) == 2 and strip(run / "metrics.jsonl") == ref
    assert not (run / ".partial").exists()


@pytest.mark.slow
@pytest.mark.parametrize("algo, stage, before, after, stop_at, extra", [
    ("ppo", 2, 2, 1, 7, ["rl.save_every_steps=1"]),  # stopped inside iteration 2, past a partial checkpoint
    ("ppo", 3, 1, 2, 5, []),                         # stopped at iteration 2's first step
    ("restem", 2, 2, 1, 3, ["rl.restem_from=init", "rl.rollout_shards=0"]),  # from the fresh start, its 2 shards kept
    ("restem", 3, 2, 1, 3, ["rl.restem_from=init"]),  # DeepSpeed's converter stopped on its empty ZeRO-3 state
])
def test_a_run_resumes_on_another_number_of_processes(tmp_path, easy_sft_checkpoint, algo, stage, before, after,
                                                      stop_at, extra):
    """A job stopped and started again on another number of GPUs: PPO (a policy and a value engine)
    under ZeRO-2 stopped on 2 processes and resumed on 1, under ZeRO-3 from 1 process to 2 (one
    process under torchrun), and RestEM fine-tuning rl.init afresh each iteration. The rerun reads
    the ZeRO shards of its last checkpoint (and of RestEM's fresh start) as DeepSpeed's universal
    checkpoint, converted once beside them; from a partial checkpoint, process 0 takes up the
    iteration's running sums of both processes; it logs what an uninterrupted 2-process run logs,
    to the same final weights.
    (Resumed with a fresh Adam state, PPO's iteration 2 policy loss is 0.008 off; with the moments
    of iteration 1 kept at RestEM's fresh start, 0.006.)"""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", f"rl.algo={algo}", "rl.rollout_shards=2", "num_threads=1",
                        "device=cpu", "rl.autocast=null", "deepspeed.enabled=true", f"deepspeed.zero_stage={stage}"]
    torchrun(args + [f"output_dir={tmp_path / 'ref'}", *extra], 2, tmp_path)
    cut = args + [f"output_dir={tmp_path / 'cut'}", *extra]
    torchrun(cut, before, tmp_path, stop_at=stop_at)
    run = tmp_path / "cut" / f"{algo}-arith-s0"
    inside = partial.latest(run, 1)  # rl.save_every_steps: the checkpoint inside iteration 2 it resumes from
    out = torchrun(cut, after, tmp_path)
    resumed = inside[1] if inside is not None else run / "checkpoints" / "step-1"
    converted = ([resumed / f / "state" for f in ("deepspeed", "deepspeed_value")]
                 if algo == "ppo" else [run / d / "deepspeed" / t for d, t in [("checkpoints/step-1", "state"),
                                                                               (".restem-init", "init")]])
    for tag_dir in converted:
        assert f"{tag_dir}: written by {before} process(es), read by {after} as DeepSpeed's universal" in out.stderr
        assert not list(tag_dir.parent.glob("*.tmp")) and not (tag_dir.parent / "latest_universal").exists()
        # RestEM's fresh start keeps its conversion (read every iteration); a checkpoint's goes once
        # the next one is written (a partial checkpoint is cleared at its iteration's end).
        assert (tag_dir.parent / f"{tag_dir.name}-universal").is_dir() == (tag_dir.name == "init")
    if "rl.rollout_shards=0" in extra:  # one per process: the run's own 2 kept on 1
        assert f"{resumed}: sampled in 2 rollout shards; 1 process(es) keep them" in out.stderr
    if "rl.save_every_steps=1" in extra:
        assert inside is not None and inside[0] == 2
        assert f"{inside[1]}: written by 2 process(es), this run has 1; their parts" in out.stderr
        assert not (run / partial.FOLDER).exists()
    ref = read_jsonl(tmp_path / "ref" / f"{algo}-arith-s0" / "metrics.jsonl")
    two = read_jsonl(run / "metrics.jsonl")
    assert [r["iteration"] for r in two] == [1, 2]
    for a, b in zip(ref, two, strict=True):
        assert (a["train/reward"], a["train/tokens_generated"]) == (b["train/reward"], b["train/tokens_generated"])
        for k in ["loss/policy", "loss/kl", "loss/value", "loss/clip_fraction"]:
            if k in a:
                assert abs(a[k] - b[k]) <= LOSS_TOLERANCE, (a["iteration"], k, a[k], b[k])
        for k in ["train/grad_norm", "train/grad_norm_value"]:
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-3), (a["iteration"], k)
    final = [load_file(d / f"{algo}-arith-s0" / "final" / "model.safetensors") for d in (tmp_path / "ref",
                                                                                          tmp_path / "cut")]
    assert max((final[0][k] - final[1][k]).abs().max().item() for k in final[0]) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("stage, then", [
    (2, ["deepspeed.zero_stage=3"]),                                   # weights sharded too: universal
    (3, ["deepspeed.zero_stage=2"]),                                   # and back
    (2, ["deepspeed.zero_stage=1", "deepspeed.offload_optimizer=true"]),  # the same shards: a plain load
])
def test_a_run_resumes_under_another_zero_stage(tmp_path, easy_sft_checkpoint, stage, then):
    """A job that ran out of GPU memory, resumed with more of its state sharded or offloaded: PPO on
    2 processes stopped at iteration 2's first step and resumed under another ZeRO stage or with
    Adam on the CPU logs what the uninterrupted run logs and ends at its weights. ZeRO-3 cuts the
    weights into per-process files that stages 1 and 2 do not write, so a change to or from it reads
    DeepSpeed's universal checkpoint; stages 1 and 2 and offload read one another's shards as they are."""
    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", "rl.algo=ppo", "rl.rollout_shards=2", "num_threads=1",
                        "device=cpu", "rl.autocast=null", "deepspeed.enabled=true", f"deepspeed.zero_stage={stage}"]
    torchrun(args + [f"output_dir={tmp_path / 'ref'}"], 2, tmp_path)
    cut = args + [f"output_dir={tmp_path / 'cut'}"]
    torchrun(cut, 2, tmp_path, stop_at=5)
    out = torchrun(cut + then, 2, tmp_path)
    run = tmp_path / "cut" / "ppo-arith-s0"
    universal = (stage == 3) != ("deepspeed.zero_stage=3" in then)
    for part in ("deepspeed", "deepspeed_value"):
        tag_dir = run / "checkpoints" / "step-1" / part / "state"
        said = f"{tag_dir}: written by 2 process(es) under {'ZeRO-3' if stage == 3 else 'ZeRO-1/2'}, read under"
        assert (said in out.stderr) == universal, out.stderr[-3000:]
        assert not (tag_dir.parent / "state-universal").exists()  # removed once step-2 is written
    ref = read_jsonl(tmp_path / "ref" / "ppo-arith-s0" / "metrics.jsonl")
    two = read_jsonl(run / "metrics.jsonl")
    assert [r["iteration"] for r in two] == [1, 2]
    for a, b in zip(ref, two, strict=True):
        assert (a["train/reward"], a["train/tokens_generated"]) == (b["train/reward"], b["train/tokens_generated"])
        for k in ["loss/policy", "loss/kl", "loss/value", "loss/clip_fraction"]:
            assert abs(a[k] - b[k]) <= LOSS_TOLERANCE, (a["iteration"], k, a[k], b[k])
    final = [load_file(d / "ppo-arith-s0" / "final" / "model.safetensors") for d in (tmp_path / "ref",
                                                                                       tmp_path / "cut")]
    assert max((final[0][k] - final[1][k]).abs().max().item() for k in final[0]) < 1e-4


def test_zero0_and_a_sharding_stage_do_not_resume_one_another(tmp_path):
    """ZeRO-0 keeps Adam's state whole in the engine's one file, stages 1-3 in shards: a change
    between them is refused by name, before any checkpoint is read; 2 -> 3 is let through."""
    from vineppo.config import to_yaml
    from vineppo.loop import check_resume
    from vineppo.runio import RunDir

    run = RunDir(tmp_path / "r")
    was = make_config(["rl.iterations=3", "deepspeed.enabled=true", "deepspeed.zero_stage=0"])
    run.config.write_text(to_yaml(was))
    with pytest.raises(ConfigError, match=r"deepspeed.zero_stage=0.*stages 1-3 only"):
        check_resume(run, make_config(["rl.iterations=3", "deepspeed.enabled=true", "deepspeed.zero_stage=2"]), 1)
    run.config.write_text(to_yaml(make_config(["rl.iterations=3", "deepspeed.enabled=true"])))
    check_resume(run, make_config(["rl.iterations=3", "deepspeed.enabled=true", "deepspeed.zero_stage=3",
                                   "deepspeed.offload_optimizer=true"]), 1)
    with pytest.raises(ConfigError, match="deepspeed.enabled"):
        check_resume(run, make_config(["rl.iterations=3"]), 1)


def _split_pass_worker(rank: int, port: int, queue, chunk: int = 3, lockstep: bool = False) -> None:
    """One of 2 gloo processes: the reference pass of `chunked`, split, on the same batch."""
    import torch.distributed as dist

    from vineppo.rollout import chunked, token_logprobs

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model, batch = _split_pass_case()
    calls = []

    def fn(b):
        calls.append(b["input_ids"].shape[0])
        return token_logprobs(model, b, 0.7)

    out = chunked(fn, batch, chunk=chunk, world=World(rank, 2, rank), lockstep=lockstep)
    queue.put((rank, out, calls))
    dist.barrier()
    dist.destroy_process_group()


def _spawn(worker, *args, timeout: float = 120) -> dict:
    """Run `worker(rank, port, queue, *args)` in 2 spawned processes; {rank: what it put}. A process
    that hangs (a collective the other never joins) fails the test at `timeout` and is killed."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, port, queue, *args)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        got = [queue.get(timeout=timeout) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return {r: rest for r, *rest in got}


def _split_pass_case():
    """A fixed random Llama and a right-padded batch of 10 sequences of different lengths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2)).eval()
    lengths = [5, 12, 7, 9, 3, 12, 6, 11, 8, 4]
    ids = torch.zeros(10, 12, dtype=torch.long)
    attention = torch.zeros(10, 12, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, 50, (n,))
        attention[i, :n] = 1
    mask = attention[:, 1:].float()
    return model, {"input_ids": ids, "attention_mask": attention, "targets": ids[:, 1:], "mask": mask}


def test_no_grad_passes_split_over_two_processes_equal_one():
    """2 CPU processes (gloo) each compute half of the chunks of a log-prob pass and a sum fills in
    the rest: every process ends with exactly the one-process result, having run half the rows."""
    from vineppo.rollout import chunked, token_logprobs

    model, batch = _split_pass_case()
    one = chunked(lambda b: token_logprobs(model, b, 0.7), batch, chunk=3)
    results = _spawn(_split_pass_worker)
    mask = batch["mask"].bool()
    for r in (0, 1):
        assert torch.equal(results[r][0][mask], one[mask])
    # 10 rows in chunks of 3 (3, 3, 3, 1): rank 0 takes chunks 0 and 2, rank 1 chunks 1 and 3.
    assert (results[0][1], results[1][1]) == ([3, 3], [3, 1])


def test_lockstep_split_runs_as_many_passes_on_every_process():
    """ZeRO-3's split (lockstep): 10 rows in chunks of 4 (4, 4, 2) over 2 processes; rank 0 takes
    chunks 0 and 2, rank 1 chunk 1 and then the last chunk again, dropped: 2 passes each, and both
    still end with exactly the one-process result. Without lockstep rank 1 runs one pass."""
    from vineppo.rollout import chunked, token_logprobs

    model, batch = _split_pass_case()
    one = chunked(lambda b: token_logprobs(model, b, 0.7), batch, chunk=4)
    mask = batch["mask"].bool()
    locked, free = _spawn(_split_pass_worker, 4, True), _spawn(_split_pass_worker, 4, False)
    for r in (0, 1):
        assert torch.equal(locked[r][0][mask], one[mask]) and torch.equal(free[r][0][mask], one[mask])
    assert (locked[0][1], locked[1][1]) == ([4, 2], [4, 2])
    assert (free[0][1], free[1][1]) == ([4, 2], [4])


def _path_batch(shareable: bool):
    """4 rows: 2 prompts x 2 samples (sharing saves work), or 4 distinct prompts (it does not)."""
    from vineppo.rollout import Episode, collate_episodes

    prompts = [[5, 6, 7, 8, 9, 10]] * 2 + [[11, 12, 13, 14, 15, 16]] * 2 if shareable else \
        [[5 + i, 6, 7, 8, 9, 10] for i in range(4)]
    eps = [Episode(i // 2, {}, "", p, [20 + i, 21, 22], "", "stop", 1.0) for i, p in enumerate(prompts)]
    return collate_episodes(eps, 0)


def _path_worker(rank: int, port: int, queue, shareable: tuple[bool, bool], locked: bool) -> None:
    """One of 2 gloo processes: token log-probs of its own batch, in lockstep or not; how many
    times the model ran, and the result against the plain forward's."""
    import torch.distributed as dist

    from vineppo import shared_prefix
    from vineppo.rollout import token_logprobs

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model, _ = _split_pass_case()
    batch = _path_batch(shareable[rank])
    calls = []
    model.get_input_embeddings().register_forward_hook(lambda mod, i, o: calls.append(tuple(i[0].shape)))
    with torch.no_grad(), shared_prefix.lockstep(World(rank, 2, rank) if locked else None):
        out = token_logprobs(model, batch, 1.0)
    plain = token_logprobs(model, batch, 1.0, shared_prefix=False).detach()
    m = batch["mask"].bool()
    queue.put((rank, calls[:-1], float((out[m] - plain[m]).abs().max())))
    dist.barrier()
    dist.destroy_process_group()


def test_lockstep_takes_the_shared_path_only_where_every_process_would():
    """Rank 0's batch shares its prompts, rank 1's does not. Free, rank 0 runs the model twice
    (prompts [2, 6], then responses [4, 3]) and rank 1 once: under ZeRO-3 that hangs. In
    lockstep both run once, on the plain path; where both batches share, both take the shared path."""
    free = _spawn(_path_worker, (True, False), False)
    assert (free[0][0], free[1][0]) == ([(2, 6), (4, 3)], [(4, 9)])
    locked = _spawn(_path_worker, (True, False), True)
    assert (locked[0][0], locked[1][0]) == ([(4, 9)], [(4, 9)])
    both = _spawn(_path_worker, (True, True), True)
    assert both[0][0] == both[1][0] == [(2, 6), (4, 3)]
    for got in (free, locked, both):
        assert got[0][1] < 1e-5 and got[1][1] < 1e-5  # the same log-probs on either path


def _zero3_worker(rank: int, port: int, queue) -> None:
    """One of 2 gloo processes training a tiny Llama under DeepSpeed ZeRO-3 on batches whose paths
    differ (rank 0's shares its prompts, rank 1's does not), in lockstep: 2 steps complete."""
    import os

    os.environ.update(DS_ACCELERATOR="cpu", RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import deepspeed

    from vineppo import shared_prefix
    from vineppo.rollout import token_logprobs

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    model, _ = _split_pass_case()
    conf = {"train_micro_batch_size_per_gpu": 4, "train_batch_size": 8, "zero_optimization": {"stage": 3},
            "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "torch_adam": True}}, "steps_per_print": 10**9}
    engine = deepspeed.initialize(model=model.train(), model_parameters=model.parameters(), config=conf)[0]
    batch = _path_batch(shareable=rank == 0)
    losses = []
    for _ in range(2):
        with shared_prefix.lockstep(World(rank, 2, rank)):
            logp = token_logprobs(engine, batch, 1.0)
        loss = -(logp * batch["mask"]).sum() / batch["mask"].sum()
        engine.backward(loss)
        engine.step()
        losses.append(float(loss))
    queue.put((rank, losses))
    torch.distributed.barrier()


@pytest.mark.slow
def test_zero3_with_processes_on_different_paths_does_not_hang():
    """The failure lockstep prevents, for real: without it this ZeRO-3 run waits forever (rank 0's
    second forward gathers weights rank 1 never sends). In lockstep both steps complete, and the
    first step's loss is each batch's loss under the untrained weights."""
    from vineppo.rollout import token_logprobs

    model, _ = _split_pass_case()
    got = _spawn(_zero3_worker, timeout=240)
    for r in (0, 1):
        batch = _path_batch(shareable=r == 0)
        with torch.no_grad():
            expect = -(token_logprobs(model, batch, 1.0) * batch["mask"]).sum() / batch["mask"].sum()
        assert got[r][0][0] == pytest.approx(float(expect), abs=1e-5)
        assert got[r][0][1] < got[r][0][0]  # a step of Adam on its own batch lowered its loss


def test_init_world_reads_the_processes_on_this_node(monkeypatch):
    """LOCAL_WORLD_SIZE (torchrun, DeepSpeed's launcher, submitit) is how many processes share this
    node's RAM (the host-memory check counts the episodes once for each); without it, all of them."""
    from vineppo import distributed

    monkeypatch.setattr(distributed.torch_dist, "is_initialized", lambda: True)  # no group to join here
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("RANK", "9")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert distributed.init_world() == World(9, 16, 1, 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert distributed.init_world().local_world_size == 16
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_world() == World(0, 1, 0, 1)


_JOIN = """
import torch.distributed as dist
from vineppo.distributed import join_single_process_group
join_single_process_group()
print(dist.get_world_size(), dist.get_rank())
"""


@pytest.mark.parametrize("launcher", [False, True])
def test_one_process_group_takes_the_launchers_port_only_under_a_launcher(launcher):
    """Another run holds port P. A shell that left MASTER_ADDR/MASTER_PORT=P exported (no launcher:
    no WORLD_SIZE) gets a private port and starts; under a launcher (WORLD_SIZE too) the process
    joins the launcher's group at P, so here, with P taken, it fails with torch's address-in-use."""
    with socket.socket() as other_run:
        other_run.bind(("127.0.0.1", 0))
        other_run.listen()
        port = other_run.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PYTHONPATH=str(Path(__file__).parents[1] / "src"))
        if launcher:
            env.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0")
        out = subprocess.run([sys.executable, "-c", _JOIN], env=env, capture_output=True, text=True, timeout=120)
    if launcher:
        assert out.returncode != 0 and "address already in use" in out.stderr.lower(), out.stderr[-2000:]
    else:
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split() == ["1", "0"]


def _patient_worker(rank: int, port: int, queue, patient: bool) -> None:
    """Rank 0 works alone for 3 s (a conversion) before the barrier; the default group waits 1 s."""
    import time
    from datetime import timedelta

    import torch.distributed as dist

    from vineppo.distributed import patient_group

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=1))
    group = patient_group() if patient else None
    if rank == 0:
        time.sleep(3)
    try:
        World(rank, 2, rank).barrier(group)
        queue.put((rank, "passed"))
    except RuntimeError as e:
        queue.put((rank, f"failed: {e}"[:200]))


@pytest.mark.parametrize("patient", [False, True])
def test_a_patient_group_waits_beyond_the_default_timeout(patient):
    """The others wait at a barrier while the first process converts a checkpoint: on the default
    group they give up at its timeout (then the job ends, and requeued would convert again); on a
    `patient_group` they wait it out."""
    got = _spawn(_patient_worker, patient, timeout=60)
    if patient:
        assert got[0] == ["passed"] and got[1] == ["passed"]
    else:
        assert got[1][0].startswith("failed") and "timed out" in got[1][0].lower(), got[1]


def test_a_resumed_run_keeps_its_rollout_shards_where_it_can(capsys):
    """rl.rollout_shards=0 (one per process): resumed on another number of processes, a run keeps
    the shards it sampled in (the same episodes) where there are at least as many as processes."""
    from vineppo.loop import resumed_shards

    ckpt = Path("run/checkpoints/step-3")
    assert resumed_shards(None, World(0, 4, 0), ckpt) == 4  # a checkpoint from before it was recorded
    assert resumed_shards(4, World(0, 4, 0), ckpt) == 4
    assert capsys.readouterr().err == ""
    assert resumed_shards(8, World(0, 4, 0), ckpt) == 8
    assert "sampled in 8 rollout shards; 4 process(es) keep them" in capsys.readouterr().err
    assert resumed_shards(2, World(0, 4, 0), ckpt) == 4
    assert "fewer than the 4 processes: 4 from here" in capsys.readouterr().err
    assert resumed_shards(2, World(1, 4, 1), ckpt) == 4 and capsys.readouterr().err == ""  # said once, by process 0
