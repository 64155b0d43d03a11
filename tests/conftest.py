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
