"""How good is each value estimate? (the paper's value-prediction analyses, SPEC.md items 3-4)

Held-out episodes give states (prompt + the first t reasoning steps). Each state gets a ground
truth V*(s) from many MC continuations; the PPO value network and VinePPO's K-sample MC estimate
are compared with it (mean absolute error, calibration, error by position). For ranking, several
alternative next steps are sampled from a state; each resulting state gets its own ground truth,
and a predictor is right on a pair when it orders the two as the ground truth does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from itertools import combinations

import pandas as pd
import torch

from vineppo.algorithms.vineppo import estimate_values
from vineppo.evaluate import rewards
from vineppo.inference import Completion, Engine, SamplingParams, encode_prompt
from vineppo.steps import split_steps, step_boundaries
from vineppo.tasks import TINY_FORMAT, PromptFormat


def pairwise_ranking(predicted: list[float], truth: list[float]) -> tuple[int, int]:
    """(correct, total) over all pairs of alternatives from one state. A pair is correct when the
    predicted and true orders agree strictly; a tie in truth counts as wrong (as in the paper), and so
    does a tie in prediction on a pair whose truth differs."""
    correct = total = 0
    for i, j in combinations(range(len(truth)), 2):
        total += 1
        dt, dp = truth[i] - truth[j], predicted[i] - predicted[j]
        if dt != 0 and dp != 0 and (dt > 0) == (dp > 0):
            correct += 1
    return correct, total


def ranking_accuracy(predicted: list[list[float]], truth: list[list[float]], untied_only: bool = False) -> float:
    """Pairwise ranking accuracy pooled over groups of alternatives (one group per source state).
    `untied_only` counts only pairs whose truth differs: there a random order scores 50%, and an
    oracle 100%; over all pairs an oracle scores the fraction of untied pairs."""
    c = t = 0
    for p, g in zip(predicted, truth, strict=True):
        ci, ti = pairwise_ranking(p, g)
        c += ci
        t += sum(g[i] != g[j] for i, j in combinations(range(len(g)), 2)) if untied_only else ti
    return c / t if t else float("nan")


def mean_absolute_error(predicted: list[float], truth: list[float]) -> float:
    if len(predicted) != len(truth) or not truth:
        raise ValueError(f"need equal, non-empty lists; got {len(predicted)} and {len(truth)}")
    return sum(abs(p - g) for p, g in zip(predicted, truth, strict=True)) / len(truth)


def calibration(predicted: list[float], truth: list[float], bins: int = 10) -> pd.DataFrame:
    """Mean prediction and mean ground truth per bin of predicted value in [0, 1]."""
    df = pd.DataFrame({"predicted": predicted, "truth": truth})
    df["bin"] = (df["predicted"].clip(0, 1) * bins).astype(int).clip(upper=bins - 1)
    return df.groupby("bin").agg(mean_predicted=("predicted", "mean"), mean_truth=("truth", "mean"),
                                 count=("truth", "size")).reset_index()


def error_by_position(predicted: list[float], truth: list[float], position: list[float],
                      bins: int = 5) -> pd.DataFrame:
    """Mean absolute error by fraction of the solution's steps already taken (0 = the prompt)."""
    df = pd.DataFrame({"err": [abs(p - g) for p, g in zip(predicted, truth, strict=True)], "pos": position})
    df["bin"] = (df["pos"].clip(0, 1) * bins).astype(int).clip(upper=bins - 1)
    return df.groupby("bin").agg(mae=("err", "mean"), count=("err", "size")).reset_index()


@dataclass
class State:
    prompt: str
    prefix: str
    """Response text so far (whole steps)."""
    example: dict[str, str]
    position: float
    """Steps taken / steps in the episode."""


def held_out_states(engine: Engine, examples: list[dict[str, str]], task: str, temperature: float,
                    max_new_tokens: int, seed: int, rule: str = "auto",
                    fmt: PromptFormat = TINY_FORMAT, *, top_p: float) -> list[State]:
    """One sampled episode per example, prompted in the model's format `fmt`; a state at every
    step boundary of it (steps by `rule`, `vineppo.steps`). `temperature` and `top_p`: the run's
    sampler (rl.temperature, rl.top_p), whose values its estimators predict."""
    prompts = [fmt.prompt(e["question"]) for e in examples]
    episodes = engine.generate(prompts, SamplingParams(temperature=temperature, top_p=top_p,
                                                       max_new_tokens=max_new_tokens, stop=list(fmt.stop), seed=seed))
    states = []
    for ex, prompt, comps in zip(examples, prompts, episodes, strict=True):
        text = comps[0].text
        offsets = step_boundaries(text, task, rule) or [0]
        states += [State(prompt, text[:off], ex, i / len(offsets)) for i, off in enumerate(offsets)]
    return states


def alternative_steps(engine: Engine, state: State, n: int, task: str, temperature: float,
                      max_new_tokens: int, seed: int, rule: str = "auto", stop: tuple[str, ...] = (), *,
                      top_p: float) -> list[State]:
    """Up to `n` distinct next steps sampled from `state` (the first step, per `split_steps` with
    `rule`, of continuations from it), each as a new state; `stop`: task.stop."""
    out = engine.generate([state.prompt + state.prefix], SamplingParams(
        n=4 * n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=list(stop),
        seed=seed))[0]
    steps: list[str] = []
    for c in out:
        pieces = split_steps(c.text, task, rule)
        if pieces and pieces[0] not in steps:
            steps.append(pieces[0])
        if len(steps) == n:
            break
    return [State(state.prompt, state.prefix + s, state.example, state.position) for s in steps]


def mc_values(engine: Engine, states: list[State], k: int, task: str, temperature: float,
              max_new_tokens: int, seed: int, stop: tuple[str, ...] = (), *, top_p: float) -> list[float]:
    """Mean reward of `k` continuations from each state (VinePPO's estimator; k large = ground
    truth) under the run's sampler (`temperature`, `top_p`: the value its policy's samples
    have, which VinePPO estimates and PPO's value network is trained toward); `stop`: task.stop."""

    def reward_fn(items: list[tuple[str, Completion, dict[str, str]]]) -> list[float]:
        return rewards([(replace(c, text=prefix + c.text), ex["answer"]) for prefix, c, ex in items], task)

    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=list(stop),
                            seed=seed)
    return estimate_values([(s.prompt, s.prefix, s.example) for s in states], engine, k, params, reward_fn)


@torch.no_grad()
def value_net_predictions(value_model, tokenizer, states: list[State], batch_size: int = 64,
                          bos: bool = False) -> list[float]:
    """PPO's value network at each state: V(prompt + prefix), read at the state's last token
    (the text encoded as the engines encode it: BOS first with `bos`, task.prompt_bos)."""
    device = next(value_model.parameters()).device
    out: list[float] = []
    for i in range(0, len(states), batch_size):
        ids = [encode_prompt(tokenizer, s.prompt + s.prefix, bos) for s in states[i:i + batch_size]]
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in ids], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
        hidden = value_model.backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state
        last = mask.sum(1) - 1
        out += value_model.head(hidden[torch.arange(len(ids), device=device), last]).squeeze(-1).tolist()
    return out


def sample_examples(examples: list[dict[str, str]], n: int, seed: int) -> list[dict[str, str]]:
    return random.Random(seed).sample(examples, min(n, len(examples)))


__all__ = ["State", "alternative_steps", "calibration", "error_by_position", "held_out_states",
           "mc_values", "mean_absolute_error", "pairwise_ranking", "ranking_accuracy",
           "sample_examples", "value_net_predictions"]
