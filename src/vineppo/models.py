"""Tokenizer and model loading. Everything loads through `AutoTokenizer` / `AutoModelForCausalLM`
from a hub name or a local path, so the tiny model built here and the paper's checkpoints take the
same path through the code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from vineppo.config import ConfigError, ModelConfig
from vineppo.distributed import require_cuda

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def build_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts`, digits always split one per token (arithmetic is
    learnable digit by digit), saved and loaded as an ordinary transformers tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS)
    hf.padding_side = "left"
    return hf


def build_tiny_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A small Llama from a config (no download), initialised with `seed`."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_length,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model


MODEL_FILES = ("config.json",)
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def check_source(name_or_path: str | Path, key: str = "model.name_or_path", files: tuple[str, ...] = MODEL_FILES) -> None:
    """A ConfigError naming `key` where `name_or_path` cannot be a model (or, with TOKENIZER_FILES,
    a tokenizer): a path that does not exist, a file, or a folder with none of `files`. A hub name
    ("org/name") is tried when loaded."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{key}={text}: a file, not a model folder")
        if not any((path / f).exists() for f in files):
            raise ConfigError(f"{key}={text}: no {' or '.join(files)} in this folder, so no saved "
                              f"{'model' if files == MODEL_FILES else 'tokenizer'} (a run's final/ or "
                              "checkpoints/step-N/ folder holds one)")
    elif text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ConfigError(f"{key}={text}: no such folder")


@contextmanager
def loading(name_or_path: str | Path, key: str = "model.name_or_path",
            files: tuple[str, ...] = MODEL_FILES) -> Iterator[None]:
    """Load from `name_or_path` inside: a bad source, or one transformers cannot read (not on
    the hub, not cached while offline, files missing), ends in one ConfigError naming `key`."""
    check_source(name_or_path, key, files)
    try:
        yield
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{key}={name_or_path}: could not load it ({first})") from e


def load_tokenizer(name_or_path: str | Path, key: str = "model.name_or_path"):
    with loading(name_or_path, key, TOKENIZER_FILES):
        tok = AutoTokenizer.from_pretrained(str(name_or_path))
    if tok.pad_token is None:  # many causal LMs ship without one
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    require_cuda(device)
    return torch.device(device)


def load_model(name_or_path: str | Path, dtype: str = "float32", device: str = "cpu",
               key: str = "model.name_or_path"):
    """A causal LM from a hub name or a local folder, in eval mode on `device`."""
    target = resolve_device(device)
    with loading(name_or_path, key):
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=getattr(torch, dtype))
    return model.to(target).eval()


def enable_gradient_checkpointing(model) -> None:
    """model.gradient_checkpointing: each layer's activations recomputed in the backward pass
    instead of stored (transformers' non-reentrant checkpointing, which DeepSpeed ZeRO-3 also
    takes). Its training forward drops any KV cache, so the shared-prefix path is then skipped
    there (`shared_prefix.supports`). transformers 5.20 renamed it activation checkpointing."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def is_checkpointing(model) -> bool:
    """Whether `model` recomputes its activations in the backward pass (either transformers name)."""
    if hasattr(type(model), "is_activation_checkpointing"):
        return bool(model.is_activation_checkpointing)
    return bool(getattr(model, "is_gradient_checkpointing", False))


def num_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
