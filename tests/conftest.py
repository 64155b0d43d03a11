import pytest

from vineppo.config import ModelConfig, TaskConfig
from vineppo.models import build_tiny_model, build_tokenizer
from vineppo.tasks import PROMPT, load_task


@pytest.fixture(scope="session")
def arith_task():
    return load_task(TaskConfig(name="arith", num_train=300, num_test=40, seed=0))


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer(arith_task):
    texts = [PROMPT.format(question=e["question"]) + e["solution"] for e in arith_task.train]
    tok = build_tokenizer(texts, vocab_size=300)
    model = build_tiny_model(ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                                         max_length=256), tok, seed=0)
    return model.eval(), tok


# A small problem family the tiny model learns in well under a minute on 2 cores.
EASY = ["task.num_sft=0", "task.flaw_rate=0", "sft.max_steps=700", "sft.eval_every=250", "task.ops=[add]", "task.min_steps=1", "task.max_steps=2", "task.max_operand=5", "task.max_start=9",
        "task.num_train=1500", "task.num_test=100", "model.hidden_size=64", "model.num_layers=2",
        "model.num_heads=2", "model.intermediate_size=256", "model.vocab_size=300",
        "sft.batch_size=32", "sft.learning_rate=3e-3", "sft.eval_every=0", "eval.num_samples=2",
        "eval.max_new_tokens=60"]


@pytest.fixture(scope="session")
def easy_sft_checkpoint(tmp_path_factory):
    """An SFT model on EASY trained to partial accuracy: the start of every RL test."""
    from vineppo.config import make_config
    from vineppo.sft import train_sft

    out = tmp_path_factory.mktemp("sft")
    cfg = make_config(EASY + [f"output_dir={out}", "sft.max_steps=250", "sft.save_every=1000",
                              "eval.num_samples=0", "task.num_test=50"])
    summary = train_sft(cfg, progress=False)
    return summary["final_model"]


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """The `smoke` sweep's outputs (SFT, PPO with every checkpoint kept, VinePPO), run as local jobs."""
    from vineppo.launch import launch

    out = tmp_path_factory.mktemp("smoke")
    result = launch(["sweep=smoke", f"output_dir={out}"], log=lambda *a, **k: None)
    assert result["errors"] == {}
    return out
