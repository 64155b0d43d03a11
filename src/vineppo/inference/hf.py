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

from vineppo.inference import cascade
from vineppo.inference.base import Completion, SamplingParams, encode_prompt

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


TOP_K_FIRST = 64
"""Top-p looks at the 64 likeliest tokens first; only rows whose nucleus is wider pay for a full sort."""


def sample_next(logits: torch.Tensor, temperature: float, top_p: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(next token, its log-prob at `temperature`) per row; greedy at temperature 0. Sampling is
    by inverse CDF over the probabilities sorted high to low, cut to the top-p nucleus: one uniform
    draw per row instead of one exponential per vocabulary entry (what torch.multinomial draws)."""
    if temperature == 0:
        next_tok = logits.argmax(-1)
        return next_tok, torch.log_softmax(logits.float(), -1).gather(-1, next_tok[:, None]).squeeze(-1)
    logp = torch.log_softmax(logits.float() / temperature, -1)
    probs = logp.exp()
    if top_p >= 1.0:
        sorted_p, idx = probs, None
    else:
        sorted_p, idx = probs.topk(min(TOP_K_FIRST, probs.shape[-1]), dim=-1)
        if bool((sorted_p.sum(-1) < top_p).any()):  # some nucleus is wider than the top k
            sorted_p, idx = probs.sort(dim=-1, descending=True)
        mass_before = sorted_p.cumsum(-1) - sorted_p
        sorted_p = sorted_p.masked_fill(mass_before >= top_p, 0.0)
    # The first position whose cumulative mass exceeds u has a positive probability of its own.
    cdf = sorted_p.cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=gen, device=cdf.device) * cdf[:, -1:]
    pick = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)
    next_tok = (pick if idx is None else idx.gather(-1, pick)).squeeze(-1)
    return next_tok, logp.gather(-1, next_tok[:, None]).squeeze(-1)


class HFEngine:
    def __init__(self, model, tokenizer, batch_size: int = 64, compact_fraction: float = COMPACT_FRACTION,
                 shared_prefix: bool = True, bos: bool = False):
        """`batch_size` counts sequences in flight (prompts x n); `compact_fraction` > 1 disables
        compaction; `shared_prefix` decodes Llama-family models with one prompt cache per prompt
        (cascade.py), others always take the plain path; `bos` puts the BOS token before text
        prompts (task.prompt_bos)."""
        self.model, self.tokenizer, self.batch_size, self.bos = model, tokenizer, batch_size, bos
        self.compact_fraction, self.shared_prefix = compact_fraction, shared_prefix
        # transformers >= 5.20 names the KV cache argument `cache`; older 5.x (the vLLM environment's
        # pin) `past_key_values`.
        self.cache_kwarg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def load_weights(self, model) -> None:
        """The engine runs the policy module itself, so it always sees the newest weights."""
        self.model = model

    @property
    def logprobs_exact(self) -> bool:
        """Whether the sampled tokens' log-probs equal a training forward's (tests/test_loop.py):
        in float32 the cached decode matches a full forward to ~1e-6; in bf16 it would not."""
        return next(self.model.parameters()).dtype == torch.float32

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: list[str] | list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt (text, or token ids as the model reads them)."""
        ids = [p if isinstance(p, list) else encode_prompt(self.tokenizer, p, self.bos) for p in prompts]
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
        tok, model, n, dev = self.tokenizer, self.model, params.n, self.device
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts], device=dev)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=dev)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        shared = self.shared_prefix and cascade.supports(model)
        cache = DynamicCache()
        if not shared:
            cache.layer_class_to_replicate = GrowingLayer
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                       **{self.cache_kwarg: cache}, use_cache=True).logits[:, -1]
        if shared:
            # The prompt's cache stays one copy per prompt; see cascade.py.
            decoder = cascade.SharedPrefixDecoder(model, cache, attention, n, params.max_new_tokens)
            positions = positions[:, -1:].repeat_interleave(n, 0)
            logits = logits.repeat_interleave(n, 0)

            def advance(next_tok, positions, step):
                return decoder.step(next_tok, positions[:, 0])

            def compact(keep):
                decoder.keep(keep)
        else:
            # The mask for every step at once (prompt, then ones), sliced per step instead of grown.
            mask = torch.cat([attention, attention.new_ones(attention.shape[0], params.max_new_tokens)], dim=1)
            if n > 1:  # prefix sharing: each prompt was encoded once; its n rows start from copies of its cache
                cache.batch_repeat_interleave(n)
                logits, mask, positions = (x.repeat_interleave(n, 0) for x in (logits, mask, positions))
            state = {"mask": mask}

            def advance(next_tok, positions, step):
                return model(input_ids=next_tok[:, None], attention_mask=state["mask"][:, :width + step + 1],
                             position_ids=positions, **{self.cache_kwarg: cache}, use_cache=True).logits[:, -1]

            def compact(keep):
                cache.batch_select_indices(keep)
                state["mask"] = state["mask"][keep]
        rows, steps, eos = len(prompts) * n, params.max_new_tokens, tok.eos_token_id
        # Outputs live in tensors written one column per step; Python touches only the rows that
        # finish (or may have completed a stop string) at that step.
        out_tokens = torch.full((rows, steps), tok.pad_token_id, dtype=torch.long, device=dev)
        out_logps = torch.zeros((rows, steps), device=dev)
        lengths = [steps] * rows  # a row that never stops fills every column
        stop_hit = [False] * rows
        maybe_stop = self._stop_candidates(params.stop)
        active = torch.arange(rows, device=dev)  # the output row of each row in flight
        done = torch.zeros(rows, dtype=torch.bool, device=dev)  # over rows in flight
        for step in range(steps):
            next_tok, chosen = sample_next(logits, params.temperature, params.top_p, gen)
            live = ~done
            out_tokens[active[live], step] = next_tok[live]
            out_logps[active[live], step] = chosen[live]
            finished = live & (next_tok == eos)
            if maybe_stop is not None:
                for j in (live & ~finished & maybe_stop[next_tok]).nonzero().flatten().tolist():
                    r = int(active[j])
                    if self._has_stop(out_tokens[r, max(0, step - 15):step + 1].tolist(), params.stop):
                        finished[j], stop_hit[r] = True, True
            for r in active[finished].tolist():
                lengths[r] = step + 1
            done |= finished
            n_done = int(done.sum())
            if n_done == len(done):
                break
            if n_done >= self.compact_fraction * len(done):  # compaction
                keep = (~done).nonzero().squeeze(-1)
                compact(keep)
                positions, next_tok, active, done = positions[keep], next_tok[keep], active[keep], done[keep]
            positions = positions[:, -1:] + 1
            logits = advance(next_tok, positions, step)
        tokens, logps = out_tokens.tolist(), out_logps.tolist()
        comps = [self._completion(tokens[r][:lengths[r]], logps[r][:lengths[r]], eos, params, stop_hit[r])
                 for r in range(rows)]
        return [comps[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _stop_candidates(self, stop: list[str]) -> torch.Tensor | None:
        """Which token ids can complete a stop string (their text holds a stop string's last
        character, or is not plain text on its own): only rows that sample one are checked."""
        if not stop:
            return None
        key = tuple(stop)
        if getattr(self, "_stop_key", None) != key:
            last = {s[-1] for s in stop if s}
            vocab = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(vocab)], skip_special_tokens=True)
            mask = [any(c in t for c in last) or "\ufffd" in t for t in texts]
            self._stop_key, self._stop_mask = key, torch.tensor(mask, device=self.device)
        return self._stop_mask

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
