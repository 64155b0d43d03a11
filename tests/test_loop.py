"""The policy-iteration loop: every method trains 2 iterations; a crashed run resumes bit-exactly;
updates move the policy the right way on a case with a known answer."""

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from vineppo import loop as loop_module
from vineppo.algorithms import ppo
from vineppo.config import make_config
from vineppo.loop import train_rl
from vineppo.runio import read_jsonl

from .conftest import EASY

RL = ["rl.iterations=2", "rl.prompts_per_iter=4", "rl.samples_per_prompt=4", "rl.minibatch_size=8",
      "rl.epochs=2", "rl.vine_k=3", "rl.eval_every=2", "rl.learning_rate=3e-4", "task.num_test=16",
      "eval.batch_size=16", "rl.max_new_tokens=60", "eval.max_new_tokens=60"]


def config(tmp_path, init, algo, extra=()):
    return make_config(EASY + RL + [f"rl.init={init}", f"rl.algo={algo}", f"output_dir={tmp_path}", *extra])


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "vineppo", "grpo", "rloo", "restem", "dpo_plus"])
def test_two_iterations(tmp_path, easy_sft_checkpoint, algo):
    sampled = algo == "rloo"  # one method also samples its test problems (rl.eval_samples)
    summary = train_rl(config(tmp_path, easy_sft_checkpoint, algo, ["rl.eval_samples=3"] if sampled else []))
    records = read_jsonl(tmp_path / f"{algo}-arith-s0" / "metrics.jsonl")
    last = json.loads((tmp_path / f"{algo}-arith-s0" / "eval" / "test.json").read_text())
    if sampled:  # the logged sampled accuracy is the per-problem samples' mean, and the summary's
        assert all(len(p["sampled_correct"]) == 3 for p in last["problems"])
        mean = sum(sum(p["sampled_correct"]) / 3 for p in last["problems"]) / len(last["problems"])
        assert records[-1]["eval/sampled_accuracy"] == pytest.approx(mean) == summary["test_sampled_accuracy"]
        assert records[-1]["eval/pass_at_k"] >= records[-1]["eval/sampled_accuracy"]
        # ... kept per problem at every evaluation for the analyses (eval/sampled_correct.json).
        from vineppo.analysis.test_noise import run_bits

        scores = run_bits(tmp_path / f"{algo}-arith-s0", "sampled")
        assert list(scores) == [2] and sum(scores[2]) / len(scores[2]) == pytest.approx(mean)
    else:
        assert "eval/sampled_accuracy" not in records[-1] and "test_sampled_accuracy" not in summary
        assert not (tmp_path / f"{algo}-arith-s0" / "eval" / "sampled_correct.json").exists()
    assert [r["iteration"] for r in records] == [1, 2]
    if algo in ("restem", "dpo_plus"):
        # Units: correct responses (RestEM) or pairs (DPO+, 4 pairs per 8-episode mini-batch).
        per_step = 8 if algo == "restem" else 4
        steps = [2 * math.ceil(r["train/num_units"] / per_step) for r in records]
        assert [r["train/grad_steps"] for r in records] == [steps[0], steps[0] + steps[1]]
    else:
        # 16 episodes, mini-batch 8, 2 epochs: 4 gradient steps per iteration.
        assert [r["train/grad_steps"] for r in records] == [4, 8] and summary["grad_steps"] == 8
    for r in records:
        assert 0.0 <= r["train/reward"] <= 1.0 and r["train/tokens_generated"] > 0
        for key in ("time/generation_s", "time/value_estimation_s", "time/training_s"):
            assert math.isfinite(r[key]), key
        assert all(math.isfinite(r[k]) for k in ("loss/policy", "loss/kl") if k in r)
    assert 0.0 <= records[-1]["eval/greedy_accuracy"] <= 1.0
    # The policy's pre-clip gradient norm, and PPO's value network's apart (rl.grad_clip_scope=per_model).
    assert all(r["train/grad_norm"] > 0 for r in records)
    assert all(("train/grad_norm_value" in r) == (algo == "ppo") for r in records)
    if algo == "ppo":
        assert all(math.isfinite(r["loss/value"]) for r in records)
        # The value head starts at zero: before the first update V = 0 on every token, which
        # explains none of the returns' variance.
        assert records[0]["value/mean"] == 0.0 and records[0]["value/explained_variance"] == 0.0
        assert records[1]["value/mean"] != 0.0
        # The authors' head (rl.value_head_init=normal) predicts from the start, the same for a seed.
        drawn = []
        for i in (0, 1):
            train_rl(config(tmp_path / f"normal{i}", easy_sft_checkpoint, "ppo",
                            ["rl.value_head_init=normal", "rl.iterations=1", "rl.eval_every=1"]))
            drawn.append(read_jsonl(tmp_path / f"normal{i}" / "ppo-arith-s0" / "metrics.jsonl")[0]["value/mean"])
        assert drawn[0] != 0.0 and drawn[0] == drawn[1]
    elif algo == "vineppo":
        # The MC values' mean over tokens lies in [0, 1] like the rewards they average; the explained
        # variance is at most 1, and undefined (NaN) when every return is the same.
        for r in records:
            assert 0.0 <= r["value/mean"] <= 1.0
            ev = r["value/explained_variance"]
            assert ev <= 1.0 if r["train/reward"] not in (0.0, 1.0) else math.isnan(ev)
    else:
        assert not any(k.startswith("value/") for r in records for k in r)
    if algo == "vineppo":
        assert all(r["vine/num_unique_states"] <= r["vine/num_states"] for r in records)
    # The preset's rl.autocast=auto, resolved for this machine and recorded.
    from vineppo.learner import resolve_autocast

    assert summary["autocast"] == resolve_autocast("auto", torch.device("cpu"))
    # The before-start memory estimate per device, as `vineppo memory` prints it (on a GPU each
    # record's memory/peak_gib sits beside it; not on the CPU).
    from vineppo.loop import longest_prompt, memory_parts
    from vineppo.models import load_tokenizer
    from vineppo.tasks import load_task

    cfg = config(tmp_path, easy_sft_checkpoint, algo)
    task = load_task(cfg.task)
    parts, _ = memory_parts(cfg, longest_prompt(task, load_tokenizer(easy_sft_checkpoint)), len(task.train),
                            torch.device("cpu"), 1)
    assert summary["memory_estimate_gib"] == round(sum(parts.values()) / 2**30, 3) > 0
    assert ("value network (weights, grads, Adam)" in parts) == (algo == "ppo")
    assert not any(k.startswith("memory/") for r in records for k in r)


@pytest.mark.slow
def test_crash_mid_iteration_resumes_bit_exactly(tmp_path, easy_sft_checkpoint, monkeypatch, capsys):
    extra = ["rl.iterations=3", "rl.eval_every=3"]
    ref = train_rl(config(tmp_path / "ref", easy_sft_checkpoint, "vineppo", extra))

    calls = {"n": 0}
    real = loop_module.ppo_policy_loss

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:  # third iteration, second mini-batch
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "ppo_policy_loss", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_rl(config(tmp_path / "crash", easy_sft_checkpoint, "vineppo", extra))
    monkeypatch.setattr(loop_module, "ppo_policy_loss", real)
    capsys.readouterr()
    resumed = train_rl(config(tmp_path / "crash", easy_sft_checkpoint, "vineppo", extra))
    run = tmp_path / "crash" / "vineppo-arith-s0"  # where it went on from, in the job's log
    assert f"{run}: resumed from {run / 'checkpoints' / 'step-2'} (the end of iteration 2)" in capsys.readouterr().err

    def strip(records):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]

    a_dir, b_dir = tmp_path / "ref" / "vineppo-arith-s0", tmp_path / "crash" / "vineppo-arith-s0"
    assert strip(read_jsonl(a_dir / "metrics.jsonl")) == strip(read_jsonl(b_dir / "metrics.jsonl"))
    assert resumed["test_greedy_accuracy"] == ref["test_greedy_accuracy"]
    a = load_file(a_dir / "checkpoints" / "step-3" / "model.safetensors")
    b = load_file(b_dir / "checkpoints" / "step-3" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_finished_run_given_more_iterations_continues_exactly(tmp_path, easy_sft_checkpoint):
    """A finished 2-iteration PPO run rerun with rl.iterations=3 continues from its last checkpoint and
    logs what an uninterrupted 3-iteration run logs; it refuses changed settings and a shorter end."""
    from vineppo.config import ConfigError

    ref = train_rl(config(tmp_path / "ref", easy_sft_checkpoint, "ppo", ["rl.iterations=3"]))
    first = train_rl(config(tmp_path / "ext", easy_sft_checkpoint, "ppo"))
    assert train_rl(config(tmp_path / "ext", easy_sft_checkpoint, "ppo")) == first  # finished: returned as is
    with pytest.raises(ConfigError, match=r"rl.learning_rate: 0.0003 there, 0.0001 now"):
        train_rl(config(tmp_path / "ext", easy_sft_checkpoint, "ppo", ["rl.iterations=3", "rl.learning_rate=1e-4"]))
    extended = train_rl(config(tmp_path / "ext", easy_sft_checkpoint, "ppo", ["rl.iterations=3", "num_threads=1"]))

    def strip(path):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in read_jsonl(path)]

    a, b = tmp_path / "ref" / "ppo-arith-s0", tmp_path / "ext" / "ppo-arith-s0"
    assert strip(a / "metrics.jsonl") == strip(b / "metrics.jsonl") and len(strip(b / "metrics.jsonl")) == 3
    assert extended["test_greedy_accuracy"] == ref["test_greedy_accuracy"] and extended["grad_steps"] == 12
    assert extended["extended_from"] == [{"iterations": 2, "commit": first["commit"],
                                          "test_greedy_accuracy": first["test_greedy_accuracy"]}]
    # Every evaluation's per-problem bits (test-set order), kept across the extension: their mean is
    # the logged accuracy, and the last ones are the final answers' grades.
    bits = json.loads((b / "eval" / "greedy_correct.json").read_text())
    assert bits == json.loads((a / "eval" / "greedy_correct.json").read_text())
    assert sorted(bits["iterations"]) == ["2", "3"] and len(bits["problem_ids"]) == 16
    for r in read_jsonl(b / "metrics.jsonl"):
        if "eval/greedy_accuracy" in r:
            got = bits["iterations"][str(r["iteration"])]
            assert got.count("1") / len(got) == pytest.approx(r["eval/greedy_accuracy"])
    test = json.loads((b / "eval" / "test.json").read_text())
    assert [p["id"] for p in test["problems"]] == bits["problem_ids"]
    assert "".join("1" if p["greedy_correct"] else "0" for p in test["problems"]) == bits["iterations"]["3"]
    # final/: the policy after the last iteration (step-3's weights, re-exported by the extension;
    # the uninterrupted run's to the bit), without the training state.
    assert extended["final_model"] == str(b / "final") and not (b / "final" / "state.pt").exists()
    weights = load_file(b / "final" / "model.safetensors")
    for other in (b / "checkpoints" / "step-3" / "model.safetensors", a / "final" / "model.safetensors"):
        assert all(torch.equal(v, load_file(other)[k]) for k, v in weights.items())
    assert not torch.equal(weights["model.embed_tokens.weight"],
                           load_file(b / "checkpoints" / "step-2" / "model.safetensors")["model.embed_tokens.weight"])
    (b / "summary.json").unlink()  # as if killed after iteration 3 of a longer extension
    with pytest.raises(ConfigError, match="has reached iteration 3; rl.iterations=2 would end it before that"):
        train_rl(config(tmp_path / "ext", easy_sft_checkpoint, "ppo"))
    # A finished run without checkpoints cannot continue: refused rather than restarted over its metrics.
    done = train_rl(config(tmp_path / "bare", easy_sft_checkpoint, "grpo", ["rl.iterations=1"]))
    shutil.rmtree(tmp_path / "bare" / "grpo-arith-s0" / "checkpoints")
    with pytest.raises(ConfigError, match="finished at iteration 1 and keeps no checkpoint"):
        train_rl(config(tmp_path / "bare", easy_sft_checkpoint, "grpo", ["rl.iterations=2"]))
    assert len(read_jsonl(tmp_path / "bare" / "grpo-arith-s0" / "metrics.jsonl")) == 1 and done["iterations"] == 1


def test_unknown_algo_and_missing_init(tmp_path, capsys):
    from vineppo.config import ConfigError

    with pytest.raises(ConfigError, match="rl.algo: 'vinepo' is not one of ppo, vineppo, .*; did you mean 'vineppo'"):
        make_config(["rl.algo=vinepo", "rl.init=x", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="rl.init=runs/sft/final: no such folder"):
        train_rl(make_config(["rl.init=runs/sft/final", f"output_dir={tmp_path}"]))
    assert not (tmp_path / "vineppo-arith-s0").exists()  # nothing written before the check
    with pytest.raises(ConfigError, match="rl.init"):
        train_rl(make_config([f"output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match=r"rl.value_clip must be > 0 \(or null: no clip\), got 0.0"):
        train_rl(make_config(["rl.value_clip=0", "rl.init=x", f"output_dir={tmp_path}"]))
    assert make_config(["rl.value_clip=null"]).rl.value_clip is None
    # bf16 weights trained without DeepSpeed's fp32 master copy drop the paper's small updates: said first.
    capsys.readouterr()
    with pytest.raises(ConfigError, match="rl.init=runs/none/final: no such folder"):
        train_rl(make_config(["model.dtype=bfloat16", "rl.init=runs/none/final", f"output_dir={tmp_path}"]))
    assert "warning: model.dtype=bfloat16 without DeepSpeed trains bfloat16 weights" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="rl.init=runs/none/final: no such folder"):
        train_rl(make_config(["model.dtype=bfloat16", "deepspeed.enabled=true", "rl.init=runs/none/final",
                              f"output_dir={tmp_path}"]))
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["ppo", "vineppo", "grpo", "rloo", "restem", "dpo_plus"])
def test_update_moves_policy_toward_reward(tmp_path, tiny_model_and_tokenizer, algo):
    """Two responses to one prompt, one rewarded: one update raises the rewarded response's
    log-probability and lowers the other's (RestEM never sees the wrong one; DPO+ widens the gap)."""
    import copy

    from vineppo.algorithms import grpo, ppo, rloo
    from vineppo.algorithms.advantages import whiten
    from vineppo.learner import Learner
    from vineppo.loop import minibatch_loss
    from vineppo.rollout import Episode, collate_episodes, token_logprobs

    model, tok = tiny_model_and_tokenizer
    policy = copy.deepcopy(model).train()
    prompt = "Question: Ava has 3 apples. She gets 4 more.\nAnswer:\n"
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    good, bad = "3 + 4 = 7 apples.\n#### 7", "3 + 4 = 8 apples.\n#### 8"
    eps = [Episode(0, {"answer": "7"}, prompt, p_ids, tok(t, add_special_tokens=False)["input_ids"]
                   + [tok.eos_token_id], t, "stop", r) for t, r in ((good, 1.0), (bad, 0.0))]
    rl = make_config([f"rl.algo={algo}", "rl.learning_rate=1e-3", "rl.kl_coef=0"]).rl
    value_model = None
    if algo in ("grpo", "vineppo"):
        grpo.assign_advantages(eps)  # VinePPO's MC values are tested separately; here the loss
    elif algo == "rloo":
        rloo.assign_advantages(eps)
    batch = collate_episodes(eps, tok.pad_token_id)
    if algo == "ppo":
        policy.save_pretrained(tmp_path / "m")
        value_model = ppo.ValueModel(str(tmp_path / "m"))
        batch["advantages"], batch["returns"], batch["old_values"] = ppo.advantages_and_returns(
            value_model, batch, 1.0, 1.0)
    batch["advantages"] = whiten(batch["advantages"], batch["mask"])
    with torch.no_grad():
        before = (token_logprobs(policy, batch, 1.0) * batch["mask"]).sum(-1)
    params = list(policy.parameters()) + (list(value_model.parameters()) if value_model else [])
    opt = torch.optim.Adam(params, lr=1e-3)
    rows = torch.tensor([0]) if algo == "restem" else torch.tensor([0, 1])
    mb = {k: v[rows] for k, v in batch.items()}
    with torch.no_grad():
        old = token_logprobs(policy, mb, 1.0)
    logp, values = Learner(policy, value_model)(mb, 1.0)
    losses, _ = minibatch_loss(rl, logp, values, mb, old, old)
    assert sorted(losses) == (["policy", "value"] if algo == "ppo" else ["policy"])
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    with torch.no_grad():
        after = (token_logprobs(policy, batch, 1.0) * batch["mask"]).sum(-1)
    assert after[0] > before[0]
    if algo == "dpo_plus":
        # The NLL term lifts the tokens both responses share; DPO widens the margin between them.
        assert after[0] - after[1] > before[0] - before[1]
    elif algo != "restem":
        assert after[1] < before[1]


def test_nan_advantages_stop_the_run_and_keep_last_checkpoint(tmp_path, easy_sft_checkpoint, monkeypatch):
    real = loop_module.whiten
    calls = {"n": 0}

    def poisoned(adv, mask):
        calls["n"] += 1
        out = real(adv, mask)
        return out * float("nan") if calls["n"] == 2 else out

    monkeypatch.setattr(loop_module, "whiten", poisoned)
    with pytest.raises(FloatingPointError, match="advantages is not finite at iteration 2"):
        train_rl(config(tmp_path, easy_sft_checkpoint, "grpo", ["rl.eval_every=5"]))
    run = tmp_path / "grpo-arith-s0"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-1"]
    assert [r["iteration"] for r in read_jsonl(run / "metrics.jsonl")] == [1]
    assert not (run / "summary.json").exists()


def test_sampler_logprobs_are_the_old_policys(easy_sft_checkpoint):
    """The hf engine's per-token log-probs (what `rl.old_logprobs=sampler` trains with) equal a
    training forward's within 1e-5 on every response token, in the loop's layout; a one-column
    shift would be far off (the check can fail)."""
    from vineppo.inference import HFEngine, SamplingParams
    from vineppo.models import load_model, load_tokenizer
    from vineppo.rollout import Episode, chunked, collate_episodes, token_logprobs
    from vineppo.tasks import PROMPT

    model, tok = load_model(easy_sft_checkpoint).eval(), load_tokenizer(easy_sft_checkpoint)
    engine = HFEngine(model, tok, batch_size=16)
    assert engine.logprobs_exact
    prompts = [PROMPT.format(question=q) for q in ("Ava has 3 apples. She gets 4 more. How many?",
                                                   "Bo has 7 pens and buys 2. How many now?")]
    outs = engine.generate(prompts, SamplingParams(n=4, temperature=0.7, top_p=0.9, max_new_tokens=40, seed=3))
    eps = [Episode(0, {"answer": "0"}, p, tok(p, add_special_tokens=False)["input_ids"], c.token_ids, c.text,
                   c.finish_reason, 0.0, logprobs=c.logprobs) for p, comps in zip(prompts, outs, strict=True) for c in comps]
    batch = collate_episodes(eps, tok.pad_token_id)
    recomputed = chunked(lambda b: token_logprobs(model, b, 0.7), batch, chunk=3)
    mask = batch["mask"].bool()
    assert mask.sum() > 40
    assert (batch["sampler_logp"] - recomputed)[mask].abs().max() < 1e-5
    shifted = torch.roll(batch["sampler_logp"], 1, dims=1)
    assert (shifted - recomputed)[mask].abs().max() > 1e-2


def test_chunked_pass_equals_one_pass(tiny_model_and_tokenizer):
    """Length-sorted, trimmed chunks give the whole batch's log-probs on every response token."""
    from vineppo.rollout import Episode, chunked, collate_episodes, token_logprobs

    model, tok = tiny_model_and_tokenizer
    texts = ["1 + 2 = 3.\n#### 3", "4 + 5 = 9 apples and more words here.\n#### 9", "#### 1", "7 - 2 = 5.\n#### 5"]
    eps = [Episode(0, {}, "Q: x\nAnswer:\n", tok("Q: x\nAnswer:\n", add_special_tokens=False)["input_ids"],
                   tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], t, "stop", 0.0) for t in texts]
    batch = collate_episodes(eps, tok.pad_token_id)
    with torch.no_grad():
        whole = token_logprobs(model.eval(), batch, 0.8)
    parts = chunked(lambda b: token_logprobs(model, b, 0.8), batch, chunk=2)
    mask = batch["mask"].bool()
    assert torch.allclose(whole[mask], parts[mask], atol=1e-5)


def test_minibatches_cover_every_unit_once_and_group_lengths():
    from vineppo.loop import minibatches

    units = [(i,) for i in range(12)]
    lengths = [5, 40, 7, 33, 12, 50, 9, 41, 3, 28, 60, 11]
    for by_length in (False, True):
        cut = minibatches(units, 4, torch.Generator().manual_seed(0), lengths if by_length else None)
        assert sorted(u for mb in cut for u in mb) == list(range(12)) and [len(mb) for mb in cut] == [4, 4, 4]
    # By length: the three mini-batches are the 4 shortest, the 4 middle and the 4 longest episodes.
    groups = sorted(sorted(lengths[u] for u in mb) for mb in cut)
    assert groups == [[3, 5, 7, 9], [11, 12, 28, 33], [40, 41, 50, 60]]
    # DPO+ pairs: a unit's length is its longer episode's.
    pairs = [(0, 1), (2, 3), (4, 5)]
    cut = minibatches(pairs, 1, torch.Generator().manual_seed(0), [10, 90, 20, 30, 40, 50])
    assert sorted(u for mb in cut for u in mb) == [0, 1, 2]


@pytest.mark.slow
def test_grpo_trains_on_its_group_advantages_unwhitened_when_asked(tmp_path, easy_sft_checkpoint, monkeypatch):
    """rl.whiten_advantages=false: every response's tokens carry its group-standardised reward, which
    for groups of 4 with 0/1 rewards can only be 0, +-1/sqrt(3), +-1 or +-sqrt(3), with the sign of
    the reward's side of its group's mean (batch whitening would shift and rescale these)."""
    seen = []
    real = loop_module.minibatch_loss

    def spy(rl, logp, values, mb, *rest):
        seen.append((mb["advantages"].clone(), mb["mask"].clone(), mb["rewards"].clone()))
        return real(rl, logp, values, mb, *rest)

    monkeypatch.setattr(loop_module, "minibatch_loss", spy)
    train_rl(config(tmp_path, easy_sft_checkpoint, "grpo", ["rl.iterations=1", "rl.eval_every=1",
                                                            "rl.whiten_advantages=false"]))
    allowed = torch.tensor([0.0, 3 ** -0.5, 1.0, 3 ** 0.5])
    assert seen
    for adv, mask, rewards in seen:
        for a, m, r in zip(adv, mask, rewards, strict=True):
            row = a[m.bool()]
            assert torch.allclose(row, row[0].expand_as(row))  # one value per response
            assert (allowed - row[0].abs()).abs().min() < 1e-3
            assert row[0] * (r - 0.5) >= -1e-6  # right answers never pushed down, wrong never up


@pytest.mark.slow
def test_restem_keeps_the_epoch_validation_chose(tmp_path, easy_sft_checkpoint):
    """rl.restem_select=validation (the authors' RestEM): after each epoch, accuracy on the held-out
    validation problems; training goes on while it rises, and the iteration keeps the last epoch
    that raised it. The kept model is the one trained: evaluated afresh on the validation split it
    scores the logged accuracy of the kept epoch, also where a later epoch was trained and undone."""
    from vineppo.evaluate import evaluate
    from vineppo.inference import HFEngine
    from vineppo.models import load_model, load_tokenizer
    from vineppo.tasks import load_task

    extra = ["rl.restem_select=validation", "task.num_validation=12", "rl.epochs=4", "rl.iterations=3",
             "rl.learning_rate=1e-3", "task.num_train=600"]
    cfg = config(tmp_path, easy_sft_checkpoint, "restem", extra)
    train_rl(cfg)
    records = read_jsonl(tmp_path / "restem-arith-s0" / "metrics.jsonl")
    undone = 0
    for r in records:
        accs = [r[f"restem/validation_accuracy_e{e}"] for e in range(1, 5) if f"restem/validation_accuracy_e{e}" in r]
        if r["train/reward"] == 0:  # no correct sample: nothing to train on, no epoch to choose
            assert accs == [] and "restem/epochs_kept" not in r
            continue
        kept = r["restem/epochs_kept"]
        assert all(b > a for a, b in zip(accs[:kept - 1], accs[1:kept], strict=True))  # rising up to the kept one
        assert r["restem/validation_accuracy"] == accs[kept - 1]
        if len(accs) > kept:  # the next epoch did not raise it: trained, then undone
            assert len(accs) == kept + 1 and accs[kept] <= accs[kept - 1]
            undone += 1
        else:
            assert kept == 4
    assert undone >= 1  # the going-back path ran (its check below can fail)
    task = load_task(cfg.task)
    assert len(task.validation) == 12 and not {e["id"] for e in task.validation} & {e["id"] for e in task.train}
    last = tmp_path / "restem-arith-s0" / "final"
    result = evaluate(HFEngine(load_model(last), load_tokenizer(last)), task.validation, "arith",
                      max_new_tokens=cfg.eval.max_new_tokens, progress=False)
    assert result["greedy_accuracy"] == records[-1]["restem/validation_accuracy"]
    assert not (tmp_path / "restem-arith-s0" / ".restem-epoch").exists()


@pytest.mark.slow
def test_warmup_decay_schedule_over_the_run_and_per_iteration(tmp_path, easy_sft_checkpoint):
    """rl.lr_schedule=warmup_decay: GRPO's steps are counted over the run (2 iterations x 2 epochs x
    16 episodes / 8 = 8 steps; a warm-up of 4), so its iterations end at the 4th and 8th step, at
    log 3 / log 4 and (8 - 6) / (8 - 4) of the rate; RestEM's over each iteration's own steps (its
    grad_steps), so each ends at 2 / n of the rate with no warm-up. The run-long schedule ends at
    the last iteration: extending it is another run, refused by name."""
    from vineppo.config import ConfigError

    grpo = ["rl.lr_schedule=warmup_decay", "rl.warmup_ratio=0.5"]
    train_rl(config(tmp_path, easy_sft_checkpoint, "grpo", grpo))
    rates = [r["train/learning_rate"] for r in read_jsonl(tmp_path / "grpo-arith-s0" / "metrics.jsonl")]
    assert rates == pytest.approx([3e-4 * math.log(3) / math.log(4), 3e-4 * 0.5], rel=1e-12)
    with pytest.raises(ConfigError, match=r"rl.iterations: 2 there, 3 now"):
        train_rl(config(tmp_path, easy_sft_checkpoint, "grpo", [*grpo, "rl.iterations=3"]))

    train_rl(config(tmp_path, easy_sft_checkpoint, "restem", ["rl.lr_schedule=warmup_decay", "rl.warmup_ratio=0"]))
    records = read_jsonl(tmp_path / "restem-arith-s0" / "metrics.jsonl")
    steps = [b - a for a, b in zip([0] + [r["train/grad_steps"] for r in records[:-1]],
                                   [r["train/grad_steps"] for r in records], strict=True)]
    assert all(n >= 2 for n in steps)  # a decay to check in every iteration
    assert [r["train/learning_rate"] for r in records] == pytest.approx([3e-4 * 2 / n for n in steps], rel=1e-12)


@pytest.mark.slow
def test_every_prompt_each_iteration_and_the_authors_dpo_plus(tmp_path, easy_sft_checkpoint, monkeypatch):
    """rl.prompts_per_iter=0 samples every RL prompt each iteration (the train problems less the
    validation ones: 8 - 2), each once, in a new order; the authors' DPO+ (up to 64 drawn pairs per
    problem, DPO-Positive) trains on it. More prompts than there are is refused by name."""
    from vineppo.config import ConfigError
    from vineppo.tasks import load_task

    seen: list[list[str]] = []
    real = loop_module.generate_shard

    def spy(engine, tokenizer, examples, *args, **kwargs):
        seen.append([e["id"] for e in examples])
        return real(engine, tokenizer, examples, *args, **kwargs)

    monkeypatch.setattr(loop_module, "generate_shard", spy)
    extra = ["task.num_train=8", "task.num_validation=2", "rl.prompts_per_iter=0", "rl.dpo_max_pairs=64",
             "rl.dpo_positive_lambda=50", "rl.dpo_nll_coef=0", "rl.samples_per_prompt=6", "rl.eval_every=1"]
    cfg = config(tmp_path, easy_sft_checkpoint, "dpo_plus", extra)
    train_rl(cfg)
    ids = sorted(e["id"] for e in load_task(cfg.task).train)
    assert len(seen) == 2 and [sorted(s) for s in seen] == [ids, ids] and seen[0] != seen[1]
    records = read_jsonl(tmp_path / "dpo_plus-arith-s0" / "metrics.jsonl")
    assert [r["train/episodes"] for r in records] == [36, 36]
    assert all(r["train/num_units"] > 0 and math.isfinite(r["loss/policy"]) for r in records)
    with pytest.raises(ConfigError, match=r"rl.prompts_per_iter=7 is more than the task's 6 RL prompts"):
        train_rl(config(tmp_path / "big", easy_sft_checkpoint, "grpo", [*extra[:2], "rl.prompts_per_iter=7"]))


@pytest.mark.slow
@pytest.mark.parametrize("stage", [None, 2])
def test_restem_from_init_fine_tunes_the_sft_model_each_iteration(tmp_path, easy_sft_checkpoint, monkeypatch, stage):
    """rl.restem_from=init (ReST-EM, the authors' restem_trainer): every iteration's first step
    starts from rl.init's weights with an optimizer without state, while the samples come from the
    policy trained the iteration before; `current` starts from that policy. Killed in the second
    iteration and rerun, the run resumes to the same records and model (its fresh start rebuilt
    from rl.init, or, through DeepSpeed, read back from where the run's start wrote it)."""
    from vineppo.learner import Updater

    starts: list[tuple[float, int]] = []  # (sum of the policy's weights, Adam state entries) per step

    class Spy(Updater):
        def step(self, losses=None):
            weights = sum(p.detach().double().sum().item() for p in self.learner.policy.parameters())
            state = sum(len(o.state) for o in ([e.optimizer for e in self.engines.values()] or [self.optimizer]))
            starts.append((weights, state))
            return super().step(losses)

    monkeypatch.setattr(loop_module, "Updater", Spy)
    ds = ["deepspeed.enabled=true", "deepspeed.zero_stage=2", "deepspeed.bf16=false", "rl.autocast=null"] if stage else []
    extra = ["rl.iterations=3", "rl.eval_every=3", "rl.prompts_per_iter=8", *ds]
    train_rl(config(tmp_path / "init", easy_sft_checkpoint, "restem", [*extra, "rl.restem_from=init"]))
    records = read_jsonl(tmp_path / "init" / "restem-arith-s0" / "metrics.jsonl")
    firsts = [0] + [r["train/grad_steps"] for r in records[:-1]]
    assert len(firsts) == 3 and all(r["train/num_units"] > 0 for r in records)
    assert all(starts[i] == starts[0] for i in firsts) and starts[0][1] == 0
    assert starts[1][0] != starts[0][0] and starts[1][1] > 0  # it trains within an iteration
    assert records[1]["train/reward"] != records[0]["train/reward"] or \
        records[2]["train/reward"] != records[0]["train/reward"]  # later samples from the trained policy
    starts.clear()
    train_rl(config(tmp_path / "current", easy_sft_checkpoint, "restem", extra))
    current = read_jsonl(tmp_path / "current" / "restem-arith-s0" / "metrics.jsonl")
    assert starts[current[0]["train/grad_steps"]][0] != starts[0][0]  # the trained policy, not rl.init

    calls = {"n": 0}
    real = loop_module.restem.loss

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == records[0]["train/grad_steps"] + 2:  # the second iteration's second step
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module.restem, "loss", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_rl(config(tmp_path / "crash", easy_sft_checkpoint, "restem", [*extra, "rl.restem_from=init"]))
    monkeypatch.setattr(loop_module.restem, "loss", real)
    train_rl(config(tmp_path / "crash", easy_sft_checkpoint, "restem", [*extra, "rl.restem_from=init"]))

    def strip(records):
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]

    assert strip(read_jsonl(tmp_path / "crash" / "restem-arith-s0" / "metrics.jsonl")) == strip(records)
    a = load_file(tmp_path / "init" / "restem-arith-s0" / "checkpoints" / "step-3" / "model.safetensors")
    b = load_file(tmp_path / "crash" / "restem-arith-s0" / "checkpoints" / "step-3" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("algo", ["ppo", "dpo_plus"])
def test_gradient_checkpointing_trains_the_same(tmp_path, easy_sft_checkpoint, algo, monkeypatch):
    """model.gradient_checkpointing recomputes activations in the backward pass: the same updates,
    so the same records (policy and PPO's value network; DPO+'s pair loss), but for time. Both on
    the plain path (which a checkpointed training forward takes; the shared one differs by float
    rounding, tests/test_shared_prefix.py)."""
    import vineppo.loop

    enabled = []

    def enable(model):  # the real one, recording which models it was asked for
        enabled.append(type(model).__name__)
        real_enable(model)

    real_enable = vineppo.loop.enable_gradient_checkpointing
    monkeypatch.setattr(vineppo.loop, "enable_gradient_checkpointing", enable)
    # transformers recomputes a layer only in training mode: the value network's training passes
    # must run its backbone in training mode (from_pretrained leaves it in eval), its no-grad values
    # pass in eval mode (where it shares prefixes).
    value_calls = []
    real_forward = ppo.ValueModel.forward

    def forward(self, batch):
        value_calls.append((torch.is_grad_enabled(), self.backbone.training))
        return real_forward(self, batch)

    monkeypatch.setattr(ppo.ValueModel, "forward", forward)
    runs = {}
    for gc in (False, True):
        train_rl(config(tmp_path / str(gc), easy_sft_checkpoint, algo, [f"model.gradient_checkpointing={gc}",
                                                                       "rl.shared_prefix=false"]))
        assert enabled == (["LlamaForCausalLM"] + ["LlamaModel"] * (algo == "ppo")) * gc  # policy, value backbone
        if algo == "ppo":
            assert {grad for grad, _ in value_calls} == {True, False}
            assert all(grad == training for grad, training in value_calls), value_calls
            value_calls.clear()
        runs[gc] = [{k: v for k, v in r.items() if not k.startswith("time/")}
                    for r in read_jsonl(tmp_path / str(gc) / f"{algo}-arith-s0" / "metrics.jsonl")]
    assert len(runs[True]) == 2 and runs[True][0].keys() == runs[False][0].keys()
    for a, b in zip(runs[True], runs[False], strict=True):
        for k in b:
            assert a[k] == b[k], k
    assert runs[False][-1]["loss/policy"] != 0


def test_a_resumed_run_may_turn_gradient_checkpointing_on(tmp_path):
    """It gives the same updates, so resuming with it (to fit) is allowed; a change of method is not."""
    from vineppo.config import ConfigError, check_unchanged, to_yaml
    from vineppo.loop import RESUME_FREE
    from vineppo.sft import RESUME_FREE as SFT_RESUME_FREE

    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(make_config(["rl.algo=ppo"])))
    for free in (RESUME_FREE, SFT_RESUME_FREE):
        check_unchanged(path, make_config(["rl.algo=ppo", "model.gradient_checkpointing=true"]), free)
    with pytest.raises(ConfigError, match="rl.clip"):
        check_unchanged(path, make_config(["rl.algo=ppo", "rl.clip=0.3", "model.gradient_checkpointing=true"]),
                        RESUME_FREE)


@pytest.mark.parametrize("algo", ["ppo", "dpo_plus"])
def test_micro_batches_take_the_same_steps(tmp_path, easy_sft_checkpoint, algo):
    """rl.micro_batch_size=2: each mini-batch of 8 episodes (4 DPO+ pairs) runs as 4 forward and
    backward passes of 2 (2 of 2 pairs: whole pairs), their gradients accumulated, one optimizer
    step: the same updates as one pass, to float rounding. Both in fp32 on the plain path (bf16
    autocast and the shared-prefix path round differently for other row groupings)."""
    runs = {}
    for micro in ("null", "2"):
        train_rl(config(tmp_path / micro, easy_sft_checkpoint, algo, [f"rl.micro_batch_size={micro}",
                                                                      "rl.shared_prefix=false", "rl.autocast=null"]))
        runs[micro] = read_jsonl(tmp_path / micro / f"{algo}-arith-s0" / "metrics.jsonl")
    one, micro = runs["null"], runs["2"]
    assert [r["train/grad_steps"] for r in one] == [r["train/grad_steps"] for r in micro]
    for a, b in zip(one, micro, strict=True):
        assert a["train/reward"] == b["train/reward"] and a["train/tokens_trained"] == b["train/tokens_trained"]
        for k in ("loss/policy", "loss/kl", "loss/value"):
            if k in a:
                assert b[k] == pytest.approx(a[k], abs=1e-5), (a["iteration"], k)
        for k in ("train/grad_norm", "train/grad_norm_value"):
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-4), (a["iteration"], k)
    assert one[-1]["eval/greedy_accuracy"] == micro[-1]["eval/greedy_accuracy"]
    assert one[-1]["loss/policy"] != 0 and one[-1]["train/grad_norm"] > 0


def test_micro_batches_are_counted_in_passes(tmp_path, easy_sft_checkpoint, monkeypatch):
    """Each optimizer step of 8 episodes runs ceil(8 / 3) = 3 forward passes of at most 3 rows."""
    from vineppo.learner import Updater

    rows = []
    real = Updater.__call__

    def call(self, mb, temperature):
        rows.append(mb["input_ids"].shape[0])
        return real(self, mb, temperature)

    monkeypatch.setattr(Updater, "__call__", call)
    train_rl(config(tmp_path, easy_sft_checkpoint, "grpo", ["rl.micro_batch_size=3", "rl.iterations=1",
                                                            "rl.eval_every=1"]))
    assert rows == [3, 3, 2] * 4  # 2 epochs x 2 steps


def test_episode_objects_are_dropped_before_the_updates(tmp_path, easy_sft_checkpoint, monkeypatch):
    """The iteration's episodes as Python objects (48-94 bytes a token, slurm/README.md) are gone
    once their tensors and training units are made: none is alive at the first update's loss."""
    import gc

    from vineppo.rollout import Episode

    alive: list[int] = []
    real = loop_module.minibatch_loss

    def counting(*args, **kwargs):
        if not alive:
            gc.collect()
            alive.append(sum(isinstance(o, Episode) for o in gc.get_objects()))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop_module, "minibatch_loss", counting)
    record_episodes = []
    for algo in ("dpo_plus", "vineppo"):
        alive.clear()
        train_rl(config(tmp_path / algo, easy_sft_checkpoint, algo, ["rl.iterations=1", "rl.eval_every=1"]))
        record_episodes.append(read_jsonl(tmp_path / algo / f"{algo}-arith-s0" / "metrics.jsonl")[0]["train/episodes"])
        assert alive == [0], algo
    assert record_episodes == [16, 16]  # 4 prompts x 4 samples, counted from the tensors
