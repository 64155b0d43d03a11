"""Inference engines: one interface (`Engine.generate`) for rollouts, evaluation and MC values."""

from vineppo.inference.base import Completion, Engine, SamplingParams
from vineppo.inference.hf import HFEngine

ENGINES = ("hf",)


def make_engine(name: str, model, tokenizer, batch_size: int) -> Engine:
    """The engine named by the `engine` config key, wrapping the policy being trained or evaluated."""
    from vineppo.config import ConfigError

    if name == "hf":
        return HFEngine(model, tokenizer, batch_size=batch_size)
    raise ConfigError(f"engine: unknown engine '{name}'; available: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Completion", "Engine", "HFEngine", "SamplingParams", "make_engine"]
