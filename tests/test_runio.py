"""Atomic writes, JSONL with a torn last line, and checkpoints that are whole or absent."""

import os

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


def test_rng_state_restores_sampling():
    ckpt.seed_everything(3)
    state = ckpt.rng_state()
    a = torch.rand(3)
    ckpt.set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


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
