"""SFT end to end on CPU: the loss falls, accuracy rises above a floor, and a killed run resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vineppo.config import make_config
from vineppo.runio import read_jsonl
from vineppo.sft import batch_indices, collate, lr_lambda, train_sft

from .conftest import EASY

# EASY: see conftest. Floor: greedy accuracy >= 0.4 after 500 steps (an untrained model scores 0).
ACCURACY_FLOOR = 0.4


def test_collate_masks_prompt_and_padding():
    batch = collate([([5, 6, 7, 8], 2), ([9, 10, 11], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 11, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 10, 11, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


def test_batches_cover_each_epoch_once():
    n, bs = 10, 3
    epoch0 = [i for s in range(3) for i in batch_indices(s, n, bs, seed=1)]
    assert len(epoch0) == len(set(epoch0)) == 9  # 3 full batches, no repeats
    assert batch_indices(4, n, bs, seed=1) == batch_indices(4, n, bs, seed=1)
    assert batch_indices(3, n, bs, seed=1) != batch_indices(0, n, bs, seed=1)  # a new permutation


def test_lr_schedule_warmup_then_cosine_floor():
    total = 100
    assert lr_lambda(0, total, 0.1) == pytest.approx(0.1)
    assert lr_lambda(9, total, 0.1) == pytest.approx(1.0)
    assert lr_lambda(100, total, 0.1) == pytest.approx(0.1)


AUTHORS = [r"task.prompt_template=[MATH_TASK] Problem:\n{question}\n\nSolution:",
           r"task.response_template=\n{solution}\n", "task.prompt_bos=true"]
"""The paper preset's prompt format (the authors' SFT format), as typed on the command line."""


def test_encode_examples_in_the_authors_format(tiny_model_and_tokenizer):
    """BOS + prompt, then the target wrapped in newlines, then EOS; the loss starts after the prompt."""
    from vineppo.sft import encode_examples
    from vineppo.tasks import PromptFormat

    tok = tiny_model_and_tokenizer[1]
    fmt = PromptFormat.of(make_config(["preset=paper"]).task)
    ex = {"id": "a", "question": "Ava has 3 apples. She gets 4 more. How many?", "solution": "3 + 4 = 7\n#### 7"}
    [(ids, n_prompt)] = encode_examples([ex], tok, 256, fmt)

    def enc(text):
        return tok(text, add_special_tokens=False)["input_ids"]

    prompt = [tok.bos_token_id, *enc(f"[MATH_TASK] Problem:\n{ex['question']}\n\nSolution:")]
    assert ids == prompt + enc("\n3 + 4 = 7\n#### 7\n") + [tok.eos_token_id] and n_prompt == len(prompt)


@pytest.mark.slow
def test_the_prompt_format_a_model_learned_is_the_one_it_is_run_with(tmp_path):
    """SFT in the authors' format; its evaluations and RL prompt it that way. Prompted in another
    format (the tiny preset's, as this code did before task.prompt_template) the same model
    solves far fewer problems: the reason the paper preset gives their checkpoints their format."""
    from vineppo.evaluate import evaluate
    from vineppo.inference import HFEngine
    from vineppo.loop import train_rl
    from vineppo.models import load_model, load_tokenizer
    from vineppo.tasks import TINY_FORMAT, PromptFormat, load_task

    from .test_loop import RL

    cfg = make_config(EASY + AUTHORS + [f"output_dir={tmp_path}", "sft.max_steps=500", "sft.save_every=1000",
                                        "eval.num_samples=0", "task.num_test=50"])
    summary = train_sft(cfg, progress=False)
    assert summary["test_greedy_accuracy"] >= ACCURACY_FLOOR, summary
    model, tok = load_model(summary["final_model"]), load_tokenizer(summary["final_model"])
    test = load_task(cfg.task).test
    own = evaluate(HFEngine(model, tok, bos=True), test, "arith", max_new_tokens=60, progress=False,
                   fmt=PromptFormat.of(cfg.task))
    other = evaluate(HFEngine(model, tok), test, "arith", max_new_tokens=60, progress=False, fmt=TINY_FORMAT)
    assert own["greedy_accuracy"] == summary["test_greedy_accuracy"]
    assert other["greedy_accuracy"] < own["greedy_accuracy"] / 2, (own["greedy_accuracy"], other["greedy_accuracy"])
    rl = train_rl(make_config(EASY + AUTHORS + RL + [f"rl.init={summary['final_model']}", "rl.algo=vineppo",
                                                     f"output_dir={tmp_path}"]))
    records = read_jsonl(tmp_path / "vineppo-arith-s0" / "metrics.jsonl")
    # Sampled in its own format, the policy solves problems from the start (0.5 and 0.25 of the
    # two iterations' episodes here; prompted in the tiny format it solves 0.14 greedily).
    assert sum(r["train/reward"] for r in records) / len(records) > 0.25 and rl["test_greedy_accuracy"] > 0.25
    # Every model folder records its format; RL or evaluation in another format is refused by name.
    from vineppo.cli import cmd_eval
    from vineppo.config import ConfigError
    from vineppo.tasks import FORMAT_FILE

    for folder in (summary["final_model"], rl["final_model"]):
        assert json.loads((Path(folder) / FORMAT_FILE).read_text())["task.prompt_bos"] is True
        with pytest.raises(ConfigError, match="was trained in another prompt format"):
            cmd_eval(EASY + [f"model.name_or_path={folder}", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"rl.init=.* was trained in another prompt format"):
        train_rl(make_config(EASY + RL + [f"rl.init={summary['final_model']}", f"output_dir={tmp_path / 'other'}"]))


@pytest.mark.slow
def test_sft_learns_easy_arith(tmp_path):
    cfg = make_config(EASY + [f"output_dir={tmp_path}", "sft.max_steps=500", "sft.log_every=20",
                              "sft.save_every=1000"])
    summary = train_sft(cfg, progress=False)
    losses = [r["train/loss"] for r in read_jsonl(tmp_path / "sft-arith-s0" / "metrics.jsonl")
              if "train/loss" in r]
    assert losses[-1] < 0.5 * losses[0]
    assert summary["test_greedy_accuracy"] >= ACCURACY_FLOOR, summary
    result = json.loads((tmp_path / "sft-arith-s0" / "eval" / "test.json").read_text())
    assert result["num_problems"] == 100 and len(result["problems"]) == 100
    # Accuracy recomputed from the per-problem records equals the reported one.
    assert result["greedy_accuracy"] == sum(p["greedy_correct"] for p in result["problems"]) / 100
    # The final model loads back as an ordinary HF checkpoint.
    assert (tmp_path / "sft-arith-s0" / "final" / "tokenizer.json").exists()


def _run_sft(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vineppo.cli", "sft", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_killed_sft_resumes_to_identical_result(tmp_path):
    common = EASY + ["sft.max_steps=60", "sft.save_every=20", "sft.log_every=5", "eval.num_samples=0",
                     "task.num_test=20", "num_threads=1"]
    ref = _run_sft(common + [f"output_dir={tmp_path / 'ref'}"])
    assert ref.wait(timeout=600) == 0

    run_dir = tmp_path / "killed" / "sft-arith-s0"
    proc = _run_sft(common + [f"output_dir={tmp_path / 'killed'}"])
    deadline = time.time() + 600
    while not (run_dir / "checkpoints" / "step-40").exists():
        assert proc.poll() is None, "run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists()
    resumed = _run_sft(common + [f"output_dir={tmp_path / 'killed'}"])
    assert resumed.wait(timeout=600) == 0

    def metrics(root):
        return [{k: v for k, v in r.items() if not k.startswith("time/")}
                for r in read_jsonl(root / "sft-arith-s0" / "metrics.jsonl")]

    assert metrics(tmp_path / "killed") == metrics(tmp_path / "ref")
    a = load_file(Path(tmp_path / "ref" / "sft-arith-s0" / "final" / "model.safetensors"))
    b = load_file(Path(run_dir / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resumed_sft_refuses_changed_settings(tmp_path):
    """A stopped SFT run continues only under its recorded settings (cadence, threads may change):
    a changed learning rate is named with both values, and nothing of the run is overwritten."""
    from vineppo.config import ConfigError

    base = EASY + [f"output_dir={tmp_path}", "sft.max_steps=20", "sft.save_every=10", "eval.num_samples=0",
                   "task.num_test=10", "task.num_train=100"]
    first = train_sft(make_config(base), progress=False)
    run = tmp_path / "sft-arith-s0"
    (run / "summary.json").unlink()  # as if stopped after its last checkpoint
    config_before, metrics_before = (run / "config.yaml").read_text(), (run / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"sft.learning_rate: 0.003 there, 0.001 now"):
        train_sft(make_config(base + ["sft.learning_rate=1e-3"]), progress=False)
    assert (run / "config.yaml").read_text() == config_before and (run / "metrics.jsonl").read_text() == metrics_before
    summary = train_sft(make_config(base + ["sft.log_every=5", "num_threads=1"]), progress=False)
    assert summary["train_steps"] == 20 and summary["final_train_loss"] == first["final_train_loss"]


def test_gradient_checkpointing_gives_the_same_sft_run(tmp_path, monkeypatch):
    """model.gradient_checkpointing in SFT: activations recomputed, the same losses and weights."""
    import vineppo.sft
    from vineppo.models import is_checkpointing

    enabled, real = [], vineppo.sft.enable_gradient_checkpointing
    monkeypatch.setattr(vineppo.sft, "enable_gradient_checkpointing", lambda m: (enabled.append(m), real(m)))
    out = {}
    for gc in (False, True):
        cfg = make_config(EASY + [f"output_dir={tmp_path / str(gc)}", "sft.max_steps=12", "sft.log_every=4",
                                  "sft.eval_every=0", "task.num_test=8", f"model.gradient_checkpointing={gc}"])
        summary = train_sft(cfg, progress=False)
        losses = [r["train/loss"] for r in read_jsonl(Path(summary["final_model"]).parent / "metrics.jsonl")
                  if "train/loss" in r]
        out[gc] = losses, load_file(Path(summary["final_model"]) / "model.safetensors")
    assert len(enabled) == 1 and is_checkpointing(enabled[0])  # the second run's model only
    assert len(out[True][0]) == 3 and out[True][0] == out[False][0]
    assert all(torch.equal(out[True][1][k], out[False][1][k]) for k in out[False][1])


def test_sft_epochs_set_the_steps():
    """sft.epochs: ceil(epochs * examples / batch) steps, hand-worked: the authors' 2 epochs of
    GSM8K's 7,473 problems at batch 64 are 234 steps; without it, sft.max_steps."""
    from vineppo.sft import sft_steps

    assert sft_steps(make_config(["preset=paper"]).sft, 7473) == 234
    assert sft_steps(make_config(["sft.epochs=1", "sft.batch_size=4"]).sft, 10) == 3
    assert sft_steps(make_config(["sft.max_steps=9"]).sft, 10) == 9


def test_bf16_sft_trains_fp32_weights(tmp_path, tiny_model_and_tokenizer, arith_task):
    """model.dtype=bfloat16 in SFT (the paper preset's): the passes run in bf16, the weights and
    AdamW's state stay fp32. At the authors' rate (1e-5) three steps move most weights by less than
    half a bf16 step, which bf16 weights would have dropped; here they are kept (the final model is
    fp32 and has moved), and sft.epochs sets the steps (12 examples, batch 4, 1 epoch: 3)."""
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    rows = tmp_path / "data.jsonl"
    rows.write_text("".join(json.dumps({"question": e["question"], "answer": e["solution"]}) + "\n"
                            for e in arith_task.train[:12]))
    cfg = make_config([f"output_dir={tmp_path}", "task.name=gsm8k", f"task.train_path={rows}", f"task.test_path={rows}",
                       f"model.name_or_path={tmp_path / 'base'}", "model.dtype=bfloat16", "sft.learning_rate=1e-5",
                       "sft.weight_decay=0", "sft.warmup_ratio=0", "sft.epochs=1", "sft.batch_size=4", "sft.eval_every=0",
                       "eval.num_samples=0", "eval.max_new_tokens=4", "device=cpu"])
    summary = train_sft(cfg, progress=False)
    assert summary["train_steps"] == 3
    start, final = load_file(tmp_path / "base" / "model.safetensors"), load_file(Path(summary["final_model"]) / "model.safetensors")
    assert {t.dtype for t in final.values()} == {torch.float32}
    moved = below_bf16 = total = 0
    for k, w in start.items():
        delta = (final[k] - w).abs()
        half_step = w.abs() * 2.0 ** -9  # half of bf16's spacing at w
        moved += int((delta > 0).sum())
        below_bf16 += int(((delta > 0) & (delta < half_step)).sum())
        total += w.numel()
    assert moved > 0.5 * total and below_bf16 > 0.5 * moved  # kept changes bf16 weights would have lost


def test_sft_resolves_device_auto(tmp_path, monkeypatch):
    """device=auto (the paper preset's) is resolved once, to the GPU where there is one: every
    tensor then goes to that device (the string 'auto' reached tensor.to() before, which fails on
    a GPU machine). Here resolution is watched and gives the CPU."""
    import vineppo.sft
    from vineppo.models import resolve_device

    asked = []
    monkeypatch.setattr(vineppo.sft, "resolve_device", lambda d: (asked.append(d), resolve_device(d))[1])
    cfg = make_config(EASY + [f"output_dir={tmp_path}", "device=auto", "sft.max_steps=2", "sft.eval_every=0",
                              "task.num_test=4", "eval.num_samples=0"])
    assert train_sft(cfg, progress=False)["train_steps"] == 2 and asked == ["auto"]
