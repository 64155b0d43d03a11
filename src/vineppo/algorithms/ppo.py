"""PPO's value network and its advantages (SPEC.md): a copy of the SFT model with a scalar head,
GAE over response tokens, clipped value loss. The policy side is the shared clipped surrogate."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel

from vineppo import shared_prefix as prefix
from vineppo.algorithms.advantages import gae
from vineppo.learner import saved_value_weights
from vineppo.rollout import chunked


class ValueModel(nn.Module):
    """V(state before each token): the SFT backbone's last hidden state through a linear head."""

    def __init__(self, init: str, shared_prefix: bool = True, head_init: str = "zero", seed: int = 0):
        """`head_init` (rl.value_head_init): zero, V = 0 everywhere at the start; or normal, the
        authors' (treetune's value head): weights drawn from N(0, 1 / (hidden + 1)) with `seed`,
        bias 0, so V starts as a random projection of each state."""
        super().__init__()
        self.shared_prefix = shared_prefix
        self.backbone = AutoModel.from_pretrained(init, dtype=torch.float32)
        hidden = self.backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.head.bias)
        if head_init == "normal":
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                self.head.weight.copy_(torch.randn(1, hidden, generator=g) / (hidden + 1) ** 0.5)
        else:
            nn.init.zeros_(self.head.weight)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, rl) -> ValueModel:
        """The value network a PPO run saved in `checkpoint` (with or without DeepSpeed), built on
        the run's `rl.init` with its `rl` settings, in eval mode on the CPU."""
        model = cls(rl.init, rl.shared_prefix, rl.value_head_init)
        model.load_state_dict(saved_value_weights(Path(checkpoint)))
        return model.eval()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """`[batch, width - 1]`: column j is V(sequence up to and including token j). The batch is
        right-padded, so no attention mask is needed (see `rollout.token_logprobs`). With
        `shared_prefix` and a batch holding several samples of a prompt, each prompt is encoded once
        (shared_prefix.py) and only the response's states (the columns in `mask`) are filled."""
        if self.shared_prefix and "mask" in batch and prefix.supports(self.backbone, logits=False):
            out = prefix.forward(self.backbone, batch, lambda ids, keep, **kw: self.backbone(
                input_ids=ids, **kw).last_hidden_state)
            if out is not None:
                hidden, resp = out
                return resp.to_plain(self.head(hidden).squeeze(-1))
        hidden = self.backbone(input_ids=batch["input_ids"]).last_hidden_state
        return self.head(hidden[:, :-1]).squeeze(-1)


def token_rewards(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The final reward at each response's last token, 0 elsewhere (no KL in the reward: it is a loss)."""
    mask = batch["mask"]
    last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(dim=1)
    rewards = torch.zeros_like(mask)
    rewards[torch.arange(mask.shape[0], device=mask.device), last] = batch["rewards"]
    return rewards * mask


@torch.no_grad()
def advantages_and_returns(value_model: ValueModel, batch: dict[str, torch.Tensor], gamma: float,
                           lam: float, chunk: int = 64, world=None, lockstep: bool = False,
                           device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(advantages, returns, old values) on the response tokens (the values pass split over the
    processes of `world`, if given; in lockstep for a ZeRO-3 value network; run on `device`, the
    results on the batch's: see `chunked`)."""
    values = chunked(value_model, batch, chunk, world, lockstep, device) * batch["mask"]
    advantages, returns = gae(token_rewards(batch), values, batch["mask"], gamma, lam)
    return advantages, returns, values
