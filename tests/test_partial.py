"""Checkpoints inside an iteration (rl.save_every_steps, partial.py): a run stopped in the middle of
an iteration resumes where its last partial checkpoint was, without sampling the iteration again,
and logs what an uninterrupted run logs."""

import pytest
import torch
from safetensors.torch import load_file

from vineppo import loop as loop_module
from vineppo import partial
from vineppo.loop import train_rl
from vineppo.runio import read_jsonl

from .test_loop import config


def strip(records):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def same_model(a_dir, b_dir, step):
    a = load_file(a_dir / "checkpoints" / f"step-{step}" / "model.safetensors")
    b = load_file(b_dir / "checkpoints" / f"step-{step}" / "model.safetensors")
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def crash_and_resume(monkeypatch, capsys, cfg, crash_at: int) -> dict[str, int]:
    """Run `cfg`, killed at its `crash_at`-th loss computation, then rerun it; what the rerun did:
    its loss computations and rollout shards generated, and the line it printed on resuming."""
    calls = {"loss": 0, "generate": 0, "crash_at": crash_at}
    real_loss, real_generate = loop_module.minibatch_loss, loop_module.generate_shard

    def loss(*args, **kwargs):
        calls["loss"] += 1
        if calls["loss"] == calls["crash_at"]:
            raise KeyboardInterrupt("simulated kill")
        return real_loss(*args, **kwargs)

    def generate(*args, **kwargs):
        calls["generate"] += 1
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(loop_module, "minibatch_loss", loss)
    monkeypatch.setattr(loop_module, "generate_shard", generate)
    with pytest.raises(KeyboardInterrupt):
        train_rl(cfg)
    calls.update(loss=0, generate=0, crash_at=None)
    capsys.readouterr()
    train_rl(cfg)
    resumed = [line for line in capsys.readouterr().err.splitlines() if ": resumed from " in line]
    return {**{k: calls[k] for k in ("loss", "generate")}, "printed": resumed}


@pytest.mark.slow
@pytest.mark.parametrize("algo,every,deepspeed", [("dpo_plus", 2, False), ("ppo", 1, False), ("ppo", 1, True)])
def test_stopped_mid_iteration_resumes_there_exactly(tmp_path, easy_sft_checkpoint, monkeypatch, capsys, algo,
                                                     every, deepspeed):
    """Killed at the second step of the second iteration's second epoch, the run resumes from its
    last partial checkpoint (every=1: after the step before; every=2: the last even step): it does
    not sample the iteration again, runs only the steps after the checkpoint (the epoch's order
    drawn again from where it began), and ends with the records and model of a run never stopped
    and never saving inside an iteration (PPO: the value network and both optimizers' states too,
    in plain Adam and through DeepSpeed)."""
    ds = ["deepspeed.enabled=true", "deepspeed.zero_stage=2", "deepspeed.bf16=false", "rl.autocast=null"] \
        if deepspeed else []
    extra = ["rl.prompts_per_iter=6", "rl.samples_per_prompt=4", *ds]
    ref_cfg = config(tmp_path / "ref", easy_sft_checkpoint, algo, extra)
    train_rl(ref_cfg)
    ref_dir = tmp_path / "ref" / f"{algo}-arith-s0"
    records = read_jsonl(ref_dir / "metrics.jsonl")
    first, total = records[0]["train/grad_steps"], records[1]["train/grad_steps"]
    per_epoch = (total - first) // 2
    assert per_epoch >= 2  # the second epoch has a second step

    cfg = config(tmp_path / "cut", easy_sft_checkpoint, algo, [*extra, f"rl.save_every_steps={every}"])
    did = crash_and_resume(monkeypatch, capsys, cfg, crash_at=first + per_epoch + 2)
    cut_dir = tmp_path / "cut" / f"{algo}-arith-s0"
    assert strip(read_jsonl(cut_dir / "metrics.jsonl")) == strip(records)
    assert same_model(ref_dir, cut_dir, 2)
    saved = (per_epoch + 1) // every * every  # the iteration's steps before its last partial checkpoint
    checkpoint = cut_dir / partial.FOLDER / "iteration-2" / f"step-{first + saved}"
    assert did == {"generate": 0, "loss": total - first - saved,
                   "printed": [f"{cut_dir}: resumed from {checkpoint} ({saved} gradient steps into iteration 2)"]}
    assert not (cut_dir / partial.FOLDER).exists()  # the run's end leaves no partial checkpoint


@pytest.mark.slow
def test_restem_epoch_choice_resumes_at_an_epochs_end(tmp_path, easy_sft_checkpoint, monkeypatch, capsys):
    """RestEM with the authors' epoch choice by validation (rl.restem_select=validation) and a fresh
    start each iteration (rl.restem_from=init) saves at each epoch's end, where the model the next
    epoch is measured against is the one saved: killed in the fourth epoch (which does not raise
    validation accuracy, so the third's model is put back), it resumes at the third's end (not at
    the fresh start) and keeps the epoch the uninterrupted run keeps."""
    extra = ["rl.restem_select=validation", "task.num_validation=40", "rl.epochs=4", "rl.iterations=1",
             "rl.eval_every=1", "rl.learning_rate=3e-5", "task.num_train=600", "rl.prompts_per_iter=16",
             "rl.restem_from=init"]
    train_rl(config(tmp_path / "ref", easy_sft_checkpoint, "restem", extra))
    ref_dir = tmp_path / "ref" / "restem-arith-s0"
    record = read_jsonl(ref_dir / "metrics.jsonl")[0]
    per_epoch = -(-record["train/num_units"] // 8)
    assert record["restem/epochs_kept"] == 3 and "restem/validation_accuracy_e4" in record  # the 4th undone

    cfg = config(tmp_path / "cut", easy_sft_checkpoint, "restem", [*extra, "rl.save_every_steps=1"])
    did = crash_and_resume(monkeypatch, capsys, cfg, crash_at=3 * per_epoch + 1)
    cut_dir = tmp_path / "cut" / "restem-arith-s0"
    assert strip(read_jsonl(cut_dir / "metrics.jsonl")) == strip([record])
    assert same_model(ref_dir, cut_dir, 1)
    assert did["generate"] == 0 and did["loss"] == per_epoch  # the fourth epoch only
    assert did["printed"][0].endswith(f"({3 * per_epoch} gradient steps into iteration 1)")


def test_latest_partial_checkpoint_and_clear(tmp_path):
    """Only a whole partial checkpoint (data and a committed step-N) of an iteration after the last
    regular checkpoint counts; the newest wins; clear removes those up to an iteration."""
    def make(it, step, data=True, committed=True):
        folder = partial.iteration_dir(tmp_path, it)
        name = f"step-{step}" if committed else f".tmp-step-{step}"
        (folder / name).mkdir(parents=True)
        (folder / name / "state.pt").write_bytes(b"")
        if data:
            partial.save_data(tmp_path, it, {"units": torch.zeros(0)})

    assert partial.latest(tmp_path, 0) is None
    make(2, 5)
    make(3, 9, data=False)          # its samples were never written whole
    make(4, 12, committed=False)    # the checkpoint was being written
    assert partial.latest(tmp_path, 0) == (2, partial.iteration_dir(tmp_path, 2) / "step-5")
    assert partial.latest(tmp_path, 2) is None  # a regular checkpoint at iteration 2 is further
    make(2, 7)
    assert partial.latest(tmp_path, 1)[1].name == "step-7"
    partial.clear(tmp_path, up_to=3)
    assert sorted(p.name for p in (tmp_path / partial.FOLDER).iterdir()) == ["iteration-4"]
    partial.clear(tmp_path, up_to=4)
    assert not (tmp_path / partial.FOLDER).exists()


def test_a_partial_checkpoint_of_another_number_of_processes_is_taken_up(tmp_path, easy_sft_checkpoint,
                                                                         monkeypatch, capsys):
    """A partial checkpoint holds each process's part of the iteration's running sums. Met by
    another number of processes, process 0 takes up their total: the rerun says so and logs what
    an uninterrupted run logs. (Taking rank 0's part alone would log 0.4 of each loss here.)"""
    train_rl(config(tmp_path / "ref", easy_sft_checkpoint, "grpo", ["rl.iterations=1"]))
    cfg = config(tmp_path / "cut", easy_sft_checkpoint, "grpo", ["rl.save_every_steps=1", "rl.iterations=1"])
    calls = {"n": 0}
    real = loop_module.minibatch_loss

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "minibatch_loss", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_rl(cfg)
    monkeypatch.setattr(loop_module, "minibatch_loss", real)
    found = partial.latest(tmp_path / "cut" / "grpo-arith-s0", 0)
    assert found is not None and found[0] == 1
    state = torch.load(found[1] / "state.pt", weights_only=True)
    (whole,) = state["within"]["per_process"]
    assert whole["sums"]["loss/policy"] != 0.0  # two steps taken: sums to split

    def part(x, f):
        return {k: part(v, f) for k, v in x.items()} if isinstance(x, dict) else x * f

    state["within"]["per_process"] = [part(whole, 0.4), part(whole, 0.6)]  # as if written by 2 processes
    torch.save(state, found[1] / "state.pt")
    capsys.readouterr()
    train_rl(cfg)
    err = capsys.readouterr().err
    assert f"{found[1]}: written by 2 process(es), this run has 1; their parts" in err
    assert "2 gradient steps into iteration 1" in err
    ref, cut = (read_jsonl(tmp_path / d / "grpo-arith-s0" / "metrics.jsonl") for d in ("ref", "cut"))
    assert len(ref) == 1 and strip(cut) == strip(ref)


def test_share_gives_process_0_the_total_on_another_number_of_processes():
    parts = [{"sums": {"loss/policy": 1.5, "loss/kl": 0.25}, "grading_timeouts": 2.0},
             {"sums": {"loss/policy": -0.5, "loss/kl": 0.75}, "grading_timeouts": 1.0}]
    assert partial.share(parts, 1, 2) == parts[1]  # the same processes: each its own
    assert partial.share(parts, 0, 1) == {"sums": {"loss/policy": 1.0, "loss/kl": 1.0}, "grading_timeouts": 3.0}
    assert partial.share(parts, 0, 3)["sums"]["loss/policy"] == 1.0
    assert partial.share(parts, 2, 3) == {"sums": {"loss/policy": 0.0, "loss/kl": 0.0}, "grading_timeouts": 0.0}
