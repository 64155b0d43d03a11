"""analysis/kl_exact.py on the smoke sweep's runs (every checkpoint kept)."""

import json

import pandas as pd
import pytest

from tests.analysis.test_value_quality_script import load_script


@pytest.mark.slow
def test_kl_exact_script_on_smoke_outputs(smoke_runs, tmp_path):
    script = load_script("kl_exact")
    out = tmp_path / "kl"
    assert script.main([str(smoke_runs), "--out", str(out), "--problems", "3", "--samples", "2"]) == 0
    for f in ("kl.csv", "table.csv", "provenance.json", "kl_exact.png", "kl_exact.pdf"):
        assert (out / f).stat().st_size > 0, f
    rows = pd.read_csv(out / "kl.csv")
    # Both RL runs (the SFT folder has no RL checkpoints), the start point and each kept checkpoint,
    # at the policy's and at the reference's samples.
    assert sorted(rows["method"].unique()) == ["ppo", "vineppo"]
    assert sorted(rows["iteration"].unique()) == [0, 1, 2]
    assert len(rows) == 2 * 3 * 2
    start = rows[rows["iteration"] == 0]  # the policy is the reference: every KL term is 0
    assert (start[["sampled", "expected", "kl_tempered", "kl"]].abs() < 1e-6).all().all()
    assert (rows["kl_tempered"] >= -1e-7).all() and (rows["kl"] >= -1e-7).all() and (rows["entropy"] >= 0).all()
    # At the reference's samples the states are fixed: those rows hold the same token count throughout.
    assert rows[rows["states"] == "reference's samples"].groupby("run")["tokens"].nunique().eq(1).all()
    # The logged number beside checkpoint c is the one of iteration c + 1, which started from it.
    for run, g in rows[rows["states"] == "own samples"].groupby("run"):
        logged = {r["iteration"]: r.get("train/kl_ref") for r in map(json.loads, (smoke_runs / run / "metrics.jsonl").open())}
        for _, r in g.iterrows():
            want = logged.get(r["iteration"] + 1)
            assert (pd.isna(r["logged_kl_ref"]) if want is None else r["logged_kl_ref"] == pytest.approx(want))
    table = pd.read_csv(out / "table.csv")
    assert (table["seeds"] == 1).all() and len(table) == len(rows)
    assert script.main([str(out), "--out", str(out), "--replot"]) == 0
    assert script.main([str(out), "--out", str(tmp_path / "again"), "--replot"]) == 0
    assert pd.read_csv(tmp_path / "again" / "table.csv").equals(table)
    assert script.main([str(tmp_path), "--out", str(tmp_path / "r"), "--replot"]) == 2  # no CSV there
    assert pd.read_csv(out / "table.csv").equals(table)
    assert script.main([str(smoke_runs / "sft-arith"), "--out", str(tmp_path / "x")]) == 2  # no RL runs
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "x"), "--every", "0"]) == 2
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "e2"), "--every", "2", "--problems", "2"]) == 0
    assert sorted(pd.read_csv(tmp_path / "e2" / "kl.csv")["iteration"].unique()) == [0, 2]


def test_responses_are_sampled_in_the_runs_prompt_format(tiny_model_and_tokenizer, arith_task, monkeypatch):
    """The KL is measured on responses to prompts in the run's own format (task.prompt_template,
    task.prompt_bos: the paper preset's BOS + `[MATH_TASK] Problem:`), cut at its stop strings, as
    training samples them; the tiny format gives the tiny preset's prompt ids as before."""
    from vineppo.config import make_config
    from vineppo.inference import HFEngine
    from vineppo.tasks import PROMPT, TINY_FORMAT, PromptFormat

    samplers, generate = [], HFEngine.generate
    monkeypatch.setattr(HFEngine, "generate", lambda self, prompts, params: (
        samplers.append((params.temperature, params.top_p, params.stop)), generate(self, prompts, params))[1])
    model, tok = tiny_model_and_tokenizer
    script = load_script("kl_exact")
    rl = make_config(["rl.max_new_tokens=12"]).rl
    examples = arith_task.test[:2]
    fmt = PromptFormat("[MATH_TASK] Problem:\n{question}\n\nSolution:", bos=True, stop=("\n",))
    batch = script.sampled_batch(model, tok, examples, rl, 2, 0, fmt)
    for row, ex in zip(batch["input_ids"], [e for e in examples for _ in range(2)], strict=True):
        want = [tok.bos_token_id] + tok(fmt.prompt(ex["question"]), add_special_tokens=False)["input_ids"]
        assert row[:len(want)].tolist() == want
    assert samplers == [(0.6, 0.9, ["\n"])]  # the run's temperature, top-p and stop strings
    tiny = script.sampled_batch(model, tok, examples, rl, 2, 0, TINY_FORMAT)
    want = tok(PROMPT.format(question=examples[0]["question"]), add_special_tokens=False)["input_ids"]
    assert tiny["input_ids"][0, :len(want)].tolist() == want and want[0] != tok.bos_token_id
