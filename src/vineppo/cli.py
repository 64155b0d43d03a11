"""Command line: `vineppo sft|eval|tiny key=value ...` (see README)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from vineppo.config import ConfigError, _flatten, key_docs, make_config, parse_overrides, to_dict
from vineppo.runio import atomic_write_text, git_commit
from vineppo.tasks.hub import DataError

USAGE = """usage: vineppo COMMAND [key=value ...]

commands:
  sft    train (or resume) an SFT run: tokenizer, model, evaluation; e.g. task.name=arith_hard
  rl     train (or resume) rl.algo=ppo|vineppo|grpo|rloo|restem|dpo_plus from rl.init=<SFT checkpoint>
  eval   evaluate model.name_or_path on task.name's eval.split (test|train), writes <output_dir>/<run_name>.json
  tiny   the tiny preset's main job: SFT + evaluation on arith and arith_hard, then a summary table
  keys   every config key with its value and what it does; `vineppo keys rl model.dtype preset=paper`
         shows only those sections or keys, under those settings
  memory will an RL run fit? its estimate per GPU and per node, from rl.init's config alone (no
         weights loaded); `vineppo memory preset=paper rl.algo=ppo --processes 8 --gpu-gib 80`
         (--processes N: DeepSpeed processes, one per GPU; --node-processes M: of them per node,
         default N; --gpu-gib G: each GPU's memory, default 80; --host-gib H: each node's RAM;
         --prompt-tokens P --train-problems T: the longest prompt and the RL problems, instead of
         reading the task's data)

`vineppo COMMAND --help` lists the keys that COMMAND reads.
"""

SECTIONS = {"sft": ("", "task", "model", "sft", "eval"), "rl": ("", "task", "model", "rl", "eval", "deepspeed"),
            "eval": ("", "task", "model", "eval"), "tiny": ("", "task", "model", "sft", "eval")}
"""The config sections each command reads ("": the top-level keys)."""


def describe_keys(args: list[str]) -> str:
    """`key = value` and its description for every key, or for the sections and keys named in
    `args` (`rl`, `rl.`, `model.dtype`; "" is the top level), with the `key=value` pairs in `args`
    applied first (so `preset=paper` shows the paper preset's values)."""
    names = [a for a in args if "=" not in a]
    values = _flatten(to_dict(make_config([a for a in args if "=" in a])))
    known = key_docs()
    wanted = [n.rstrip(".") for n in names]
    sections = sorted({k.split(".")[0] for k in known if "." in k})
    for name in wanted:
        if name and name not in known and name not in sections:
            raise ConfigError(f"no config key or section '{name}'; sections: {', '.join(sections)}")
    lines = []
    for key, doc in known.items():
        section = key.rsplit(".", 1)[0] if "." in key else ""
        if wanted and not any(w == key or w == section or (w and key.startswith(w + ".")) for w in wanted):
            continue
        value = values[key]
        plain = isinstance(value, str) and value.isprintable()  # a template's newlines shown as \n
        lines.append(f"{key} = {value if plain else json.dumps(value)}")
        lines += textwrap.wrap(doc, 96, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


def cmd_sft(args: list[str]) -> dict:
    from vineppo.sft import train_sft

    cfg = make_config(args)
    summary = train_sft(cfg)
    print(json.dumps(summary, indent=2))
    return summary


def cmd_rl(args: list[str]) -> dict:
    from vineppo.loop import train_rl

    summary = train_rl(make_config(args), progress=True)
    print(json.dumps(summary, indent=2))
    return summary


def cmd_eval(args: list[str] | dict) -> dict:
    """`vineppo eval` (args: key=value strings, or the launcher's resolved overrides as a dict)."""
    from vineppo.evaluate import evaluate
    from vineppo.inference import make_engine
    from vineppo.models import load_model, load_tokenizer
    from vineppo.runio import atomic_write_json
    from vineppo.tasks import load_task

    cfg = make_config(args)
    if cfg.model.name_or_path is None:
        raise ConfigError("eval needs model.name_or_path=<hub name or folder>")
    from vineppo.grading import set_timeout

    set_timeout(cfg.task.grade_timeout_s)
    # The data first: a bad file or an unreachable hub fails before a model is loaded.
    task = load_task(cfg.task, with_sft=cfg.eval.split == "sft", with_train=cfg.eval.split == "train")
    if cfg.eval.split == "sft" and not task.sft_data:
        raise ConfigError(f"eval.split=sft: task {cfg.task.name} has no SFT pool here (the generated tasks "
                          "arith and arith_hard with task.num_sft > 0 do); use eval.split=train or test")
    task.format.check(cfg.model.name_or_path, "model.name_or_path")
    model = load_model(cfg.model.name_or_path, cfg.model.dtype, cfg.device)
    engine = make_engine(cfg.engine, model, load_tokenizer(cfg.model.name_or_path), cfg.eval.batch_size,
                         path=cfg.model.name_or_path, bos=cfg.task.prompt_bos, vllm_memory=cfg.vllm_memory)
    # sft: as many of the SFT problems as the test split holds (the model trained on these).
    examples = {"test": task.test, "train": task.train, "sft": task.sft_data[:len(task.test)]}[cfg.eval.split]
    result = evaluate(engine, examples, cfg.task.name, batch_size=cfg.eval.batch_size,
                      max_new_tokens=cfg.eval.max_new_tokens, num_samples=cfg.eval.num_samples,
                      temperature=cfg.eval.temperature, top_p=cfg.eval.top_p, seed=cfg.seed,
                      flaw_ops=tuple(cfg.task.flaw_ops), fmt=task.format)
    out = Path(cfg.output_dir) / f"{cfg.run_name or f'eval-{cfg.task.name}-{cfg.eval.split}'}.json"
    atomic_write_json(out, {"model": cfg.model.name_or_path, "commit": git_commit(), **result})
    print(json.dumps({k: v for k, v in result.items() if k != "problems"}, indent=2))
    print(f"wrote {out}")
    return result


def cmd_tiny(args: list[str]) -> list[dict]:
    """SFT the tiny model on both generated tasks and write `<output_dir>/tiny_sft.md`."""
    from vineppo.sft import train_sft

    overrides = parse_overrides(args)
    if "task.name" in overrides:
        raise ConfigError("tiny runs both arith and arith_hard; use `vineppo sft` for one task")
    summaries = []
    for task in ("arith", "arith_hard"):
        cfg = make_config({**overrides, "task.name": task})
        summaries.append(train_sft(cfg))
    cfg = make_config(overrides)
    lines = [
        "# Tiny preset: SFT", "",
        "| task | parameters | SFT steps | SFT time (s) | greedy acc | sampled acc | pass@k | commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        sampled = "-" if s["test_sampled_accuracy"] is None else f"{s['test_sampled_accuracy']:.3f}"
        passk = "-" if s["test_pass_at_k"] is None else f"{s['test_pass_at_k']:.3f}"
        lines.append(f"| {s['task']} | {s['num_parameters']:,} | {s['train_steps']} | {s['train_time_s']} "
                     f"| {s['test_greedy_accuracy']:.3f} | {sampled} | {passk} | `{s.get('commit')}` |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(Path(cfg.output_dir) / "tiny_sft.md", table)
    print(table)
    return summaries


MEMORY_OPTIONS = {"--processes": int, "--node-processes": int, "--gpu-gib": float, "--host-gib": float,
                  "--prompt-tokens": int, "--train-problems": int}


def cmd_memory(args: list[str]) -> dict:
    """`vineppo memory`: the RL memory check (`loop.memory_parts`, `memory.check_run_fits`) for a
    planned GPU run, on any machine: per GPU by part, and the episodes per node; whether it fits."""
    import torch

    from vineppo.loop import longest_prompt, memory_parts
    from vineppo.memory import check_run_fits
    from vineppo.models import load_tokenizer
    from vineppo.tasks import load_task

    if {"-h", "--help"} & set(args):
        at = USAGE.index("  memory ")
        print("usage: vineppo memory [key=value ...] [--processes N] [--node-processes M] [--gpu-gib G] "
              f"[--host-gib H] [--prompt-tokens P --train-problems T]\n{USAGE[at:USAGE.index(chr(10) * 2, at)]}")
        return {}
    opts: dict[str, float] = {}
    overrides = []
    it = iter(args)
    for a in it:
        name, eq, value = a.partition("=")
        if name in MEMORY_OPTIONS:
            raw = value if eq else next(it, None)
            try:
                opts[name] = MEMORY_OPTIONS[name](raw)
            except (TypeError, ValueError):
                raise ConfigError(f"vineppo memory: {name} takes a number, got {raw!r}") from None
        elif a.startswith("--"):
            raise ConfigError(f"vineppo memory: unknown option {a}; options: {', '.join(MEMORY_OPTIONS)}")
        else:
            overrides.append(a)
    processes = int(opts.get("--processes", 1))
    per_node = int(opts.get("--node-processes", processes))
    gpu_gib, host_gib = opts.get("--gpu-gib", 80.0), opts.get("--host-gib")
    if processes < 1 or not 1 <= per_node <= processes or gpu_gib <= 0 or (host_gib is not None and host_gib <= 0):
        raise ConfigError("vineppo memory: --processes >= 1, 1 <= --node-processes <= --processes, and positive "
                          "--gpu-gib / --host-gib")
    if processes > 1:
        overrides.append("deepspeed.enabled=true")  # as the launcher runs a multi-GPU job
    cfg = make_config(overrides)
    gib, gpu = 2**30, torch.device("cuda", 0)
    if "--prompt-tokens" in opts and "--train-problems" in opts:  # planning without the dataset
        prompt_tokens, problems = int(opts["--prompt-tokens"]), int(opts["--train-problems"])
    else:
        task = load_task(cfg.task)
        prompt_tokens, problems = longest_prompt(task, load_tokenizer(cfg.rl.init, "rl.init")), len(task.train)
    parts, episodes = memory_parts(cfg, prompt_tokens, problems, gpu, processes, gpu_bytes=int(gpu_gib * gib))
    free = {"cuda": int(gpu_gib * gib), "cpu": int(host_gib * gib) if host_gib else 2**62}
    verdict = "fits"
    try:
        check_run_fits(parts, episodes, gpu, per_node, lambda d: free[d.type])
    except ConfigError as e:  # its first line (where, how much) and its last (what to change)
        first, *_, hint = str(e).splitlines()
        verdict = f"does not fit: {first.removeprefix('the run needs ').rstrip(':')}\n  {hint}"
    lines = [f"rl.algo={cfg.rl.algo} from {cfg.rl.init}, {processes} process(es) of a {gpu_gib:g} GiB GPU each, "
             f"{per_node} per node", "per GPU:"]
    lines += [f"  {k}: {v / gib:.1f} GiB" for k, v in parts.items()]
    lines += [f"  total: {sum(parts.values()) / gib:.1f} GiB", "per node, host RAM:",
              f"  the iteration's episodes (token tensors), {per_node} x {episodes / gib:.1f} GiB: "
              f"{per_node * episodes / gib:.1f} GiB" + (f" of {host_gib:g}" if host_gib else ""), verdict]
    out = {"gpu_gib": gpu_gib, "processes": processes, "node_processes": per_node,
           "per_gpu_gib": round(sum(parts.values()) / gib, 2), "host_gib": round(per_node * episodes / gib, 2),
           "fits": verdict == "fits", "parts_gib": {k: round(v / gib, 2) for k, v in parts.items()}}
    print("\n".join(lines))
    print(json.dumps(out))
    return out


OOM_HINT = ("The same command resumes the run from its last checkpoint. To fit: a smaller rl.minibatch_size "
            "(sft.batch_size) or model.max_length, model.gradient_checkpointing=true, "
            "deepspeed.offload_optimizer=true or more processes with deepspeed.enabled=true, engine=hf or a "
            "smaller vllm_memory; `vineppo memory` with the same settings prints the estimate part by part.")
"""What a GPU out-of-memory error in a run is told, instead of torch's traceback."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, args = argv[0], argv[1:]
    commands = {"sft": cmd_sft, "rl": cmd_rl, "eval": cmd_eval, "tiny": cmd_tiny, "memory": cmd_memory}
    try:
        if command == "keys":
            print(describe_keys(args))
            return 0
        if command in SECTIONS and {"-h", "--help"} & set(args):
            line = next(x for x in USAGE.splitlines() if x.startswith(f"  {command} "))
            print(f"usage: vineppo {command} [key=value ...]\n{line.strip()}\n\nkeys (value in the tiny preset):\n"
                  + describe_keys(list(SECTIONS[command])))
            return 0
        if command not in commands:
            print(f"unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
            return 2
        commands[command](args)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"data error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # torch.OutOfMemoryError, without importing torch for every command
        if type(e).__name__ != "OutOfMemoryError":
            raise
        print(f"out of memory: {str(e).splitlines()[0]}\n{OOM_HINT}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
