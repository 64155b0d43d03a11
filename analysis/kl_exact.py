"""The KL to the reference across a run's checkpoints: the logged estimate against the exact KL.

    python analysis/kl_exact.py runs/flaw_ops_kl --out results/flaw_ops/longer/kl_exact

For each RL run with a KL penalty (PPO, VinePPO, GRPO, RLOO) and each kept checkpoint (train with
`rl.keep_checkpoints=0` to keep them all; the SFT start point counts as iteration 0): `--samples`
responses to each of `--problems` fixed training problems, sampled as training samples them (the
run's temperature, top-p and length), and at every response token the terms of
`vineppo.analysis.kl.kl_terms` (the logged k1 term, its exact mean under the top-p sampler, the
exact KL of the tempered distributions, the exact KL at temperature 1, the entropy), averaged over
tokens as `train/kl_ref` is; and the part of the tempered KL at digit tokens (a policy's arithmetic). The same terms at fixed states too: the reference's own responses to
the same problems, so the policy's change is read where the states do not move with it (there the
k1 term is on the reference's tokens: its mean is -KL(ref || pi), not an estimate of the KL). The logged
`train/kl_ref` of the iteration that started from the checkpoint sits beside them.

Writes kl.csv (run x checkpoint x states), table.csv (mean and std over seeds per method and
iteration), provenance.json and kl_exact.{png,pdf}.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch

from vineppo import checkpoint as ckpt
from vineppo.analysis.kl import TERMS, digit_tokens, response_kl
from vineppo.analysis.plotting import pyplot, save
from vineppo.analysis.runs import (
    checkpointed_rl_runs,
    config_labels,
    parse_folders,
    replot,
    seed_table,
    write_outputs,
)
from vineppo.analysis.value_quality import sample_examples
from vineppo.config import RLConfig, load_config
from vineppo.inference import HFEngine, SamplingParams
from vineppo.loop import PPO_FAMILY
from vineppo.models import load_model, load_tokenizer
from vineppo.rollout import Episode, collate_episodes
from vineppo.runio import read_jsonl
from vineppo.tasks import TINY_FORMAT, PromptFormat, load_task


def sampled_batch(model, tokenizer, examples: list[dict[str, str]], rl: RLConfig, n: int,
                  seed: int, fmt: PromptFormat = TINY_FORMAT) -> dict[str, torch.Tensor]:
    """`n` responses per example from `model`, sampled with the run's settings (prompted in its
    format `fmt`, BOS and stop strings included), collated for scoring."""
    prompts = [fmt.prompt(e["question"]) for e in examples]
    prompt_ids = [fmt.encode(tokenizer, p) for p in prompts]
    outputs = HFEngine(model, tokenizer).generate(prompt_ids, SamplingParams(
        n=n, temperature=rl.temperature, top_p=rl.top_p, max_new_tokens=rl.max_new_tokens, stop=list(fmt.stop),
        seed=seed))
    episodes = []
    for g, (ex, prompt, ids, comps) in enumerate(zip(examples, prompts, prompt_ids, outputs, strict=True)):
        episodes += [Episode(g, ex, prompt, ids, c.token_ids, c.text, c.finish_reason, 0.0) for c in comps]
    return collate_episodes(episodes, tokenizer.pad_token_id)


def chunked_kl(policy, reference, batch: dict[str, torch.Tensor], rl: RLConfig, digits: torch.Tensor,
               size: int = 64) -> dict[str, float]:
    """`response_kl` over the whole batch in chunks of `size` rows, weighted by response tokens."""
    sums, tokens = dict.fromkeys((*TERMS, "kl_tempered_digits"), 0.0), 0.0
    for i in range(0, batch["input_ids"].shape[0], size):
        part = {k: v[i:i + size] for k, v in batch.items()}
        n = part["mask"].sum().item()
        if n:
            for k, v in response_kl(policy, reference, part, rl.temperature, rl.top_p, digits).items():
                sums[k] += v * n
            tokens += n
    return {k: v / tokens for k, v in sums.items()}


def analyse_run(run: Path, label: str, problems: int, samples: int, seed: int, every: int = 1) -> list[dict]:
    cfg = load_config(run / "config.yaml")
    rl = cfg.rl
    torch.manual_seed(seed)
    task = load_task(cfg.task)
    examples = sample_examples(task.train, problems, seed)
    reference, tokenizer = load_model(rl.init).eval(), load_tokenizer(rl.init)
    at_ref = sampled_batch(reference, tokenizer, examples, rl, samples, seed, task.format)
    digits = digit_tokens(tokenizer)
    logged = {r["iteration"]: r.get("train/kl_ref") for r in read_jsonl(run / "metrics.jsonl")}
    points = [(0, reference), *((s, p) for p in ckpt.list_checkpoints(run / "checkpoints")
                                if (s := ckpt.checkpoint_step(p)) % every == 0)]
    rows = []
    for step, where in points:
        policy = where if step == 0 else load_model(where).eval()
        own = sampled_batch(policy, tokenizer, examples, rl, samples, seed + 1 + step, task.format)
        for states, batch in (("own samples", own), ("reference's samples", at_ref)):
            rows.append({"run": run.name, "method": label, "seed": cfg.seed,
                         "kl_coef": rl.kl_coef, "iteration": step, "states": states,
                         "tokens": int(batch["mask"].sum().item()), **chunked_kl(policy, reference, batch, rl, digits),
                         "logged_kl_ref": logged.get(step + 1) if states == "own samples" else None})
        print(f"{run.name} iteration {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in rows[-2].items()
                                                             if k in TERMS), flush=True)
    return rows


def table(rows: pd.DataFrame) -> pd.DataFrame:
    cols = [*TERMS, "kl_tempered_digits", "logged_kl_ref"]
    return seed_table(rows, cols, ["method", "states", "iteration"])


def plot(t: pd.DataFrame, out: Path) -> None:
    plt = pyplot()
    methods = sorted(t["method"].unique())
    fig, axes = plt.subplots(2, len(methods), figsize=(4.2 * len(methods), 7), squeeze=False, sharey="row")
    styles = {"logged_kl_ref": ("logged train/kl_ref", ":"),  # at the reference's samples the k1 term is -KL(ref || pi)
              "sampled": ("k1 on these samples", "-"),
              "expected": ("its mean under top-p", "--"), "kl_tempered": ("KL(pi_T || ref_T)", "-"),
              "kl": ("KL(pi || ref), T=1", "-."), "kl_tempered_digits": ("KL(pi_T || ref_T) at digits", "-")}
    for j, m in enumerate(methods):
        for i, states in enumerate(("own samples", "reference's samples")):
            g = t[(t["method"] == m) & (t["states"] == states)]
            ax = axes[i, j]
            for color, (col, (name, ls)) in enumerate(styles.items()):
                if g[f"{col}_mean"].notna().any():
                    ax.plot(g["iteration"], g[f"{col}_mean"], ls=ls, marker="." if ls == "-" else None, label=name,
                            color=f"C{color}")
            ax.set(title=f"{m}: at the {'policy' if i == 0 else 'reference'}'s samples", xlabel="iteration",
                   ylabel="nats per response token")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, out, "kl_exact")


def main(argv: list[str] | None = None) -> int:
    def add_args(ap):
        ap.add_argument("--problems", type=int, default=64, help="fixed training problems (default 64)")
        ap.add_argument("--samples", type=int, default=4, help="responses per problem (default 4)")
        ap.add_argument("--seed", type=int, default=0)
        ap.add_argument("--every", type=int, default=1, help="checkpoints at iterations divisible by this")
        ap.add_argument("--replot", action="store_true", help="rebuild table.csv and the figure in --out from the kl.csv in the (one) folder given")

    args = parse_folders(argv, __doc__, "results/kl_exact", add_args)
    if args is None:
        return 2
    if args.every < 1 or args.problems < 1 or args.samples < 1:
        print("--every, --problems and --samples must be >= 1", file=sys.stderr)
        return 2
    if args.replot:
        return replot(args.folders, args.out, "kl.csv", table, plot)
    runs = [d for d in checkpointed_rl_runs(args.folders) if load_config(d / "config.yaml").rl.algo in PPO_FAMILY]
    if not runs:
        print(f"no PPO-family runs with checkpoints under {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    labels = config_labels(runs)
    rows = [r for d in runs for r in analyse_run(d, labels[d.name], args.problems, args.samples, args.seed, args.every)]
    t = write_outputs(args.out, "kl.csv", pd.DataFrame(rows), table, plot, {
        "runs": [str(d) for d in runs], "args": {k: str(v) for k, v in vars(args).items()}})
    print(t[t["states"] == "own samples"].to_string(index=False))
    print(f"wrote {args.out}/kl.csv, table.csv, provenance.json, kl_exact.png/pdf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
