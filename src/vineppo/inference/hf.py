"""Batched sampling with a KV cache in plain torch/transformers (CPU and GPU).

Why it is faster than calling `model.generate` once per prompt:
- Prefix sharing: a prompt that needs `n` completions (an MC value state needs K) is encoded once;
  its KV cache is then repeated `n` times and the continuations are sampled from it.
- Batching across prompts: many states and episodes share one forward pass per new token.
- Compaction: once a quarter of the rows in flight have finished, their rows are dropped from the
  cache, so short completions stop paying for long ones.

Prompts are left-padded; position ids skip the padding so a prompt gives the same logits alone or
in a batch. Sampling uses its own `torch.Generator`, so it is seeded without touching global RNG.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from vineppo.inference.base import Completion, SamplingParams

COMPACT_FRACTION = 0.25
"""Drop finished rows from the batch once this fraction of the rows in flight has finished."""


class GrowingLayer(DynamicLayer):
    """A KV cache layer that grows by doubling a buffer instead of concatenating every step, so
    generating L tokens copies O(L) instead of O(L^2) cache entries."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self._kbuf, self._vbuf, self._len = key_states, value_states, key_states.shape[-2]
            self.keys, self.values = key_states, value_states
            return self.keys, self.values
        need = self._len + key_states.shape[-2]
        if need > self._kbuf.shape[-2] or self._kbuf.shape[0] != key_states.shape[0]:
            cap = max(need, 2 * self._kbuf.shape[-2])
            k = key_states.new_empty(*key_states.shape[:2], cap, key_states.shape[-1])
            v = value_states.new_empty(*value_states.shape[:2], cap, value_states.shape[-1])
            k[:, :, :self._len], v[:, :, :self._len] = self.keys, self.values
            self._kbuf, self._vbuf = k, v
        self._kbuf[:, :, self._len:need] = key_states
        self._vbuf[:, :, self._len:need] = value_states
        self._len = need
        self.keys, self.values = self._kbuf[:, :, :need], self._vbuf[:, :, :need]
        return self.keys, self.values

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._kbuf, self._vbuf = self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self._kbuf, self._vbuf = self.keys, self.values


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero the tail outside the smallest set of tokens whose mass reaches `top_p`; renormalise."""
    if top_p >= 1.0:
        return probs
    sorted_p, idx = probs.sort(dim=-1, descending=True)
    mass_before = sorted_p.cumsum(-1) - sorted_p
    sorted_p = sorted_p.masked_fill(mass_before >= top_p, 0.0)
    out = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
    return out / out.sum(-1, keepdim=True)


class HFEngine:
    def __init__(self, model, tokenizer, batch_size: int = 64, compact_fraction: float = COMPACT_FRACTION):
        """`batch_size` counts sequences in flight (prompts x n); `compact_fraction` > 1 disables compaction."""
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.compact_fraction = compact_fraction
        # transformers >= 5.20 names the KV cache argument `cache`; older 5.x (the vLLM environment's
        # pin) `past_key_values`.
        self.cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def load_weights(self, model) -> None:
        """The engine runs the policy module itself, so it always sees the newest weights."""
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: list[str] | list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt (text, or token ids without special tokens)."""
        ids = [p if isinstance(p, list) else self.tokenizer(p, add_special_tokens=False)["input_ids"]
               for p in prompts]
        gen = torch.Generator(device=self.device).manual_seed(params.seed)
        per_batch = max(1, self.batch_size // max(params.n, 1))
        # Batch prompts of similar length together: less padding, and (for MC states, where a longer
        # prefix leaves less to write) rows of a batch tend to finish together.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[list[Completion]] = [[] for _ in ids]
        for i in range(0, len(order), per_batch):
            chunk = order[i:i + per_batch]
            for j, comps in zip(chunk, self._generate_batch([ids[j] for j in chunk], params, gen), strict=True):
                out[j] = comps
        return out

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams,
                        gen: torch.Generator) -> list[list[Completion]]:
        tok, model, n = self.tokenizer, self.model, params.n
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        cache.layer_class_to_replicate = GrowingLayer
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                       **{self.cache_kwarg: cache}, use_cache=True).logits[:, -1]
        # The mask for every step at once (prompt, then ones), sliced per step instead of grown.
        attention = torch.cat([attention, attention.new_ones(attention.shape[0], params.max_new_tokens)], dim=1)
        if n > 1:  # prefix sharing: each prompt was encoded once; its n rows start from copies of its cache
            cache.batch_repeat_interleave(n)
            logits, attention, positions = (x.repeat_interleave(n, 0) for x in (logits, attention, positions))
        rows = len(prompts) * n
        active = list(range(rows))  # the output row of each row in flight
        tokens: list[list[int]] = [[] for _ in range(rows)]
        logps: list[list[float]] = [[] for _ in range(rows)]
        stop_hit = [False] * rows
        done = torch.zeros(rows, dtype=torch.bool, device=self.device)  # over rows in flight
        eos = tok.eos_token_id
        for step in range(params.max_new_tokens):
            if params.temperature == 0:
                next_tok = logits.argmax(-1)
                logp = torch.log_softmax(logits.float(), -1)
            else:
                logp = torch.log_softmax(logits.float() / params.temperature, -1)
                probs = top_p_filter(logp.exp(), params.top_p)
                next_tok = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            next_tok = torch.where(done, torch.full_like(next_tok, tok.pad_token_id), next_tok)
            chosen = logp.gather(-1, next_tok[:, None]).squeeze(-1)
            for j, (t, lp, was_done) in enumerate(zip(next_tok.tolist(), chosen.tolist(), done.tolist(), strict=True)):
                if was_done:
                    continue
                r = active[j]
                tokens[r].append(t)
                logps[r].append(lp)
                if t == eos:
                    done[j] = True
                elif params.stop and self._has_stop(tokens[r], params.stop):
                    done[j], stop_hit[r] = True, True
            if bool(done.all()):
                break
            if done.float().mean().item() >= self.compact_fraction:  # compaction
                keep = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                attention, positions, next_tok = attention[keep], positions[keep], next_tok[keep]
                active = [active[j] for j in keep.tolist()]
                done = done[keep]
            positions = positions[:, -1:] + 1
            logits = model(input_ids=next_tok[:, None], attention_mask=attention[:, :width + step + 1],
                           position_ids=positions,
                           **{self.cache_kwarg: cache}, use_cache=True).logits[:, -1]
        comps = [self._completion(tokens[r], logps[r], eos, params, stop_hit[r]) for r in range(rows)]
        return [comps[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _has_stop(self, ids: list[int], stop: list[str]) -> bool:
        text = self.tokenizer.decode(ids[-16:], skip_special_tokens=True)
        return any(s in text for s in stop)

    def _completion(self, ids: list[int], lps: list[float], eos: int, params: SamplingParams,
                    stop_hit: bool) -> Completion:
        finish = "stop" if ids and ids[-1] == eos else "length"
        text = self.tokenizer.decode([t for t in ids if t != eos], skip_special_tokens=True)
        if stop_hit or params.stop:
            cut = min((text.find(s) for s in params.stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return Completion(text=text, token_ids=ids, logprobs=lps, finish_reason=finish)
