"""notebooks/value_estimates.ipynb runs top to bottom against the smoke sweep's PPO run."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_value_estimates_notebook_runs(smoke_runs, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("VINEPPO_RUN", str(smoke_runs / "ppo-arith-s0"))
    monkeypatch.setenv("VINEPPO_K", "2")
    monkeypatch.setenv("VINEPPO_TRUTH", "4")
    monkeypatch.setenv("VINEPPO_PROBLEMS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(ROOT / "notebooks" / "value_estimates.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in c.get("outputs", []))
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "checkpoint step-2" in text  # the run's last checkpoint was loaded
    assert "MC value (K=2)" in text and "ground truth (4 samples)" in text and "VinePPO advantage" in text
    assert "ranking accuracy" in text and "value network" in text
    # The run's own critic log, and the committed reference numbers beside it.
    assert "value/explained_variance" in text and "MC K=9" in text
    # Which step each estimate blames on the followed solution, and the committed blame shares.
    assert "most negative advantage at step: {'VinePPO (MC)': " in text
    assert "results/credit_blame_hard" in text and "value network, before the last step" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2


def test_notebook_cells_have_ids():
    """nbformat 4.5 wants an id on every cell (a missing one is a warning now, an error later)."""
    import json

    nb = json.loads((ROOT / "notebooks" / "value_estimates.ipynb").read_text())
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    ids = [c.get("id") for c in nb["cells"]]
    assert all(ids) and len(set(ids)) == len(ids), ids
