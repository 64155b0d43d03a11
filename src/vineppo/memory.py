"""Will the run fit? A before-start estimate of what RL training holds in memory, checked against
what the device has, so a run that cannot fit stops at once with the setting to change, instead
of an out-of-memory error hours in.

Per parameter (mixed-precision Adam, as in the ZeRO paper): the trained policy holds its weights
and gradients in the model dtype plus fp32 master weights and two fp32 Adam moments; in fp32 the
master copy is the weights themselves. The reference policy holds weights only; PPO's value network
is a second trained model, with its own activations; the `vllm` engine a further copy of the policy's weights plus its KV cache
(on a GPU: the share of its memory that `vllm_memory` gives vLLM, which takes all of it).
Activations: one mini-batch of `rl.minibatch_size` sequences of `model.max_length` tokens, about
`ACTIVATION_BYTES` per token, layer and hidden unit of the model dtype; with gradient
checkpointing (model.gradient_checkpointing) each layer's input and one layer's activations at a
time. The policy's logits over the vocabulary at the mini-batch's response tokens, which
checkpointing does not shrink (`LOGIT_BYTES` per token and vocabulary entry: at DeepSeekMath's
102,400 entries the largest part after the weights). And the iteration's episodes, which every process holds collated in host memory
(`episode_bytes_per_token` per token position of each; the device gets a chunk or mini-batch at a
time): small for PPO's 512 episodes, not for DPO+'s iteration over every train problem, and
checked against the node's RAM for all the processes on it. Not counted: the same episodes as
Python objects (48-94 bytes per actual token, slurm/README.md; their lengths are known only once
sampled).
"""

from __future__ import annotations

import os

import torch

from vineppo.config import ConfigError

ACTIVATION_BYTES = 16
"""Stored activations per token, layer and hidden unit, in units of the dtype's size (attention
and MLP inputs and intermediates without activation checkpointing; a rough, generous figure)."""


LOGIT_BYTES = 16
"""Per response token and vocabulary entry of a training step (`rollout.token_logprobs`): the fp32
log-softmax kept for the backward pass, plus up to three fp32 temporaries of its size at the peak
(the fp32 copy of the logits and its division by the temperature going forward; the gradients
through the gather, the log-softmax and the division coming back)."""


def dtype_bytes(dtype: str) -> int:
    return torch.finfo(getattr(torch, dtype)).bits // 8


def trained_bytes_per_param(dtype: str, zero_stage: int = 0, num_processes: int = 1, offload: bool = False) -> float:
    """Weights + gradients in `dtype`, plus fp32 master weights (unless `dtype` is fp32) and Adam's m, v,
    on one process: ZeRO stage 1 shards the optimizer state over the processes, 2 also the gradients,
    3 also the weights; offload moves the optimizer state to the CPU."""
    b = dtype_bytes(dtype)
    weights, grads, optimizer = b, b, (0 if b == 4 else 4) + 8
    if offload:
        optimizer = 0
    n = max(num_processes, 1)
    return (weights / (n if zero_stage >= 3 else 1) + grads / (n if zero_stage >= 2 else 1)
            + optimizer / (n if zero_stage >= 1 else 1))


def episode_bytes_per_token(algo: str) -> int:
    """Bytes per token position of one collated episode (`rollout.collate_episodes` and the passes
    over it): ids and attention mask (int64); response mask, advantages, the sampler's and the old
    policy's log-probs (fp32); the reference's for the methods with a KL penalty, PPO's values and
    returns, VinePPO's MC values."""
    return 8 + 8 + 4 * 4 + 4 * (algo in ("ppo", "vineppo", "grpo", "rloo")) + 8 * (algo == "ppo") + 4 * (algo == "vineppo")


def estimate(num_params: int, hidden_size: int, num_layers: int, *, dtype: str, algo: str, engine: str,
             minibatch_size: int, max_length: int, kv_cache_bytes: int = 0, zero_stage: int = 0,
             num_processes: int = 1, offload: bool = False, gradient_checkpointing: bool = False,
             vocab_size: int = 0, response_tokens: int = 0, engine_bytes: int | None = None,
             micro_batch_size: int | None = None) -> dict[str, int]:
    """Bytes each part of an RL run holds on one process's device (of `num_processes` under
    DeepSpeed ZeRO), by part. Each process trains on its share of a mini-batch, the policy's
    logits at up to `response_tokens` of each of its sequences. `engine_bytes`: what the vllm
    engine takes where known (`vllm_bytes`), else its weights + `kv_cache_bytes`. With
    `micro_batch_size` (rl.micro_batch_size) a pass holds at most that many sequences."""
    b = dtype_bytes(dtype)
    per_param = trained_bytes_per_param(dtype, zero_stage, num_processes, offload)
    minibatch_size = -(-minibatch_size // max(num_processes, 1))
    if micro_batch_size:
        minibatch_size = min(minibatch_size, micro_batch_size)
    parts = {"policy (weights, grads, Adam)": int(num_params * per_param),
             "reference policy": num_params * b,
             "activations (one mini-batch)": minibatch_size * max_length * hidden_size * b
             * (num_layers + ACTIVATION_BYTES if gradient_checkpointing else num_layers * ACTIVATION_BYTES)}
    if vocab_size and response_tokens:
        parts["logits (one mini-batch)"] = minibatch_size * response_tokens * vocab_size * LOGIT_BYTES
    if algo == "ppo":  # a second trained model, whose forward is held for the backward beside the policy's
        parts["value network (weights, grads, Adam)"] = int(num_params * per_param)
        parts["value network activations"] = parts["activations (one mini-batch)"]
    if engine == "vllm":
        parts["vllm engine (weights + KV cache)"] = (num_params * b + kv_cache_bytes if engine_bytes is None
                                                     else engine_bytes)
    elif zero_stage >= 3:
        parts["whole policy copy for the hf engine (ZeRO-3)"] = num_params * b
    return parts


def vllm_bytes(device: torch.device, fraction: float, weights: int, cpu_kv_cache_bytes: int = 2**30,
               total: int | None = None) -> int:
    """What the vllm engine takes: on a GPU, `fraction` (vllm_memory) of its `total` memory (vLLM
    reserves that much for its weights, KV cache and activations, and refuses to start where it is
    not free), which must leave room for a KV cache beside the `weights`; on the CPU, the weights
    and the fixed KV cache its CPU build is given (`VLLMEngine`'s cpu_kv_cache_gb)."""
    if device.type != "cuda":
        return weights + cpu_kv_cache_bytes
    total = torch.cuda.get_device_properties(device).total_memory if total is None else total
    share = int(fraction * total)
    if share < weights + 2**30:
        gib = 2**30
        raise ConfigError(f"vllm_memory={fraction}: {share / gib:.1f} GiB of the GPU's {total / gib:.1f} GiB leaves "
                          f"vLLM no room for a KV cache (1 GiB or more) beside the policy's weights "
                          f"({weights / gib:.1f} GiB); raise vllm_memory, or use engine=hf")
    return share


def episodes_bytes(algo: str, episodes: int, episode_tokens: int) -> int:
    """Host memory one process holds for the iteration's `episodes`, each padded to `episode_tokens`
    (the longest prompt and response)."""
    return episodes * episode_tokens * episode_bytes_per_token(algo)


def check_run_fits(parts: dict[str, int], episodes: int, device: torch.device, local_processes: int,
                   available=None) -> None:
    """`parts` (`estimate`, per process) against the device's free memory, and the episodes, which
    each of the `local_processes` on this node holds in host memory, against the node's available
    RAM. On the CPU both live in RAM, once per process. `available(device)` -> free bytes."""
    available = available or available_bytes
    n = max(local_processes, 1)
    times = f", x {n} processes on this node" if n > 1 else ""
    held = {f"the iteration's episodes (token tensors){times}": episodes * n} if episodes else {}
    if device.type == "cpu":
        check_fits({**{f"{k}{times}": v * n for k, v in parts.items()}, **held}, available(device), "cpu")
        return
    check_fits(parts, available(device), str(device))
    check_fits(held, available(torch.device("cpu")), "this node's RAM", HOST_HINT)


def model_shape(name_or_path: str, key: str = "rl.init") -> tuple[int, int, int, int]:
    """(parameters, hidden size, layers, vocabulary size) of a checkpoint from its config alone: the model is built
    on the meta device, so nothing is allocated or downloaded beyond config.json."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from vineppo.models import loading

    with loading(name_or_path, key):
        config = AutoConfig.from_pretrained(str(name_or_path))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return (sum(p.numel() for p in model.parameters()), config.hidden_size, config.num_hidden_layers,
            config.vocab_size)


def available_bytes(device: torch.device) -> int:
    """Free memory on `device` now: GPU memory on CUDA, available RAM on the CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


DEVICE_HINT = ("lower rl.minibatch_size (activations, logits) or model.max_length, model.gradient_checkpointing=true "
               "(activations), fewer episodes per iteration "
               "(rl.prompts_per_iter, rl.samples_per_prompt, rl.max_new_tokens), use model.dtype=bfloat16 on a GPU, "
               "use engine=hf (no second copy of the weights), more processes with deepspeed.enabled=true "
               "(deepspeed.zero_stage=3 shards the weights too, deepspeed.offload_optimizer=true moves Adam to the "
               "CPU), or a GPU with more memory")
HOST_HINT = ("fewer episodes per iteration (rl.prompts_per_iter, rl.samples_per_prompt, rl.max_new_tokens), "
             "fewer processes per node, or a node with more RAM")


def check_fits(parts: dict[str, int], available: int, where: str, hint: str | None = None) -> None:
    """Raise a ConfigError listing the parts and the settings to change (`hint`, by default the
    device's) when they do not fit."""
    need = sum(parts.values())
    if need <= available:
        return
    gib = 2**30
    lines = "\n".join(f"  {name}: {v / gib:.1f} GiB" for name, v in parts.items())
    raise ConfigError(
        f"the run needs about {need / gib:.1f} GiB on {where}, which has {available / gib:.1f} GiB free:\n{lines}\n"
        + (hint or DEVICE_HINT))
