"""The engine interface used by training, evaluation and the analyses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


def encode_prompt(tokenizer, text: str, bos: bool = False) -> list[int]:
    """Token ids of a text prompt: no special tokens, but with `bos` the tokenizer's BOS id first
    (what `tokenizer(text)` and vLLM add for Llama-family tokenizers). At the id level, not by
    writing the BOS token into the text: a tokenizer may encode the text after a special token
    differently (SentencePiece's leading space)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if bos:
        if tokenizer.bos_token_id is None:
            from vineppo.config import ConfigError

            raise ConfigError("task.prompt_bos=true, but the tokenizer has no beginning-of-sequence token")
        ids = [tokenizer.bos_token_id, *ids]
    return ids


@dataclass
class SamplingParams:
    n: int = 1
    """Completions per prompt."""
    temperature: float = 1.0
    """0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    max_new_tokens: int = 256
    """A completion that reaches this length finishes with reason 'length'."""
    stop: list[str] = field(default_factory=list)
    """Stop strings: the text ends before the first one; finish reason 'stop'."""
    seed: int = 0
    """Seed of the sampler (the same seed, model and prompts give the same samples)."""


@dataclass
class Completion:
    text: str
    """Decoded completion (without EOS, cut before a stop string)."""
    token_ids: list[int]
    """Generated token ids, EOS included when the model produced it."""
    logprobs: list[float]
    """log pi(token | prefix) at the sampling temperature, one per token id."""
    finish_reason: str
    """'stop' (EOS or a stop string) or 'length'."""


class Engine(Protocol):
    """What every engine offers (`hf`, `vllm`); a structural type, so the methods have no body."""

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt, in prompt order."""

    def load_weights(self, model) -> None:
        """Sample from `model`'s current weights from now on (called after each policy update)."""
