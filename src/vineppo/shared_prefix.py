"""Response log-probs with each distinct prompt encoded once ("shared prefix").

Why: every PPO-family iteration trains on n samples of each prompt, and a mini-batch (or a chunk of
the no-grad passes) holds several samples of the same prompt. A plain forward encodes that prompt
once per sample; on the tiny preset prompts are about half of each sequence, so half the forward
and backward work of an update is the same prompt computed again.

How: the mini-batch's U distinct prompts go through the model once ([U, longest prompt], right
padded, causal), keeping their keys and values; each row's cache is then its prompt's
(`batch_select_indices`, an indexing that autograd follows back into the prompt pass), and the
responses ([B, longest response]) run on top of it with their true positions and a mask that hides
the prompt padding. The first response token is scored from its prompt's last position, the rest
from the response pass. Same function as one plain forward over prompt + response, so the same
log-probs and gradients up to float rounding (tests/test_shared_prefix.py); used where it saves work.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from vineppo.models import is_checkpointing

SAVING = 0.9
"""Take the shared path only when its token count is below this fraction of the plain one's."""

_lockstep = None
"""The World whose processes must take one path together (set by `lockstep`), or None."""


@contextmanager
def lockstep(world) -> Iterator[None]:
    """Within it, a forward takes the shared path only where every process of `world` would, so
    that every process runs the model the same number of times (two passes shared, one plain).
    ZeRO-3 needs this: there each forward gathers every layer's weights from all processes, and
    a process running one pass more than another waits for it forever. Every process must call
    `forward` the same number of times inside (one all-reduce each). None or one process: no-op."""
    global _lockstep
    before, _lockstep = _lockstep, (world if world is not None and world.world_size > 1 else None)
    try:
        yield
    finally:
        _lockstep = before


@functools.cache
def _params_of(forward_fn) -> frozenset[str]:
    return frozenset(inspect.signature(forward_fn).parameters)


def forward_params(model) -> frozenset[str]:
    """The keyword arguments the model's forward takes (a DeepSpeed / DDP wrapper looked through),
    read once per model class."""
    model = getattr(model, "module", model)
    return _params_of(type(model).forward)


def supports(model, logits: bool = True) -> bool:
    """Decoder-only models whose forward takes a DynamicCache and position ids (and, for a causal
    LM, `logits_to_keep`): transformers' decoders; sliding-window models take the plain path. So
    does a model in training mode with gradient checkpointing on (model.gradient_checkpointing):
    its checkpointed layers drop the cache the response pass reads (the log-probs would be wrong
    by tenths of a nat, tests/test_shared_prefix.py), in a no-grad pass too before transformers
    5.20 or so. The loop's no-grad log-prob passes run the policy in eval mode, and share."""
    inner = getattr(model, "module", model)
    params, config = forward_params(model), inner.config
    checkpointed = inner.training and is_checkpointing(inner)
    return (("cache" in params or "past_key_values" in params) and "position_ids" in params
            and (not logits or "logits_to_keep" in params) and getattr(config, "sliding_window", None) is None
            and not getattr(config, "is_encoder_decoder", False) and not checkpointed)


def prompt_groups(input_ids: torch.Tensor, prompt_len: list[int]) -> tuple[list[tuple[int, ...]], list[int]]:
    """The distinct prompts (in order of first appearance) and each row's index among them."""
    keys: dict[tuple[int, ...], int] = {}
    rows = input_ids.tolist()
    group = [keys.setdefault(tuple(row[:p]), len(keys)) for row, p in zip(rows, prompt_len, strict=True)]
    return list(keys), group


@dataclass
class Responses:
    """A batch's responses cut out of the plain layout: row i's token t is input column `columns[i, t]`."""
    tokens: torch.Tensor  # [B, R], padded past each row's length
    valid: torch.Tensor  # [B, R]
    columns: torch.Tensor  # [B, R]
    width: int  # the plain layout's sequence width

    def to_plain(self, x: torch.Tensor) -> torch.Tensor:
        """[B, R] per response token (t = the state before token t, or token t's score) -> the plain
        `[B, width - 1]` layout, where that is column columns[i, t] - 1; 0 elsewhere."""
        out = torch.zeros(x.shape[0], self.width - 1 + x.shape[1], device=x.device, dtype=x.dtype)
        return out.scatter(1, self.columns - 1, x.masked_fill(~self.valid, 0.0))[:, :self.width - 1]


def forward(model, batch: dict[str, torch.Tensor], outputs) -> tuple[torch.Tensor, Responses] | None:
    """The model's per-position outputs at the positions that precede each response token,
    `[B, R, ...]` (position t: the last prompt token for t = 0, response token t - 1 after), with
    each distinct prompt encoded once; None where sharing would not save work (every prompt
    distinct, or a row without a response): the caller then takes the plain forward.

    `outputs(ids, keep, **kwargs)` runs the model on `ids` with the given cache keyword arguments
    and returns `[rows, positions, ...]`, at least the last `keep` positions when `keep` is set."""
    ids, has = batch["input_ids"], batch["mask"].bool()
    n, width = ids.shape
    resp_len = has.sum(1)
    share = bool((resp_len > 0).all())
    if share:
        prompt_len = has.int().argmax(1) + 1  # response token t of row i is input column prompt_len[i] + t
        prompts, group = prompt_groups(ids, prompt_len.tolist())
        p_max, r_max = max(len(p) for p in prompts), int(resp_len.max())
        plain = n * int(batch["attention_mask"].sum(1).max()) if "attention_mask" in batch else n * width
        share = len(prompts) * p_max + n * r_max < SAVING * plain
    if _lockstep is not None:
        share = _lockstep.all(share)
    if not share:
        return None

    device, pad = ids.device, 0  # any id: padding is after every real token or masked
    cache_kwarg = "cache" if "cache" in forward_params(model) else "past_key_values"  # transformers < 5.20
    group_t = torch.tensor(group, device=device)
    p_lens = torch.tensor([len(p) for p in prompts], device=device)
    prompt_ids = torch.full((len(prompts), p_max), pad, dtype=ids.dtype, device=device)
    for u, p in enumerate(prompts):
        prompt_ids[u, :len(p)] = torch.tensor(p, dtype=ids.dtype)

    # 1. Prompts, once each: their caches, and the output at each prompt's last token.
    cache = DynamicCache()
    keep = p_max - int(p_lens.min()) + 1  # the last `keep` positions hold every prompt's last token
    head = outputs(prompt_ids, keep, use_cache=True, **{cache_kwarg: cache})[:, -keep:]
    first = head[group_t, p_lens[group_t] - 1 - (p_max - keep)]  # [B, ...]

    # 2. Responses on their prompt's cache, at their true positions; the prompt padding masked out.
    steps = torch.arange(r_max, device=device)
    valid = steps[None] < resp_len[:, None]  # [B, R]
    columns = prompt_len[:, None] + steps[None]
    tokens = ids.gather(1, columns.clamp(max=width - 1)).masked_fill(~valid, pad)
    cache.batch_select_indices(group_t)
    seen = torch.arange(p_max, device=device)[None] < p_lens[group_t][:, None]
    attention = torch.cat([seen, torch.ones_like(valid)], dim=1).long()
    rest = outputs(tokens, None, attention_mask=attention, position_ids=columns, use_cache=True,
                   **{cache_kwarg: cache})[:, :-1]  # after response token t: the state before t + 1
    return torch.cat([first[:, None], rest], dim=1), Responses(tokens, valid, columns, width)


def logprobs(model, batch: dict[str, torch.Tensor], temperature: float) -> torch.Tensor | None:
    """log pi(response token) at `temperature` in `rollout.token_logprobs`' layout `[B, width - 1]`
    (0 off the response), or None where sharing would not save work."""
    def outputs(ids, keep, **kwargs):
        return model(input_ids=ids, logits_to_keep=keep or 0, **kwargs).logits

    out = forward(model, batch, outputs)
    if out is None:
        return None
    logits, resp = out  # position t predicts response token t
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return resp.to_plain(logp.gather(-1, resp.tokens.unsqueeze(-1)).squeeze(-1))
