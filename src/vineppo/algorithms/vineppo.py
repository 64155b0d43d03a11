"""VinePPO (Kazemnejad et al., 2024): Monte Carlo values at reasoning-step boundaries.

For every episode and every state t = prompt + steps[:t] (t = 0..n-1), sample K continuations
with the current policy, grade response prefix + continuation, and set V(state t) to the mean
reward. Identical states are estimated once. States past `max_steps` take the trajectory's own
return. Step advantage A_t = r_t + V(s_{t+1}) - V(s_t) goes to every token of step t.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from vineppo.algorithms.advantages import vine_step_advantages
from vineppo.inference import Completion, Engine, SamplingParams
from vineppo.rollout import Episode, token_char_starts, token_step_index
from vineppo.steps import step_boundaries

RewardFn = Callable[[list[tuple[str, Completion, dict[str, str]]]], list[float]]
"""[(response prefix, continuation, example)] -> the reward of each full response prefix +
continuation (all of an iteration's continuations in one call, so grading can be spread out)."""


def estimate_values(states: list[tuple[str, str, dict[str, str]]], engine: Engine, k: int,
                    params: SamplingParams, reward_fn: RewardFn) -> list[float]:
    """V(state) = mean reward of K continuations, for states given as (prompt, response prefix, example).
    Identical states (same prompt + prefix text) are sampled once."""
    index: dict[str, int] = {}
    for prompt, prefix, _ in states:
        index.setdefault(prompt + prefix, len(index))
    samples = engine.generate(list(index), SamplingParams(
        n=k, temperature=params.temperature, top_p=params.top_p, max_new_tokens=params.max_new_tokens,
        stop=params.stop, seed=params.seed))
    graded = iter(reward_fn([(prefix, c, ex) for prompt, prefix, ex in states for c in samples[index[prompt + prefix]]]))
    return [statistics.fmean(next(graded) for _ in samples[index[prompt + prefix]]) for prompt, prefix, _ in states]


def assign_advantages(episodes: list[Episode], engine: Engine, tokenizer, task: str, k: int,
                      max_steps: int | None, params: SamplingParams, reward_fn: RewardFn,
                      rule: str = "auto") -> dict[str, float]:
    """Set every episode's per-token advantages from MC step values; returns a few statistics.
    `rule` says where steps end (`vineppo.steps.split_steps`)."""
    plans = []
    states: list[tuple[str, str, dict[str, str]]] = []
    for e in episodes:
        offsets = step_boundaries(e.response, task, rule) or [0]  # an empty response is one empty step
        estimated = offsets[:max_steps]
        first = len(states)
        states.extend((e.prompt, e.response[:off], e.example) for off in estimated)
        plans.append((e, offsets, first, len(estimated)))
    values = estimate_values(states, engine, k, params, reward_fn) if states else []
    for e, offsets, first, n_est in plans:
        # States past the cap take the trajectory's return (SPEC.md).
        step_values = values[first:first + n_est] + [e.reward] * (len(offsets) - n_est)
        step_adv = vine_step_advantages(step_values, e.reward)
        step_of_token = token_step_index(token_char_starts(tokenizer, e.response_ids), offsets)
        e.advantages = [step_adv[s] for s in step_of_token]
        e.values = [step_values[s] for s in step_of_token]
    return {"vine/num_states": float(len(states)), "vine/num_unique_states": float(len({p + s for p, s, _ in states})),
            "vine/mean_value": statistics.fmean(values) if values else 0.0}

