"""Inference engines: one interface (`Engine.generate`) for rollouts, evaluation and MC values."""

from vineppo.inference.base import Completion, Engine, SamplingParams, encode_prompt
from vineppo.inference.hf import HFEngine

ENGINES = ("hf", "vllm")


def make_engine(name: str, model, tokenizer, batch_size: int, path: str | None = None, bos: bool = False,
                vllm_memory: float = 0.3) -> Engine:
    """The engine named by the `engine` config key, sampling from `model`'s current weights.
    `path` (the model's hub name or folder) spares the vllm engine writing a temporary copy; `bos`
    puts the BOS token before text prompts (task.prompt_bos); `vllm_memory` is the vllm engine's
    share of the GPU's memory (the `vllm_memory` config key)."""
    from vineppo.config import ConfigError

    if name == "hf":
        return HFEngine(model, tokenizer, batch_size=batch_size, bos=bos)
    if name == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:  # vllm.py imports it only when an engine is made
            raise ConfigError("engine=vllm: vLLM is not installed here; make the vLLM environment with "
                              "`bash scripts/ensure_vllm_env.sh` and run with .venv-vllm/bin/python, or use engine=hf")
        from vineppo.inference.vllm import VLLMEngine

        return VLLMEngine.from_model(model, tokenizer, path=path, bos=bos, memory_fraction=vllm_memory)
    raise ConfigError(f"engine: unknown engine '{name}'; available: {', '.join(ENGINES)}")


__all__ = ["ENGINES", "Completion", "Engine", "HFEngine", "SamplingParams", "encode_prompt", "make_engine"]
