"""The engine interface used by training, evaluation and the analyses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
