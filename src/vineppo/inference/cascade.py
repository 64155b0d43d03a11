"""Shared-prefix ("cascade") decoding for Llama-family models: the n samples of one prompt read the
prompt's keys and values once per step instead of n times.

Why: VinePPO asks for K continuations of every state and PPO-family rollouts for n samples of
every prompt, so most of a decode step's attention reads the same prompt cache n times over; on a
CPU that memory traffic, not the matmuls, is what a small model's decode step waits for. Here the
prompt's cache stays one copy per prompt ([P, kv heads, Lp, d]); each row keeps only its own
generated tokens' cache. At each step a row's scores over the prompt are computed for all rows of
a prompt in one batched matmul, joined with its scores over its own tokens in one softmax, and the
two value reads summed: the same attention, computed in two parts.

The decoder layer is the model's own modules (norms, projections, rotary embedding, MLP, head)
applied in Llama's order; `supports` says which models qualify, others use the plain path.
"""

from __future__ import annotations

import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

LLAMA_LIKE = ("llama", "mistral", "qwen2")
"""Model types whose decoder layer is Llama's (pre-norm attention + gated MLP, rotary, no
attention biases beyond the projections'); DeepSeekMath-7B and RhoMath-1.1B are `llama`."""


def supports(model) -> bool:
    cfg = model.config
    return (getattr(cfg, "model_type", None) in LLAMA_LIKE and getattr(cfg, "sliding_window", None) is None
            and hasattr(model, "model") and hasattr(model.model, "layers"))


class SharedPrefixDecoder:
    """Decode state of one batch: P prompts (left-padded to Lp, their caches from the prefill) and
    the rows in flight, each the `slot`-th sample of prompt `prompt[row]`."""

    def __init__(self, model, prefix_cache, prefix_mask: torch.Tensor, n: int, max_new_tokens: int):
        cfg = model.config
        self.model, self.n = model, n
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5
        layers = prefix_cache.layers
        self.prefix_k = [layer.keys for layer in layers]  # [P, kv, Lp, d] each
        self.prefix_v = [layer.values for layer in layers]
        self.prefix_ok = prefix_mask.bool()  # [P, Lp]: False on left padding
        rows = prefix_mask.shape[0] * n
        self.prompt = torch.arange(rows, device=prefix_mask.device) // n  # prompt of each row in flight
        self.slot = torch.arange(rows, device=prefix_mask.device) % n
        shape = (rows, self.kv_heads, max_new_tokens, self.head_dim)
        dtype = self.prefix_k[0].dtype
        self.own_k = [torch.empty(shape, dtype=dtype, device=prefix_mask.device) for _ in layers]
        self.own_v = [torch.empty(shape, dtype=dtype, device=prefix_mask.device) for _ in layers]
        self.length = 0  # generated tokens in the rows' own caches

    def keep(self, rows: torch.Tensor) -> None:
        """Drop the rows not in `rows` (indices into the rows in flight, ascending), and the prompts
        none of them belongs to."""
        def cut(buf: torch.Tensor) -> torch.Tensor:  # only the written columns are copied
            out = buf.new_empty(len(rows), *buf.shape[1:])
            out[:, :, :self.length] = buf[rows, :, :self.length]
            return out

        self.own_k = [cut(k) for k in self.own_k]
        self.own_v = [cut(v) for v in self.own_v]
        prompt = self.prompt[rows]
        alive = torch.unique(prompt)  # ascending
        if len(alive) < self.prefix_ok.shape[0]:
            self.prefix_k = [k[alive] for k in self.prefix_k]
            self.prefix_v = [v[alive] for v in self.prefix_v]
            self.prefix_ok = self.prefix_ok[alive]
            prompt = torch.searchsorted(alive, prompt)
        self.prompt, self.slot = prompt, self.slot[rows]

    def _attention(self, i: int, q: torch.Tensor) -> torch.Tensor:
        """q: [B, heads, d] of the newest token of each row -> attention output [B, heads * d]."""
        b, p, g = q.shape[0], self.prefix_ok.shape[0], self.heads // self.kv_heads
        q = q.view(b, self.kv_heads, g, self.head_dim) * self.scaling
        # Prompt part: rows laid out on a [prompt, slot] grid so each prompt's keys are read once.
        grid = q.new_zeros(p * self.n, self.kv_heads, g, self.head_dim).index_copy_(0, self._flat, q)
        grid = grid.view(p, self.n, self.kv_heads, g, self.head_dim).permute(0, 2, 1, 3, 4)
        grid = grid.reshape(p, self.kv_heads, self.n * g, self.head_dim)
        kp, vp = self.prefix_k[i], self.prefix_v[i]  # [P, kv, Lp, d]
        lp = kp.shape[2]
        s_prefix = (grid @ kp.transpose(-1, -2)).view(p, self.kv_heads, self.n, g, lp).permute(0, 2, 1, 3, 4)
        s_prefix = s_prefix.reshape(p * self.n, self.kv_heads, g, lp).index_select(0, self._flat)
        s_prefix = s_prefix.masked_fill(self._pad, float("-inf"))  # [B, kv, g, Lp]
        ko, vo = self.own_k[i][:, :, :self.length], self.own_v[i][:, :, :self.length]  # [B, kv, s, d]
        s_own = q @ ko.transpose(-1, -2)  # [B, kv, g, s]
        probs = torch.softmax(torch.cat([s_prefix, s_own], dim=-1).float(), dim=-1).to(q.dtype)
        w = q.new_zeros(p * self.n, self.kv_heads, g, lp).index_copy_(0, self._flat, probs[..., :lp].contiguous())
        w = w.view(p, self.n, self.kv_heads, g, lp).permute(0, 2, 1, 3, 4).reshape(p, self.kv_heads, self.n * g, lp)
        out = (w @ vp).view(p, self.kv_heads, self.n, g, self.head_dim).permute(0, 2, 1, 3, 4)
        out = out.reshape(p * self.n, self.kv_heads, g, self.head_dim).index_select(0, self._flat)
        out = out + probs[..., lp:] @ vo
        return out.reshape(b, self.heads * self.head_dim)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Feed each row's newest token (at its position) -> next-token logits [B, vocab]."""
        m = self.model.model
        h = m.embed_tokens(tokens[:, None])  # [B, 1, hidden]
        cos, sin = m.rotary_emb(h, positions[:, None])
        t = self.length
        self.length += 1
        b = tokens.shape[0]
        self._flat = self.prompt * self.n + self.slot  # each row's place on the [prompt, slot] grid
        self._pad = ~self.prefix_ok[self.prompt][:, None, None, :]  # the prompt's left padding
        for i, layer in enumerate(m.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(b, 1, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(b, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(b, 1, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            self.own_k[i][:, :, t] = k[:, :, 0]
            self.own_v[i][:, :, t] = v[:, :, 0]
            h = h + attn.o_proj(self._attention(i, q[:, :, 0]))[:, None]
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return self.model.lm_head(m.norm(h))[:, -1]
