"""Every knob in one place: dataclasses, presets (YAML), and `key=value` overrides.

A config is built as: dataclass defaults <- preset YAML (`presets/<name>.yaml`) <- command-line
`key=value` pairs. An unknown key is an error that names the closest valid key.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from vineppo.steps import check_rule


class ConfigError(ValueError):
    """A bad configuration key or value, with a message naming it."""


@dataclass
class TaskConfig:
    name: str = "arith"
    """Task: arith | arith_hard (generated here) | gsm8k | math (from the hub or local files)."""
    num_train: int = 4000
    """Generated tasks: number of training problems."""
    num_test: int = 500
    """Generated tasks: number of test problems (never shared with train)."""
    num_sft: int = 0
    """Generated tasks: fresh problems for SFT only, never RL prompts or test problems (0: SFT on
    the train split, as for hub tasks)."""
    flaw_rate: float = 0.0
    """Generated tasks: chance that a step of an SFT solution (of a kind in task.flaw_ops; default a
    subtraction, written as an addition) is written with the wrong operation, the wrong value carried
    through: the controlled, step-local flaw RL has to find and fix."""
    flaw_ops: list[str] = field(default_factory=lambda: ["sub"])
    """Generated tasks: the operations whose SFT solution steps can be flawed, each written with
    its wrong operation (sub -> +, add -> -, mul -> +, div -> -; tasks/arith.py FLAW_OF)."""
    seed: int = 1234
    """Generated tasks: seed of the problem generator; every task: of the validation split's draw
    (independent of the training seed)."""
    min_steps: int | None = None
    """Generated tasks: fewest operations per problem (None: the task's default)."""
    max_steps: int | None = None
    """Generated tasks: most operations per problem (None: the task's default)."""
    max_operand: int | None = None
    """Generated tasks: largest operand (None: the task's default)."""
    max_start: int | None = None
    """Generated tasks: largest starting amount (None: the task's default)."""
    ops: list[str] | None = None
    """Generated tasks: allowed operations among add, sub, mul, div (None: the task's default)."""
    hub_name: str | None = None
    """Hub tasks: dataset name on the hub (None: the task's default)."""
    hub_config: str | None = None
    """Hub tasks: dataset config name (None: the task's default; MATH: every subject)."""
    math_split: str = "prm800k"
    """MATH: prm800k (the paper's: test on the 500 problems of Lightman et al.'s PRM800K split,
    HuggingFaceH4/MATH-500 or task.test_path, train on the other 12,000 of MATH) or original
    (MATH's own 7,500 train / 5,000 test)."""
    train_path: str | None = None
    """Hub tasks: local JSONL or Parquet file for the train split (overrides the hub)."""
    test_path: str | None = None
    """Hub tasks: local JSONL or Parquet file for the test split (overrides the hub)."""
    limit_test: int | None = None
    """Use only the first N test problems (None: all)."""
    prompt_template: str = "Question: {question}\nAnswer:\n"
    """The prompt: this text with `{question}` (its one field; other braces are plain text)
    replaced by the problem. It must be the format the model was trained on: the tiny preset's
    (this default) or, for the authors' SFT checkpoints, theirs (the paper preset)."""
    response_template: str = "{solution}"
    """SFT: the training target, this text with `{solution}` replaced by the worked solution (the
    end-of-sequence token follows). The authors' SFT format wraps it in newlines."""
    prompt_bos: bool = False
    """Put the tokenizer's beginning-of-sequence token before every prompt (as the authors' SFT
    data did, and as vLLM and `tokenizer(text)` do by default for Llama-family tokenizers)."""
    stop: list[str] = field(default_factory=list)
    """Stop strings: a sampled response (RL episodes, VinePPO's MC continuations, evaluation) ends
    before the first one, as if at EOS. The authors stop theirs at "\\n\\n\\nProblem:" (the paper
    preset), where a model that misses EOS starts another problem. On the command line \\n and \\t
    in them are a newline and a tab (quoted, as a colon needs: 'task.stop=["\\n\\n\\nProblem:"]')."""
    num_validation: int = 0
    """Hold out N train problems as a validation split (never RL prompts; RestEM's epoch choice
    with rl.restem_select=validation reads it), drawn with task.seed, so that every method and
    training seed holds out the same ones. 0: none."""
    grade_timeout_s: float = 1.0
    """Wall-clock cap on one grading call's symbolic comparison (MATH-format answers): past it the
    answer counts as wrong, and the call is counted in `train/grading_timeouts`."""
    grade_workers: int = -1
    """Processes for the symbolic comparisons of an iteration's gradings (MATH format; GSM8K and
    plain-number answers never need one): -1 one per CPU of this process (at most 8), 0 or 1 none,
    N a pool of N. The pool is used only for a batch of grading.POOL_MIN or more comparisons."""


@dataclass
class ModelConfig:
    name_or_path: str | None = None
    """Hub name or local path of a causal LM; None builds the tiny model from scratch."""
    vocab_size: int = 512
    """Tiny model: BPE vocabulary size of the tokenizer built here."""
    hidden_size: int = 128
    """Tiny model: width."""
    num_layers: int = 4
    """Tiny model: transformer blocks."""
    num_heads: int = 4
    """Tiny model: attention heads."""
    intermediate_size: int = 512
    """Tiny model: MLP width."""
    max_length: int = 384
    """Longest prompt + response in tokens."""
    dtype: str = "float32"
    """float32 on CPU; bfloat16 on GPU for the paper preset."""
    gradient_checkpointing: bool = False
    """Recompute each layer's activations in the backward pass instead of storing them (SFT, and RL's
    policy and value network): a mini-batch's activations fall to each layer's input plus one
    layer's, for about a third more training compute (SPEC.md's reference runs and the authors'
    trainers use it; without it a 7B model's mini-batch share does not fit an 80 GB GPU). The
    training forward then skips the shared-prefix path, whose cache a checkpointed layer drops."""


@dataclass
class SFTConfig:
    learning_rate: float = 2e-3
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    batch_size: int = 32
    """Sequences per optimizer step."""
    max_steps: int = 700
    """Optimizer steps (where sft.epochs is 0)."""
    epochs: float = 0.0
    """Passes over the SFT data instead of max_steps where > 0: ceil(epochs * examples /
    batch_size) steps (the authors' SFT: 2 epochs at batch 64)."""
    warmup_ratio: float = 0.03
    """Fraction of steps with linear warm-up, then cosine decay to 10%."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    eval_every: int = 250
    """Evaluate greedy test accuracy every N steps (0: only at the end)."""
    save_every: int = 250
    """Checkpoint every N steps, for resume."""
    log_every: int = 25
    """Log the training loss every N steps."""


@dataclass
class EvalConfig:
    split: str = "test"
    """Split that `vineppo eval` scores: test | train (the RL prompts) | sft (the first problems SFT
    trained on, as many as the test split holds: train-vs-test accuracy shows memorisation)."""
    batch_size: int = 64
    """Prompts per generation batch."""
    max_new_tokens: int = 160
    """Longest generated response; a response cut here scores 0."""
    temperature: float = 0.6
    """Sampling temperature for sampled accuracy (greedy accuracy ignores it)."""
    top_p: float = 0.9
    """Nucleus sampling for sampled accuracy."""
    num_samples: int = 4
    """Samples per problem for sampled accuracy (0: greedy only)."""


@dataclass
class RLConfig:
    algo: str = "vineppo"
    """ppo | vineppo | grpo | rloo | restem | dpo_plus."""
    init: str | None = None
    """SFT checkpoint to start from (hub name or folder); also the KL reference policy."""
    iterations: int = 20
    """Policy iterations (tiny: 20; paper: ~650 GSM8K, ~1000 MATH)."""
    prompts_per_iter: int = 16
    """Prompts sampled per iteration (paper: 64). 0: every train problem, in a new order each
    iteration (the authors' RestEM and DPO+ iterations)."""
    samples_per_prompt: int = 4
    """Responses per prompt (paper: 8)."""
    epochs: int = 2
    """Passes over each iteration's episodes (paper: 2)."""
    minibatch_size: int = 16
    """Episodes per optimizer step (paper: 64)."""
    micro_batch_size: int | None = None
    """Episodes per forward and backward pass: each step accumulates the gradients of its
    mini-batch over micro-batches of this many (whole DPO+ pairs), for less memory and the same
    update (the authors' per_device_train_batch_size: 8). None: the whole mini-batch at once.
    Under DeepSpeed, per process: each runs its share of the mini-batch in passes of this many."""
    learning_rate: float = 1e-4
    """Adam learning rate (paper: 1e-6 for 1B-7B models; the 1M-parameter tiny model needs more)."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    grad_clip_scope: str = "per_model"
    """PPO: 'per_model' clips the policy's and the value network's gradients each to rl.grad_clip,
    as separate actor and critic optimizers do (the paper's reference code); 'joint' clips their
    concatenation, so a large value-loss gradient shrinks the policy's step (TRL's PPO, and every
    PPO run in results/ made before grad_clip_hard/). Under DeepSpeed, per model gives each its own
    engine; joint, one engine for both."""
    temperature: float = 0.6
    """Sampling temperature of rollouts and MC continuations (paper: 0.6)."""
    top_p: float = 0.9
    """Nucleus sampling of rollouts (paper: 0.9)."""
    max_new_tokens: int = 160
    """Longest response; a response cut here scores 0."""
    clip: float = 0.2
    """PPO ratio clip."""
    kl_coef: float = 1e-4
    """Weight of the k3 KL-to-reference loss term (paper: 1e-4)."""
    value_clip: float | None = 0.2
    """PPO value-loss clip (paper: 0.2): within an iteration's update the loss stops pulling a
    token's value toward its return once it has moved this far from where the iteration began, so a
    value network starting at 0 needs several iterations to reach the returns; null: no clip."""
    value_head_init: str = "zero"
    """PPO: the value network's scalar head at the start. zero: V = 0 on every state (the tiny
    preset's runs); normal: the authors' (their value head: weights from N(0, 1 / (hidden + 1)),
    bias 0, seeded by `seed`), so V starts as a random projection of each state."""
    lr_schedule: str = "constant"
    """The learning rate over training: constant, or warmup_decay, the authors' (DeepSpeed's
    WarmupDecayLR as their configs set it: a log-rate warm-up from 0 over rl.warmup_ratio of the
    steps, then a linear decay to 0 at the last step; over the whole run for PPO, VinePPO, GRPO and
    RLOO, over each iteration's steps for RestEM and DPO+, as their trainers count them)."""
    warmup_ratio: float = 0.03
    """rl.lr_schedule=warmup_decay: the fraction of the steps that warm up (SPEC.md: 3%)."""
    value_learning_rate: float | None = None
    """PPO: Adam learning rate of the value network (null: rl.learning_rate, one rate for both as
    in the paper). Its scalar head starts at zero, so at the tiny preset's rate it still predicts
    near 0 after a short run (results/README.md, critic_lr_hard/)."""
    gamma: float = 1.0
    """PPO discount."""
    lam: float = 1.0
    """PPO GAE lambda."""
    vine_k: int = 9
    """VinePPO: MC continuations per state (paper: 9)."""
    vine_max_steps: int | None = 25
    """VinePPO: states past this many steps take the trajectory's return (the authors': 25 for
    GSM8K, none for MATH). None: every step's state is estimated."""
    vine_steps: str = "auto"
    """VinePPO: where steps end (`vineppo.steps`): auto (the task's rule: lines for GSM8K, lines and
    sentence ends for MATH), lines, math, lines_answer (lines, the `#### n` line joined to the one
    before it: the authors' GSM8K steps), response (one step: only the prompt's value), or
    regex:PATTERN (a step ends after each match)."""
    dpo_beta: float = 0.1
    """DPO+: beta of the DPO loss."""
    dpo_nll_coef: float = 1.0
    """DPO+: weight of the NLL term on the correct response (per token)."""
    dpo_positive_lambda: float = 0.0
    """DPO+: DPO-Positive's penalty (Pal et al., 2024), the authors' DPO+ (their dpo_positive
    trainer, lambda 50): lambda * max(0, log pi_ref(y_w) - log pi(y_w)) taken off the DPO logits,
    so the chosen response's likelihood is kept from falling below the reference's. 0: none."""
    dpo_max_pairs: int | None = None
    """DPO+: pairs per prompt. None: correct and incorrect responses paired off, each in at most
    one pair; N: N of all their (correct, incorrect) combinations drawn at random, all of them where
    fewer (the authors': 64 of 64 samples)."""
    restem_from: str = "current"
    """RestEM: what each iteration fine-tunes on the current policy's correct samples. current:
    the current policy (SPEC.md); init: a fresh copy of rl.init, weights and optimizer, as ReST-EM
    (Singh et al., 2023) and the authors' restem_trainer do ("the optimization in each iteration
    starts from scratch"); the next iteration samples from what it trained."""
    restem_select: str = "last"
    """RestEM: which epoch's model an iteration keeps. last: the last one's. validation: the
    authors' rule (SPEC.md: "pick the checkpoint by validation"; their restem_trainer): after each
    epoch, accuracy on task.num_validation held-out train problems; keep training while it rises
    and keep the last epoch that raised it (the first epoch's model at least)."""
    eval_every: int = 5
    """Evaluate test accuracy every N iterations (and at the end)."""
    eval_samples: int = 0
    """Also sample this many responses per test problem at each evaluation (at eval.temperature,
    eval.top_p): eval/sampled_accuracy (their mean, pass@1; the authors report it from 16 samples
    at 0.35) and eval/pass_at_k beside greedy accuracy. 0: greedy only."""
    save_every: int = 1
    """Checkpoint every N iterations."""
    save_every_steps: int = 0
    """Also checkpoint inside an iteration, every N of its gradient steps (and once before its
    first, with the iteration's samples, log-probs and advantages): for RestEM's and DPO+'s
    iterations, hours long at paper scale, a stopped job then resumes where it was, not at the
    iteration's start. Under RestEM's validation choice (rl.restem_select) at each epoch's end
    instead. 0: at iteration ends only."""
    keep_checkpoints: int = 2
    """Checkpoints kept in the run folder (0: all, e.g. for the value-accuracy analysis)."""
    rollout_batch_size: int = 256
    """Sequences in flight per generation batch for rollouts and MC continuations."""
    minibatch_by_length: bool = True
    """Cut each epoch's shuffled episodes into mini-batches by length (the mini-batches then taken in
    random order): about a quarter less padding to compute on; every episode still once per epoch."""
    shared_prefix: bool = True
    """Log-prob passes encode each distinct prompt of a mini-batch (or chunk) once and run the
    responses on its cache (shared_prefix.py): the same values and gradients, about 20-30% less
    update time on the tiny preset, whose prompts are half of each episode."""
    old_logprobs: str = "sampler"
    """log pi_old of the episodes: 'sampler' takes the hf engine's own (one forward pass fewer per
    iteration; other engines fall back to recomputing), 'recompute' always runs the policy again."""
    response_tokens: str = "sampled"
    """What an episode trains on: 'sampled', the engine's token ids (EOS, or the tokens that
    completed a stop string, included); 'text', the response text (cut before a stop string)
    encoded afresh as SFT encodes its targets, plus EOS where it stopped (the authors' episode
    generators): the policy then learns to end with EOS rather than with a stop string. The
    sampler's log-probs belong to other tokens then, so the old log-probs are recomputed."""
    whiten_advantages: bool = True
    """Whiten the advantages over the batch's valid tokens before the loss (SPEC.md, for PPO and
    VinePPO). GRPO's and RLOO's own definitions stop at the group-relative advantage; with this
    false they train on it as it is (as TRL's GRPO does)."""
    autocast: str | None = None
    """'bfloat16': the update's forward passes (and the old / reference / value passes, so that
    the PPO ratio compares like with like) under torch.autocast, fp32 master weights and Adam kept.
    On CPUs with bf16 dot products (AVX512-BF16, AMX) the update runs about 1.8x faster; on CPU
    attention then runs eagerly, since the bf16 flash-attention backward is slower than fp32 there.
    'auto': bfloat16 where the hardware has bf16 arithmetic, else null. null: everything in
    model.dtype. Generation is unaffected; with DeepSpeed, use deepspeed.bf16 instead."""
    rollout_shards: int = 0
    """Shards an iteration's prompts are cut into, each sampled with its own seed and generated by
    one process (0: one per process). Fix it (e.g. 8) to get the same episodes on 1, 2 or 8 GPUs."""


@dataclass
class DeepSpeedConfig:
    enabled: bool = False
    """Train the policy (and PPO's value network) through DeepSpeed; needed for multi-process RL."""
    zero_stage: int = 2
    """ZeRO stage: 2 shards optimizer state and gradients, 3 also the parameters."""
    offload_optimizer: bool = False
    """Keep Adam's state (and its update) on the CPU: less GPU memory, slower steps."""
    bf16: str = "auto"
    """auto (bf16 on GPU, fp32 on CPU) | true | false: bf16 weights with fp32 master weights."""


@dataclass
class Config:
    preset: str = "tiny"
    """Preset applied before command-line overrides: tiny | paper."""
    seed: int = 0
    """Seed of model init, data order and sampling."""
    output_dir: str = "runs"
    """Where run folders are created."""
    run_name: str | None = None
    """Run folder name (None: derived from task and seed)."""
    device: str = "auto"
    """auto | cpu | cuda."""
    num_threads: int = 0
    """torch CPU threads (0: leave torch's default)."""
    engine: str = "hf"
    """Inference engine for rollouts, MC values and evaluation: hf | vllm."""
    vllm_memory: float = 0.3
    """engine=vllm on a GPU: the share of the GPU's memory the engine takes for its copy of the
    policy's weights, its KV cache and its own activations (vLLM's gpu_memory_utilization); the
    rest holds training. The RL memory check counts it."""
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    deepspeed: DeepSpeedConfig = field(default_factory=DeepSpeedConfig)


PRESETS = ("tiny", "paper")


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for f in fields(cls):
        name = f"{prefix}{f.name}"
        sub = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
        if is_dataclass(sub):
            keys.extend(_all_keys(type(sub), f"{name}."))
        else:
            keys.append(name)
    return keys


def valid_keys() -> list[str]:
    """Every settable dotted key, e.g. `sft.learning_rate`."""
    return _all_keys(Config)


def key_docs() -> dict[str, str]:
    """Every settable key's description: the string under its field in this file's dataclasses
    (read from the source, so `vineppo keys` says what the code says), on one line."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    docs: dict[tuple[str, str], str] = {}
    for node in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for a, b in zip(node.body, node.body[1:], strict=False):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr)
                    and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)):
                docs[node.name, a.target.id] = " ".join(b.value.value.split())
    out: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        for f in fields(cls):
            sub = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
            if is_dataclass(sub):
                walk(type(sub), f"{prefix}{f.name}.")
            else:
                out[f"{prefix}{f.name}"] = docs.get((cls.__name__, f.name), "")

    walk(Config, "")
    return out


def _check_keys(flat: dict[str, Any], where: str) -> None:
    keys = valid_keys()
    for key in flat:
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{key}' in {where}{hint}")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


TEXT_KEYS = ("task.prompt_template", "task.response_template")
TEXT_LIST_KEYS = ("task.stop",)
"""Lists of free text: \n and \t in their items are a newline and a tab."""
"""Free text: `task.prompt_template=Q:\n{question}` is that text with \n and \t read as a newline
and a tab, not YAML (which would read a mapping, or keep the backslash); a quoted YAML string
(`'task.prompt_template="Q:\n{question}"'`) is read as YAML reads it."""


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` -> `{"a.b": 1, "c": "x"}`, values parsed as YAML scalars."""
    out = {}
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"argument '{arg}' is not of the form key=value")
        key, value = arg.split("=", 1)
        try:
            parsed = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError:
            parsed = value
        if key.strip() in TEXT_KEYS and not (value.lstrip()[:1] in ("'", '"') and isinstance(parsed, str)):
            parsed = value.replace("\\n", "\n").replace("\\t", "\t")
        if key.strip() in TEXT_LIST_KEYS and isinstance(parsed, list):
            parsed = [x.replace("\\n", "\n").replace("\\t", "\t") if isinstance(x, str) else x for x in parsed]
        out[key.strip()] = parsed
    return out


def load_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1, cutoff=0.0)
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(PRESETS)} (closest: {close[0]})")
    text = resources.files("vineppo").joinpath("presets", f"{name}.yaml").read_text()
    data = OmegaConf.to_container(OmegaConf.create(text)) or {}
    assert isinstance(data, dict)
    return data


def make_config(overrides: dict[str, Any] | list[str] | None = None) -> Config:
    """Defaults <- preset <- overrides. Overrides are a dict of dotted keys or `key=value` strings."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = dict(overrides or {})
    _check_keys(overrides, "the overrides")
    preset = overrides.get("preset", "tiny")
    preset_data = load_preset(preset)
    parts = {section: preset_data.pop(section, None) or {} for section in ("per_task", "per_algo")}
    preset_flat = _flatten(preset_data)
    _check_keys(preset_flat, f"preset '{preset}'")
    # A preset may set some keys for one task only (e.g. a longer SFT for the harder task), and some
    # for one method (e.g. the authors' RestEM and DPO+ protocols), the method's over the task's.
    for section, key, default in (("per_task", "task.name", TaskConfig().name), ("per_algo", "rl.algo", RLConfig().algo)):
        chosen = overrides.get(key, preset_flat.get(key, default))
        for name, part in parts[section].items():
            flat = _flatten(part or {})
            _check_keys(flat, f"preset '{preset}', {section}.{name}")
            if name == chosen:
                preset_flat.update(flat)
    base = OmegaConf.structured(Config)
    merged = {**preset_flat, **overrides}
    try:
        for key, value in merged.items():
            OmegaConf.update(base, key, value, merge=False)
    except Exception as e:  # omegaconf's type errors name the key; keep its message
        raise ConfigError(f"bad config value: {e}") from e
    cfg = OmegaConf.to_object(base)
    assert isinstance(cfg, Config)
    check_values(cfg)
    return cfg


# Ranges of the numeric settings, checked when a config is made, so that a value no run can use
# (rl.minibatch_size=0, rl.vine_k=0, a negative rate) fails here by name, not deep in training.
AT_LEAST_1 = ("model.vocab_size", "model.hidden_size", "model.num_layers", "model.num_heads",
              "model.intermediate_size", "model.max_length", "sft.batch_size", "sft.max_steps", "sft.save_every",
              "sft.log_every", "eval.batch_size", "eval.max_new_tokens", "rl.dpo_max_pairs", "rl.micro_batch_size",
              "rl.samples_per_prompt", "rl.epochs", "rl.minibatch_size", "rl.max_new_tokens", "rl.vine_k",
              "rl.eval_every", "rl.save_every", "rl.rollout_batch_size", "task.num_train", "task.num_test",
              "task.limit_test")
AT_LEAST_0 = ("rl.iterations", "rl.prompts_per_iter", "rl.dpo_positive_lambda", "sft.eval_every", "eval.num_samples", "rl.keep_checkpoints", "rl.save_every_steps", "rl.rollout_shards",
              "rl.vine_max_steps", "rl.eval_samples", "task.num_validation", "num_threads", "task.num_sft", "rl.kl_coef", "sft.weight_decay", "rl.dpo_nll_coef", "sft.epochs")
ABOVE_0 = ("vllm_memory", "sft.learning_rate", "rl.learning_rate", "rl.temperature", "eval.temperature", "rl.clip", "rl.dpo_beta",
           "sft.grad_clip", "rl.grad_clip")
IN_0_1 = ("vllm_memory", "rl.gamma", "rl.lam", "task.flaw_rate", "sft.warmup_ratio", "rl.warmup_ratio", "rl.top_p", "eval.top_p")
GROUP_METHODS = ("grpo", "rloo", "dpo_plus")  # compare a prompt's responses with each other
# The settings that name one of a few choices (None passes where a key allows it). The modules that
# act on them keep their own lists (loop.ALGOS, inference.ENGINES, tasks.TASKS, ...); tests/test_config.py
# checks that these agree with them.
CHOICES: dict[str, tuple[Any, ...]] = {
    "task.name": ("arith", "arith_hard", "gsm8k", "math"),
    "model.dtype": ("float32", "bfloat16", "float16"),
    "engine": ("hf", "vllm"),
    "eval.split": ("test", "train", "sft"),
    "rl.algo": ("ppo", "vineppo", "grpo", "rloo", "restem", "dpo_plus"),
    "rl.old_logprobs": ("sampler", "recompute"),
    "rl.response_tokens": ("sampled", "text"),
    "rl.grad_clip_scope": ("per_model", "joint"),
    "rl.restem_select": ("last", "validation"),
    "rl.restem_from": ("current", "init"),
    "rl.lr_schedule": ("constant", "warmup_decay"),
    "rl.value_head_init": ("zero", "normal"),
    "task.math_split": ("prm800k", "original"),
    "rl.autocast": ("auto", "bfloat16"),
    "deepspeed.bf16": ("auto", "true", "false"),
    "deepspeed.zero_stage": (0, 1, 2, 3),
}
FLAW_OPS = ("add", "sub", "mul", "div")
"""The operations whose steps `task.flaw_ops` may flaw (tasks.arith.FLAW_OF)."""
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_values(cfg: Config) -> None:
    """ConfigError naming the first setting out of its range (None, where a key allows it, passes)."""
    def value(key: str) -> Any:
        node: Any = cfg
        for part in key.split("."):
            node = getattr(node, part)
        return node

    rules = [(AT_LEAST_1, lambda v: v >= 1, ">= 1"), (AT_LEAST_0, lambda v: v >= 0, ">= 0"),
             (ABOVE_0, lambda v: v > 0, "> 0"), (IN_0_1, lambda v: 0 <= v <= 1, "in [0, 1]")]
    for keys, ok, rule in rules:
        for key in keys:
            v = value(key)
            if v is not None and not ok(v):
                raise ConfigError(f"{key} must be {rule}, got {v}")
    for key, choices in CHOICES.items():
        v = value(key)
        v = str(v).lower() if key == "deepspeed.bf16" else v  # `true` arrives as the string 'True'
        if v is not None and v not in choices:
            close = difflib.get_close_matches(str(v), [str(c) for c in choices], n=1)
            raise ConfigError(f"{key}: '{v}' is not one of {', '.join(map(str, choices))}"
                              + (f"; did you mean '{close[0]}'?" if close else ""))
    if not DEVICE.fullmatch(str(cfg.device)):
        raise ConfigError(f"device: '{cfg.device}' is not one of auto, cpu, cuda, cuda:N")
    if not cfg.task.flaw_ops or set(cfg.task.flaw_ops) - set(FLAW_OPS):
        raise ConfigError(f"task.flaw_ops must be a non-empty list of {', '.join(FLAW_OPS)}, got {cfg.task.flaw_ops}")
    for key, field_name in (("task.prompt_template", "question"), ("task.response_template", "solution")):
        if str(value(key)).count("{" + field_name + "}") != 1:
            raise ConfigError(f"{key} must hold {{{field_name}}} exactly once (where the {field_name} goes), "
                              f"got {value(key)!r}")
    if any(not isinstance(x, str) or not x for x in cfg.task.stop):
        raise ConfigError(f"task.stop must be a list of non-empty strings, got {cfg.task.stop!r}")
    if cfg.rl.top_p == 0 or cfg.eval.top_p == 0:
        raise ConfigError("rl.top_p and eval.top_p must be > 0 (nucleus sampling keeps at least one token)")
    if cfg.model.name_or_path is None and cfg.model.hidden_size % cfg.model.num_heads:
        raise ConfigError(f"model.hidden_size ({cfg.model.hidden_size}) must be a multiple of model.num_heads "
                          f"({cfg.model.num_heads})")
    try:
        check_rule(cfg.rl.vine_steps)
    except ValueError as e:
        raise ConfigError(f"rl.vine_steps: {e}") from None
    if cfg.rl.algo == "restem" and cfg.rl.restem_select == "validation" and cfg.task.num_validation < 1:
        raise ConfigError("rl.restem_select=validation needs a validation split: set task.num_validation >= 1")
    if cfg.rl.algo in GROUP_METHODS and cfg.rl.samples_per_prompt < 2:
        raise ConfigError(f"rl.algo={cfg.rl.algo} compares each prompt's responses with each other: "
                          f"rl.samples_per_prompt must be >= 2, got {cfg.rl.samples_per_prompt}")


def to_dict(cfg: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg))  # type: ignore[return-value]


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_changes(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs, with (old, new) values."""
    a, b = _flatten(to_dict(old)), _flatten(to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_unchanged(path: str | Path, cfg: Config, free: tuple[str, ...]) -> None:
    """Refuse to continue the run that recorded `path` under settings that would change what it
    computes: every differing key is named with both values. `free` lists the keys (or, ending in
    '.', the sections) that may change."""
    if not Path(path).exists():
        return
    changed = {k: v for k, v in config_changes(load_config(path), cfg).items()
               if not any(k == f or (f.endswith(".") and k.startswith(f)) for f in free)}
    if changed:
        listed = "; ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in changed.items())
        raise ConfigError(f"{Path(path).parent} was started with other settings ({listed}); continuing it "
                          "would mix two runs: give the recorded values, or a new run_name / output_dir")


def load_config(path: str | Path) -> Config:
    """The config a run folder recorded (`config.yaml`), e.g. for analyses of its checkpoints."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"no config file at {path}")
    data = OmegaConf.to_container(OmegaConf.load(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a mapping of config keys")
    flat = _flatten(data)
    _check_keys(flat, str(path))
    return make_config(flat)
