"""Episodes and their token layout: what the policy-iteration loop trains on.

A sequence is prompt + response. `logits[:, j]` predicts token j+1, so response token t of an
episode with P prompt tokens sits at column j = P - 1 + t of every per-token tensor below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vineppo import shared_prefix as prefix
from vineppo.inference.base import Completion


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
    logprobs: list[float] = field(default_factory=list)
    """The sampler's log pi_old of each response token at the sampling temperature (may be empty)."""
    values: list[float] = field(default_factory=list)
    """VinePPO: the MC value of the state that begins each response token's step (may be empty)."""


def response_tokens(c: Completion, tokenizer, rule: str = "sampled") -> tuple[list[int], list[float]]:
    """The response token ids an episode trains on (rl.response_tokens) and the sampler's log-probs
    where they are those tokens': 'sampled', the engine's ids; 'text', the text encoded as SFT
    encodes a target, plus EOS where it finished with 'stop' (no log-probs: recomputed)."""
    if rule == "sampled":
        return c.token_ids, c.logprobs
    ids = tokenizer(c.text, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id] if c.finish_reason == "stop" else ids, []


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
    """Right-padded prompt+response ids, attention mask, next-token targets, response mask, advantages;
    and `sampler_logp`, the sampler's log-probs in the same layout, when every episode carries them
    (likewise `mc_values`, VinePPO's value of each token's state)."""
    width = max(len(e.prompt_ids) + len(e.response_ids) for e in episodes)
    n = len(episodes)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, width - 1))
    advantages = torch.zeros((n, width - 1))
    rewards = torch.zeros(n)
    has_logprobs = all(len(e.logprobs) == len(e.response_ids) for e in episodes)
    sampler_logp = torch.zeros((n, width - 1))
    has_values = all(len(e.values) == len(e.response_ids) for e in episodes) and any(e.values for e in episodes)
    mc_values = torch.zeros((n, width - 1))
    for i, e in enumerate(episodes):
        ids = e.prompt_ids + e.response_ids
        p, r = len(e.prompt_ids), len(e.response_ids)
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention[i, :len(ids)] = 1
        mask[i, p - 1:p - 1 + r] = 1
        if e.advantages:
            advantages[i, p - 1:p - 1 + r] = torch.tensor(e.advantages)
        if has_logprobs and r:
            sampler_logp[i, p - 1:p - 1 + r] = torch.tensor(e.logprobs)
        if has_values and r:
            mc_values[i, p - 1:p - 1 + r] = torch.tensor(e.values)
        rewards[i] = e.reward
    batch = {"input_ids": input_ids, "attention_mask": attention, "targets": input_ids[:, 1:],
             "mask": mask, "advantages": advantages, "rewards": rewards}
    if has_logprobs:
        batch["sampler_logp"] = sampler_logp
    if has_values:
        batch["mc_values"] = mc_values
    return batch


def trim_padding(mb: dict[str, torch.Tensor], *token_level: torch.Tensor):
    """Cut a right-padded mini-batch to its own longest sequence: the batch is padded to the longest
    episode of the whole iteration, and a mini-batch need not pay for it. Sequence-wide tensors
    (width W) keep w columns, token-level ones (width W - 1) keep w - 1; the causal model and the
    masked means give the same values on the cut tensors."""
    full = mb["input_ids"].shape[1]
    w = int(mb["attention_mask"].sum(1).max())

    def cut(v: torch.Tensor | None) -> torch.Tensor | None:
        if v is None or v.dim() != 2:
            return v
        return v[:, :w] if v.shape[1] == full else v[:, :w - 1]

    return {k: cut(v) for k, v in mb.items()}, *(cut(t) for t in token_level)


def token_logprobs(model, batch: dict[str, torch.Tensor], temperature: float,
                   shared_prefix: bool = True) -> torch.Tensor:
    """log pi(target token) at the sampling temperature, `[batch, width - 1]`.

    No attention mask: the batch is right-padded, so under causal attention no real token sees a
    pad and positions run 0, 1, ... as they would with the mask; without it attention takes the
    faster causal kernel. Only the response is scored: logits (and their softmax, forward and
    backward) start at the batch's first response column, where the model takes `logits_to_keep`;
    the columns before it are 0. Values outside `mask` (prompt, padding) are meaningless and always
    masked out. With `shared_prefix`, a batch holding several samples of a prompt encodes that
    prompt once (shared_prefix.py): the same values, less work."""
    if shared_prefix and "mask" in batch and prefix.supports(model):
        logp = prefix.logprobs(model, batch, temperature)
        if logp is not None:
            return logp
    width = batch["input_ids"].shape[1]
    keeps = "logits_to_keep" in prefix.forward_params(model)  # transformers' causal LMs since 4.50
    first = first_response_column(batch["mask"]) if "mask" in batch and keeps else 0
    # The last width - first positions: logits for columns first .. width - 2, then the end.
    keep = {"logits_to_keep": width - first} if first > 0 else {}
    logits = model(input_ids=batch["input_ids"], **keep).logits[:, :-1]
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp.gather(-1, batch["targets"][:, first:].unsqueeze(-1)).squeeze(-1)
    return torch.nn.functional.pad(logp, (first, 0)) if first > 0 else logp


def first_response_column(mask: torch.Tensor) -> int:
    """The first column of `[batch, width - 1]` token tensors that any row's response occupies."""
    cols = mask.any(0).nonzero()
    return int(cols[0]) if len(cols) else 0


@torch.no_grad()
def chunked(fn, batch: dict[str, torch.Tensor], chunk: int, world=None, lockstep: bool = False,
            device: torch.device | str | None = None) -> torch.Tensor:
    """`fn(sub-batch)` -> `[rows, width - 1]` over the whole batch, `chunk` rows at a time in order
    of length, each chunk cut to its own longest row: a no-grad pass over an iteration's episodes
    then pays for little padding and holds one chunk's activations. With a `world` of W processes
    (each holding the same batch), process r computes chunks r, r + W, ... and a sum over
    processes fills in the rest: the same result at 1/W of the work each. With `lockstep` (a
    ZeRO-3 model, whose forward is collective) every process runs as many chunks as the busiest
    one, a spare one running the last (shortest) chunk again and dropping it, and each chunk takes
    the shared-prefix path only where every process's does (`shared_prefix.lockstep`). With a
    `device`, each chunk moves there for `fn` and its result comes back to the batch's device: the
    iteration's episodes stay in host memory and the GPU holds one chunk at a time."""
    lengths = batch["attention_mask"].sum(1)
    order = lengths.argsort(descending=True, stable=True)
    out = torch.zeros(batch["mask"].shape, device=batch["mask"].device)
    rank, size = (world.rank, world.world_size) if world is not None else (0, 1)
    starts = list(range(0, len(order), chunk))
    mine = starts[rank::size]
    spare = -(-len(starts) // size) - len(mine) if lockstep else 0  # passes to match the busiest process
    with prefix.lockstep(world if lockstep else None):
        for i, keep in [(i, True) for i in mine] + [(starts[-1], False)] * spare:
            idx = order[i:i + chunk]
            sub, = trim_padding({k: v[idx] for k, v in batch.items()})
            sub = {k: v.to(device or v.device) for k, v in sub.items()}  # cut on the host, then moved
            result = fn(sub).float().to(out.device)
            if keep:  # a spare pass only keeps this process in step
                out[idx, :sub["mask"].shape[1]] = result
    return world.sum_tensor(out) if size > 1 else out
