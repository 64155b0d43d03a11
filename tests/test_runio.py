"""Atomic writes, JSONL with a torn last line, and checkpoints that are whole or absent."""

import os

import pytest
import torch

from vineppo import checkpoint as ckpt
from vineppo.runio import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl, truncate_jsonl


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "a" / "f.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == '{"x":2}'
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]  # no temp files left


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")

    class Boom:
        def __str__(self):
            raise RuntimeError

    try:
        atomic_write_text(path, Boom())  # type: ignore[arg-type]
    except Exception:
        pass
    assert path.read_text() == "old"
    assert len(os.listdir(tmp_path)) == 1


def test_jsonl_ignores_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"step": 1})
    append_jsonl(path, {"step": 2})
    with path.open("a") as f:
        f.write('{"step": 3, "lo')  # a writer killed mid-line
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    truncate_jsonl(path, 1)
    assert read_jsonl(path) == [{"step": 1}]
    assert path.read_text() == '{"step": 1}\n'


def test_checkpoint_roundtrip_and_rotation(tmp_path, tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    for step in (10, 20, 30):
        ckpt.save_checkpoint(tmp_path, step, model, tok, {"elapsed_s": step}, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step-20", "step-30"]
    (tmp_path / ".tmp-step-40").mkdir()  # a checkpoint interrupted before its rename
    (tmp_path / "step-50").mkdir()  # a folder without state.pt is not a checkpoint
    assert ckpt.latest_checkpoint(tmp_path).name == "step-30"
    state = ckpt.load_state(tmp_path / "step-30")
    assert state["step"] == 30 and state["elapsed_s"] == 30


def test_export_model_links_model_files_without_training_state(tmp_path, tiny_model_and_tokenizer):
    """An RL run's final/: the checkpoint's model and tokenizer (same logits), not its state.pt; the
    weights are the checkpoint's own file (a hard link), and they outlive the checkpoint's rotation."""
    from vineppo.models import load_model, load_tokenizer

    model, tok = tiny_model_and_tokenizer
    step = ckpt.save_checkpoint(tmp_path / "checkpoints", 1, model, tok, {}, keep=1)
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "stale.bin").write_text("from an earlier export")
    final = ckpt.export_model(step, tmp_path / "final")
    assert sorted(p.name for p in final.iterdir()) == sorted(p.name for p in step.iterdir() if p.name != "state.pt")
    assert os.path.samefile(final / "model.safetensors", step / "model.safetensors")
    ckpt.save_checkpoint(tmp_path / "checkpoints", 2, model, tok, {}, keep=1)
    assert not step.exists() and not (tmp_path / ".tmp-final").exists()
    ids = torch.tensor([tok("Question: Ava has 3 apples.", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(load_model(final)(input_ids=ids).logits, model(input_ids=ids).logits)
    assert load_tokenizer(final).encode("Ava has 12") == tok.encode("Ava has 12")


def test_rng_state_restores_sampling(tmp_path):
    """Every generator the loop draws from (python, numpy, torch) replays after a save and load."""
    import random

    import numpy as np

    ckpt.seed_everything(3)
    state = ckpt.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    (tmp_path / "step-1").mkdir()
    torch.save({"rng": state}, tmp_path / "step-1" / "state.pt")
    ckpt.seed_everything(5)
    ckpt.set_rng_state(ckpt.load_state(tmp_path / "step-1")["rng"])
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_state_pt_cannot_run_code_and_old_checkpoints_load(tmp_path):
    """state.pt is read with weights_only=True: a file whose unpickling would call a function (here
    os.getcwd, standing in for anything) is refused, not run. Checkpoints written before numpy's
    key array was kept as a list still load."""
    import pickle

    import numpy as np

    class Payload:
        def __reduce__(self):
            return (os.getcwd, ())

    (tmp_path / "step-1").mkdir()
    torch.save({"step": 1, "x": Payload()}, tmp_path / "step-1" / "state.pt")
    with pytest.raises(pickle.UnpicklingError, match="getcwd"):
        ckpt.load_state(tmp_path / "step-1")
    ckpt.seed_everything(3)
    old = {"python": __import__("random").getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    a = np.random.rand(2)
    (tmp_path / "step-2").mkdir()
    torch.save({"step": 2, "rng": old}, tmp_path / "step-2" / "state.pt")
    ckpt.set_rng_state(ckpt.load_state(tmp_path / "step-2")["rng"])
    assert np.array_equal(np.random.rand(2), a)


def test_git_commit_dirty_only_for_code(tmp_path):
    """Rewriting or adding a reference output under results/ keeps the commit clean; a new or
    changed code file marks it -dirty; outside a repository there is no commit."""
    import shutil
    import subprocess

    import pytest

    from vineppo.runio import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "src").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "results" / "r.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path / "src") == head
    (tmp_path / "results" / "r.json").write_text('{"x": 2}\n')
    (tmp_path / "results" / "new.json").write_text("{}\n")
    assert git_commit(tmp_path / "src") == head
    (tmp_path / "out" / "run").mkdir(parents=True)  # a run folder outside runs/: not code
    (tmp_path / "out" / "run" / "config.yaml").write_text("seed: 0\n")
    assert git_commit(tmp_path / "src") == head
    (tmp_path / "src" / "b.py").write_text("y = 1\n")  # a new script, not committed yet
    assert git_commit(tmp_path / "src") == head + "-dirty"
    (tmp_path / "src" / "b.py").unlink()
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path / "src") == head + "-dirty"
    outside = tmp_path.parent / (tmp_path.name + "-bare")
    outside.mkdir()
    assert git_commit(outside) is None
