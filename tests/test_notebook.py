"""notebooks/value_estimates.ipynb runs top to bottom against the smoke sweep's PPO and VinePPO runs."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(run, monkeypatch) -> tuple[str, list, list[str]]:
    """Execute the notebook on `run`; its printed text, its cells and each code cell's output."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("VINEPPO_RUN", str(run))
    monkeypatch.setenv("VINEPPO_K", "2")
    monkeypatch.setenv("VINEPPO_TRUTH", "4")
    monkeypatch.setenv("VINEPPO_PROBLEMS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(ROOT / "notebooks" / "value_estimates.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in c.get("outputs", []))
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    return "\n".join(outputs.values()), nb.cells, list(outputs.values())


def blamed_steps(text: str) -> tuple[int, dict[str, int]]:
    """The followed solution's step count and the step each estimate blames, as the notebook prints them."""
    import ast
    import re

    m = re.search(r", (\d+) steps; most negative advantage at step: (\{.*\})", text)
    return int(m.group(1)), ast.literal_eval(m.group(2))


@pytest.mark.slow
def test_value_estimates_notebook_runs(smoke_runs, monkeypatch):
    text, cells, _ = run_notebook(smoke_runs / "ppo-arith-s0", monkeypatch)
    assert "checkpoint step-2" in text  # the run's last checkpoint was loaded
    assert "MC value (K=2)" in text and "ground truth (4 samples)" in text and "VinePPO advantage" in text
    assert "ranking accuracy" in text and "value network" in text
    # The run's own critic log, and the committed reference numbers beside it.
    assert "value/explained_variance" in text and "MC K=9" in text
    # Which step each estimate blames on the followed solution, and the committed blame shares.
    steps, blame = blamed_steps(text)
    assert set(blame) == {"VinePPO (MC)", "truth", "value network"} and all(0 <= i < steps for i in blame.values())
    assert "results/credit_blame_hard" in text and "value network, before the last step" in text
    images = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2


@pytest.mark.slow
def test_value_estimates_notebook_on_a_run_without_a_value_network(smoke_runs, monkeypatch):
    """A VinePPO run trains no value network: the notebook shows its MC estimates against the
    ground truth alone."""
    text, _, outputs = run_notebook(smoke_runs / "vineppo-arith-s0", monkeypatch)
    assert "MC value (K=2)" in text and "ground truth (4 samples)" in text
    table, summary = (next(o for o in outputs if key in o) for key in ("MC value (K=2)", "mean absolute error"))
    assert "value network" not in table and "value network" not in summary and "MC K=2" in summary
    steps, blame = blamed_steps(text)
    assert set(blame) == {"VinePPO (MC)", "truth"} and all(0 <= i < steps for i in blame.values())


def test_notebook_cells_have_ids():
    """nbformat 4.5 wants an id on every cell (a missing one is a warning now, an error later)."""
    import json

    nb = json.loads((ROOT / "notebooks" / "value_estimates.ipynb").read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), ids
