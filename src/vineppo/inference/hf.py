"""Batched sampling with a KV cache in plain torch/transformers (CPU and GPU).

Prompts are left-padded; position ids skip the padding so a prompt gives the same logits alone or
in a batch. Sampling uses its own `torch.Generator`, so it is seeded without touching global RNG.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from vineppo.inference.base import Completion, SamplingParams


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
    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        flat = [p for p in prompts for _ in range(params.n)]
        gen = torch.Generator(device=self.device).manual_seed(params.seed)
        out: list[Completion] = []
        for i in range(0, len(flat), self.batch_size):
            out.extend(self._generate_batch(flat[i:i + self.batch_size], params, gen))
        return [out[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    @torch.no_grad()
    def _generate_batch(self, prompts: list[str], params: SamplingParams,
                        gen: torch.Generator) -> list[Completion]:
        tok, model = self.tokenizer, self.model
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        input_ids = enc["input_ids"].to(self.device)
        attention = enc["attention_mask"].to(self.device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                       cache=cache, use_cache=True).logits[:, -1]
        batch = input_ids.shape[0]
        done = torch.zeros(batch, dtype=torch.bool, device=self.device)
        tokens, logps = [], []
        eos = tok.eos_token_id
        stop_hit = [False] * batch
        for _ in range(params.max_new_tokens):
            if params.temperature == 0:
                next_tok = logits.argmax(-1)
                logp = torch.log_softmax(logits.float(), -1)
            else:
                logp = torch.log_softmax(logits.float() / params.temperature, -1)
                probs = top_p_filter(logp.exp(), params.top_p)
                next_tok = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            next_tok = torch.where(done, torch.full_like(next_tok, tok.pad_token_id), next_tok)
            tokens.append(next_tok)
            logps.append(logp.gather(-1, next_tok[:, None]).squeeze(-1))
            done |= next_tok == eos
            if params.stop:
                for b in range(batch):
                    if not done[b] and self._has_stop(torch.stack(tokens, 1)[b], params.stop):
                        done[b] = True
                        stop_hit[b] = True
            if bool(done.all()):
                break
            attention = torch.cat([attention, attention.new_ones(batch, 1)], dim=1)
            positions = positions[:, -1:] + 1
            logits = model(input_ids=next_tok[:, None], attention_mask=attention, position_ids=positions,
                           cache=cache, use_cache=True).logits[:, -1]
        ids = torch.stack(tokens, 1).tolist()
        lps = torch.stack(logps, 1).tolist()
        return [self._completion(ids[b], lps[b], eos, params, stop_hit[b]) for b in range(batch)]

    def _has_stop(self, ids: torch.Tensor, stop: list[str]) -> bool:
        text = self.tokenizer.decode(ids[-16:].tolist(), skip_special_tokens=True)
        return any(s in text for s in stop)

    def _completion(self, ids: list[int], lps: list[float], eos: int, params: SamplingParams,
                    stop_hit: bool) -> Completion:
        n = len(ids)
        finish = "length"
        if eos in ids:
            n, finish = ids.index(eos) + 1, "stop"
        ids, lps = ids[:n], lps[:n]
        text = self.tokenizer.decode([t for t in ids if t != eos], skip_special_tokens=True)
        if stop_hit or params.stop:
            cut = min((text.find(s) for s in params.stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return Completion(text=text, token_ids=ids, logprobs=lps, finish_reason=finish)
