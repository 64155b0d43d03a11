"""How close is each method's policy update to the one exact step credit would give? (beyond the paper)

    python analysis/gradient_alignment.py runs/table1/sft-arith_hard/final --task arith_hard \\
        --out results/gradient_alignment_hard

From one policy checkpoint, batches of RL episodes as an iteration samples them (`rl.prompts_per_iter`
train prompts x `rl.samples_per_prompt`, the tiny preset's settings). On the same episodes, each
method's advantages: VinePPO's MC step values with K continuations per state (`--ks`), GRPO's and
RLOO's one advantage per response, and PPO's with a value network still at its initial 0 (every
token gets the return, as in a short run at the paper's single learning rate, results/critic_lr_hard/).
Each is whitened over the batch as the loss sees it, and the policy gradient at ratio 1 (the PPO
surrogate's gradient at the start of an update), -mean(A * grad log pi), is compared by cosine with
the reference: the same from MC step values with `--truth-k` continuations, close to exact step
credit for these episodes. A second reference draw (another seed) gives the cosine that the
reference's own noise allows. Writes alignment.csv (batch x estimator), summary.csv (mean and std
over batches) and provenance.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from vineppo.algorithms import grpo, rloo, vineppo
from vineppo.algorithms.advantages import masked_mean, whiten
from vineppo.config import make_config
from vineppo.evaluate import rewards
from vineppo.inference import HFEngine, SamplingParams
from vineppo.loop import generate_shard
from vineppo.models import load_model, load_tokenizer
from vineppo.rollout import Episode, collate_episodes, token_logprobs
from vineppo.runio import atomic_write_text, git_commit
from vineppo.tasks import load_task

REFERENCE = "reference (MC K={k})"
REDRAW = "reference, second draw"


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two flattened gradients (0 when either is zero)."""
    na, nb = a.norm(), b.norm()
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def with_advantages(episodes: list[Episode], assign) -> list[Episode]:
    """Copies of the episodes with advantages set by `assign` (the originals keep theirs)."""
    copies = [copy.copy(e) for e in episodes]
    assign(copies)
    return copies


def zero_critic(episodes: list[Episode]) -> None:
    """PPO's GAE (gamma = lambda = 1) with every value 0: each token's advantage is the return."""
    for e in episodes:
        e.advantages = [e.reward] * len(e.response_ids)


def policy_gradients(policy, tokenizer, estimates: dict[str, list[Episode]], temperature: float) -> dict[str, torch.Tensor]:
    """-masked_mean(whiten(A) * log pi) differentiated once per estimate, on one forward pass (the
    gradient is linear in A; the episodes are the same for every estimate)."""
    params = [p for p in policy.parameters() if p.requires_grad]
    first = next(iter(estimates.values()))
    batch = collate_episodes(first, tokenizer.pad_token_id)
    logp = token_logprobs(policy, batch, temperature)
    grads = {}
    for name, episodes in estimates.items():
        adv = whiten(collate_episodes(episodes, tokenizer.pad_token_id)["advantages"], batch["mask"])
        loss = -masked_mean(adv * logp, batch["mask"])
        grads[name] = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)])
    return grads


def one_batch(policy, tokenizer, engine, task, cfg, ks: list[int], truth_k: int, seed: int) -> list[dict]:
    rl, name = cfg.rl, cfg.task.name
    examples = random.Random(seed).sample(task.train, rl.prompts_per_iter)

    def rollout_reward(items):
        return rewards([(replace(c, text=prefix + c.text), ex["answer"]) for prefix, c, ex in items], name)

    # The episodes as an iteration samples them ("grpo": no MC rollouts here); each estimate below
    # sets its own advantages on copies of them.
    episodes, _, _ = generate_shard(engine, tokenizer, examples, 0, replace(rl, algo="grpo"), name, seed, rollout_reward,
                                    task.format)

    def mc(k: int, draw: int):
        params = SamplingParams(temperature=rl.temperature, top_p=rl.top_p, max_new_tokens=rl.max_new_tokens,
                                seed=seed + 500_000 + 7919 * draw)
        return lambda eps: vineppo.assign_advantages(eps, engine, tokenizer, name, k, rl.vine_max_steps, params,
                                                     rollout_reward)

    estimates = {f"VinePPO, K={k}": with_advantages(episodes, mc(k, 0)) for k in ks}
    estimates.update({"GRPO": with_advantages(episodes, grpo.assign_advantages),
                      "RLOO": with_advantages(episodes, rloo.assign_advantages),
                      "PPO, value network at 0": with_advantages(episodes, zero_critic),
                      REFERENCE.format(k=truth_k): with_advantages(episodes, mc(truth_k, 1)),
                      REDRAW: with_advantages(episodes, mc(truth_k, 2))})
    grads = policy_gradients(policy, tokenizer, estimates, rl.temperature)
    ref = grads[REFERENCE.format(k=truth_k)]
    wrong = sum(e.reward == 0.0 for e in episodes)
    return [{"batch_seed": seed, "estimator": n, "cosine_with_reference": cosine(g, ref), "episodes": len(episodes),
             "wrong": wrong} for n, g in grads.items() if n != REFERENCE.format(k=truth_k)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="a policy checkpoint folder (an SFT model's final/, or an RL step-N/)")
    ap.add_argument("--task", default="arith_hard")
    ap.add_argument("--batches", type=int, default=3, help="batches of episodes, one iteration's worth each")
    ap.add_argument("--ks", type=int, nargs="+", default=[3, 9], help="VinePPO's K")
    ap.add_argument("--truth-k", type=int, default=64, help="the reference's MC continuations per state")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (e.g. rl.prompts_per_iter=8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/gradient_alignment"))
    args = ap.parse_args(argv)
    if not (args.checkpoint / "config.json").exists():
        print(f"{args.checkpoint}: not a model checkpoint (no config.json)", file=sys.stderr)
        return 2
    cfg = make_config(["preset=tiny", f"task.name={args.task}", *args.set])
    torch.manual_seed(args.seed)
    policy, tokenizer = load_model(args.checkpoint), load_tokenizer(args.checkpoint)
    policy.eval()  # no dropout: the gradient of the sampling policy itself
    engine = HFEngine(policy, tokenizer, batch_size=cfg.rl.rollout_batch_size, bos=cfg.task.prompt_bos)
    task = load_task(cfg.task)
    rows = []
    for b in range(args.batches):
        rows += one_batch(policy, tokenizer, engine, task, cfg, args.ks, args.truth_k, args.seed * 1_000_003 + b)
    df = pd.DataFrame(rows)
    summary = (df.groupby("estimator", sort=False)["cosine_with_reference"].agg(["mean", "std", "count"])
               .rename(columns={"count": "batches"}).reset_index())
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "alignment.csv", df.to_csv(index=False))
    atomic_write_text(args.out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(args.out / "provenance.json", json.dumps(
        {"checkpoint": str(args.checkpoint), "args": {k: str(v) for k, v in vars(args).items()},
         "rl": {k: str(v) for k, v in vars(cfg.rl).items()}, "commit": git_commit()}, indent=2))
    print(summary.round(3).to_string(index=False))
    print(f"wrote {args.out}/alignment.csv, summary.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
