"""Episodes and their token layout: what the policy-iteration loop trains on.

A sequence is prompt + response. `logits[:, j]` predicts token j+1, so response token t of an
episode with P prompt tokens sits at column j = P - 1 + t of every per-token tensor below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Episode:
    group: int
    """Index of the prompt within the iteration (episodes of one prompt share it)."""
    example: dict[str, str]
    prompt: str
    prompt_ids: list[int]
    response_ids: list[int]
    response: str
    finish_reason: str
    reward: float
    advantages: list[float] = field(default_factory=list)
    """One advantage per response token (set by the algorithm)."""


def token_char_starts(tokenizer, ids: list[int]) -> list[int]:
    """Character offset in the decoded response where each token starts.

    Computed by decoding growing prefixes, so it agrees exactly with `tokenizer.decode(ids)`.
    A token whose bytes complete a multi-byte character starts where that character starts.
    """
    starts, prev = [], ""
    for i in range(len(ids)):
        starts.append(len(prev))
        text = tokenizer.decode(ids[:i + 1], skip_special_tokens=True)
        if not text.endswith("\ufffd"):
            prev = text
    return starts


def token_step_index(char_starts: list[int], step_offsets: list[int]) -> list[int]:
    """Step index of each token: the step containing the token's first character."""
    out, s = [], 0
    for c in char_starts:
        while s + 1 < len(step_offsets) and step_offsets[s + 1] <= c:
            s += 1
        out.append(s)
    return out


def collate_episodes(episodes: list[Episode], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded prompt+response ids, attention mask, next-token targets, response mask, advantages."""
    width = max(len(e.prompt_ids) + len(e.response_ids) for e in episodes)
    n = len(episodes)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width - 1))
    advantages = torch.zeros((n, width - 1))
    rewards = torch.zeros(n)
    for i, e in enumerate(episodes):
        ids = e.prompt_ids + e.response_ids
        p, r = len(e.prompt_ids), len(e.response_ids)
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention[i, :len(ids)] = 1
        mask[i, p - 1:p - 1 + r] = 1
        if e.advantages:
            advantages[i, p - 1:p - 1 + r] = torch.tensor(e.advantages)
        rewards[i] = e.reward
    return {"input_ids": input_ids, "attention_mask": attention, "targets": input_ids[:, 1:],
            "mask": mask, "advantages": advantages, "rewards": rewards}


def trim_padding(mb: dict[str, torch.Tensor], *token_level: torch.Tensor):
    """Cut a right-padded mini-batch to its own longest sequence: the batch is padded to the longest
    episode of the whole iteration, and a mini-batch need not pay for it. Sequence-wide tensors
    (width W) keep w columns, token-level ones (width W - 1) keep w - 1; the causal model and the
    masked means give the same values on the cut tensors."""
    full = mb["input_ids"].shape[1]
    w = int(mb["attention_mask"].sum(1).max())

    def cut(v: torch.Tensor) -> torch.Tensor:
        if v.dim() != 2:
            return v
        return v[:, :w] if v.shape[1] == full else v[:, :w - 1]

    return {k: cut(v) for k, v in mb.items()}, *(cut(t) for t in token_level)


def token_logprobs(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor:
    """log pi(target token) at the sampling temperature, `[batch, width - 1]`."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return logp.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)
