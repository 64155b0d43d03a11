"""The learner under `rl.autocast`: bf16 forward passes close to fp32's, fp32 results and weights,
the same numbers from the loop's no-grad pass as from the update's forward (so PPO's ratio starts
at 1), and 'auto' following the hardware."""

import copy

import pytest
import torch

from vineppo.config import ConfigError
from vineppo.learner import Learner, autocast, resolve_autocast, use_eager_attention
from vineppo.rollout import Episode, chunked, collate_episodes, token_logprobs

CPU = torch.device("cpu")


def batch_of(tok, texts):
    prompt = "Q: how many?\nAnswer:\n"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    eps = [Episode(0, {}, prompt, ids, tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], t,
                   "stop", 0.0) for t in texts]
    return collate_episodes(eps, tok.pad_token_id)


TEXTS = ["1 + 2 = 3.\n#### 3", "4 + 5 = 9 apples and more words here.\n#### 9", "#### 1", "7 - 2 = 5.\n#### 5",
         "She has 3 and gets 4 more, 3 + 4 = 7.\n#### 7"]


def test_resolve_autocast(monkeypatch):
    assert resolve_autocast(None, CPU) is None
    assert resolve_autocast("bfloat16", CPU) == "bfloat16"
    with pytest.raises(ConfigError, match="rl.autocast: 'fp8'"):
        resolve_autocast("fp8", CPU)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_autocast("auto", CPU) is None  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_autocast("auto", CPU) == "bfloat16"


def test_bf16_forward_is_close_to_fp32_and_trains_fp32_weights(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    policy = copy.deepcopy(model).train()
    batch = batch_of(tok, TEXTS)
    mask = batch["mask"].bool()
    with torch.no_grad():
        fp32, _ = Learner(policy, None)(batch, 0.7)
    use_eager_attention(policy)
    learner = Learner(policy, None, "bfloat16")
    bf16, _ = learner(batch, 0.7)
    assert bf16.dtype == torch.float32
    diff = (bf16 - fp32)[mask].abs()
    # bf16 keeps 8 bits of mantissa: close to fp32, but not equal (the autocast is really on).
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.02
    (-(bf16 * batch["mask"]).sum()).backward()
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
               for p in policy.parameters() if p.requires_grad)


def test_no_grad_pass_under_autocast_equals_the_updates_forward(tiny_model_and_tokenizer):
    """The loop's old log-probs (length-sorted chunks, no grad, under the same autocast) equal the
    update's forward on a mini-batch to within fp32 rounding, so the first ratio is 1; the fp32
    pass (the sampler's numerics) is measurably off, which is why the loop recomputes."""
    model, tok = tiny_model_and_tokenizer
    policy = copy.deepcopy(model).train()
    use_eager_attention(policy)
    batch = batch_of(tok, TEXTS)
    mask = batch["mask"].bool()
    with autocast(CPU, "bfloat16"):
        old = chunked(lambda b: token_logprobs(policy, b, 0.7), batch, chunk=2)
    fp32 = chunked(lambda b: token_logprobs(policy, b, 0.7), batch, chunk=2)
    rows = torch.tensor([1, 3, 4])
    mb = {k: v[rows] for k, v in batch.items()}
    new, _ = Learner(policy, None, "bfloat16")(mb, 0.7)
    assert (new - old[rows])[mask[rows]].abs().max() < 1e-4
    assert (fp32 - old)[mask].abs().max() > 1e-3


def _ppo_learner(tiny_model_and_tokenizer, tmp_path):
    from vineppo.algorithms.ppo import ValueModel

    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    return Learner(copy.deepcopy(model).train(), ValueModel(str(tmp_path / "m"))), tok


def _moves(learner, before):
    """The largest change of any parameter, of the policy and of the value network."""
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in learner.named_parameters()}
    return (max(v for n, v in moved.items() if n.startswith("policy_forward.")),
            max(v for n, v in moved.items() if n.startswith("value_forward.")), moved)


def _ppo_losses(updater, batch, value_scale=1.0):
    logp, values = updater(batch, 1.0)
    return {"policy": -(logp * batch["mask"]).sum(), "value": value_scale * ((values - 1.0) ** 2 * batch["mask"]).sum()}


@pytest.mark.parametrize("value_lr,stage", [(None, None), (1e-2, None), (1e-2, 2), (1e-2, 3)])
def test_value_network_steps_at_its_own_learning_rate(tiny_model_and_tokenizer, tmp_path, value_lr, stage):
    """Adam's first step moves each parameter by lr * g / (|g| + eps), about lr: with
    rl.value_learning_rate the value network's parameters move by that rate, the policy's by
    rl.learning_rate; without it both by rl.learning_rate (the paper's one rate). The same through
    DeepSpeed (one process, ZeRO-2 and ZeRO-3), where policy and value network have an engine each."""
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    cfg = make_config(["rl.learning_rate=1e-4", "rl.grad_clip=1e9"]
                      + ([f"rl.value_learning_rate={value_lr}"] if value_lr else [])
                      + (["deepspeed.enabled=true", f"deepspeed.zero_stage={stage}", "deepspeed.bf16=false"]
                         if stage else []))
    updater = Updater(learner, cfg, World(), CPU, micro_batch=8)
    if stage == 3:  # parameters are sharded: check the optimizers' groups
        assert [[g["lr"] for g in updater.engines[part].optimizer.param_groups]
                for part in ("policy", "value")] == [[1e-4], [value_lr]]
        return
    before = {n: p.detach().clone() for n, p in learner.named_parameters()}
    updater.step(_ppo_losses(updater, batch_of(tok, TEXTS)))
    policy_move, value_move, moved = _moves(learner, before)
    assert policy_move == pytest.approx(1e-4, rel=1e-3)
    assert value_move == pytest.approx(value_lr or 1e-4, rel=1e-3)
    assert moved["value_forward.value_model.head.bias"] == pytest.approx(value_lr or 1e-4, rel=1e-3)


@pytest.mark.parametrize("total,ratio", [(10400, 0.03), (100, 0.1), (40, 0.03), (8, 0.0)])
def test_lr_factor_is_deepspeeds_warmup_decay(total, ratio):
    """rl.lr_schedule=warmup_decay against DeepSpeed's own WarmupDecayLR, as the authors' configs
    build it (warmup_min_lr 0, warmup_max_lr the rate, warmup_num_steps ceil(ratio * total)): the
    rate each optimizer step runs at, step by step. Hand-checked too: 10,400 steps (650 GSM8K
    iterations x 2 epochs x 8 mini-batches) warm up over 312, the peak at steps 312-313, half of it
    left halfway through the decay, 0 at the end."""
    import math

    lr_schedules = pytest.importorskip("deepspeed.runtime.lr_schedules")
    from vineppo.learner import lr_factor

    warmup = math.ceil(total * ratio)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-6)
    if warmup != 1:  # DeepSpeed divides by log(1) for a 1-step warm-up
        sched = lr_schedules.WarmupDecayLR(opt, total_num_steps=total, warmup_min_lr=0.0, warmup_max_lr=1e-6,
                                           warmup_num_steps=max(warmup, 1) if warmup else 1)
        if warmup == 0:  # no warm-up: DeepSpeed's warm-up of 1 step is its nearest, the decay the same after it
            sched.warmup_num_steps = 0
        for step in range(total + 2):
            assert lr_factor(step, total, ratio) * 1e-6 == pytest.approx(opt.param_groups[0]["lr"], abs=1e-15), step
            opt.step()
            sched.step()
    if total == 10400:
        assert warmup == 312 and lr_factor(0, total, ratio) == lr_factor(1, total, ratio) == 0.0
        assert lr_factor(312, total, ratio) == lr_factor(313, total, ratio) == 1.0 > lr_factor(311, total, ratio)
        assert lr_factor(313 + (total - 312) // 2, total, ratio) == pytest.approx(0.5, abs=1e-3)
        assert lr_factor(total + 1, total, ratio) == 0.0


@pytest.mark.parametrize("stage", [None, 2])
def test_lr_factor_scales_every_groups_rate(tiny_model_and_tokenizer, tmp_path, stage):
    """Updater.set_lr_factor: Adam's first step moves each parameter by about its rate, so at
    factor 0.25 the policy moves by a quarter of rl.learning_rate and the value network by a quarter
    of its own rate, plain and through DeepSpeed; the factor is applied to the rates as configured,
    not compounded."""
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    cfg = make_config(["rl.learning_rate=1e-4", "rl.grad_clip=1e9", "rl.value_learning_rate=1e-2"]
                      + (["deepspeed.enabled=true", f"deepspeed.zero_stage={stage}", "deepspeed.bf16=false"]
                         if stage else []))
    updater = Updater(learner, cfg, World(), CPU, micro_batch=8)
    assert updater.set_lr_factor(0.5) == 5e-5
    assert updater.set_lr_factor(0.25) == 2.5e-5
    before = {n: p.detach().clone() for n, p in learner.named_parameters()}
    updater.step(_ppo_losses(updater, batch_of(tok, TEXTS)))
    policy_move, value_move, _ = _moves(learner, before)
    assert policy_move == pytest.approx(2.5e-5, rel=1e-2) and value_move == pytest.approx(2.5e-3, rel=1e-2)


def test_bad_value_learning_rate_is_named(tiny_model_and_tokenizer, tmp_path):
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, _ = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    with pytest.raises(ConfigError, match="rl.value_learning_rate must be > 0"):
        Updater(learner, make_config(["rl.value_learning_rate=0"]), World(), CPU, micro_batch=8)


def _grad_norms(learner):
    flat = {name: torch.cat([p.grad.flatten() for n, p in learner.named_parameters() if n.startswith(name)])
            for name in ("policy_forward.", "value_forward.")}
    return {k.split("_")[0]: v.norm().item() for k, v in flat.items()}


@pytest.mark.parametrize("scope", ["per_model", "joint"])
def test_grad_clip_scope(tiny_model_and_tokenizer, tmp_path, scope):
    """A value loss whose gradient is far larger than the policy's: clipped per model (separate
    actor and critic optimizers, the paper's code) the policy's gradient is left as it is and the
    value network's is cut to the clip; clipped jointly both shrink by clip / joint norm (the policy
    included). The returned norms are the pre-clip ones."""
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    batch = batch_of(tok, TEXTS)
    reference = copy.deepcopy(learner)
    sum(_ppo_losses(reference, batch, 1e3).values()).backward()
    raw = _grad_norms(reference)  # the unclipped norms
    assert raw["value"] > 100 * raw["policy"]
    clip = 2 * raw["policy"]
    updater = Updater(learner, make_config([f"rl.grad_clip={clip}", f"rl.grad_clip_scope={scope}"]), World(), CPU,
                      micro_batch=8)
    norms = updater.step(_ppo_losses(updater, batch, 1e3))
    after = _grad_norms(learner)  # the gradients the optimizer stepped with
    joint = (raw["policy"] ** 2 + raw["value"] ** 2) ** 0.5
    if scope == "per_model":
        assert norms["train/grad_norm"] == pytest.approx(raw["policy"], rel=1e-4)
        assert norms["train/grad_norm_value"] == pytest.approx(raw["value"], rel=1e-4)
        assert after["policy"] == pytest.approx(raw["policy"], rel=1e-4)  # under the clip: untouched
        assert after["value"] == pytest.approx(clip, rel=1e-4)
    else:
        assert list(norms) == ["train/grad_norm"] and norms["train/grad_norm"] == pytest.approx(joint, rel=1e-4)
        assert after["policy"] == pytest.approx(raw["policy"] * clip / joint, rel=1e-3)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_clips_like_plain_adam(tiny_model_and_tokenizer, tmp_path, stage):
    """Through DeepSpeed (one process, fp32) three steps of each clip scope end at the weights plain
    Adam with that scope reaches, and report the same pre-clip norms; the two scopes end apart (the
    value loss's gradient is 1000x the policy's, so a joint clip shrinks the policy's steps). Per
    model, DeepSpeed has an engine for each model, as the paper's actor and critic."""
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    batch = batch_of(tok, TEXTS)
    finals, reported = {}, {}
    for scope in ("per_model", "joint"):
        for ds in (False, True):
            run = copy.deepcopy(learner)
            flags = [f"rl.grad_clip_scope={scope}", "rl.grad_clip=0.5", "rl.learning_rate=1e-3"]
            if ds:
                flags += ["deepspeed.enabled=true", f"deepspeed.zero_stage={stage}", "deepspeed.bf16=false"]
            updater = Updater(run, make_config(flags), World(), CPU, micro_batch=8)
            assert sorted(updater.engines) == ([] if not ds else ["policy", "value"] if scope == "per_model" else ["all"])
            reported[scope, ds] = [updater.step(_ppo_losses(updater, batch, 1e3)) for _ in range(3)]
            with torch.no_grad():
                _, values = updater(batch, 1.0)  # the value network's output: gathered weights under ZeRO-3
                logp, _ = updater(batch, 1.0)
            finals[scope, ds] = (logp.detach(), values.detach())
    for scope in ("per_model", "joint"):
        (lp, v), (lp_ds, v_ds) = finals[scope, False], finals[scope, True]
        assert (lp - lp_ds).abs().max() < 1e-4 and (v - v_ds).abs().max() < 1e-4, scope
        for plain, ds in zip(reported[scope, False], reported[scope, True], strict=True):
            assert plain.keys() == ds.keys()
            assert all(ds[k] == pytest.approx(plain[k], rel=1e-4) for k in plain), (plain, ds)
    moved = (finals["per_model", False][0] - finals["joint", False][0]).abs().max()
    assert moved > 100 * 1e-4  # the comparison above can tell the scopes apart


def test_bad_grad_clip_scope_is_named(tiny_model_and_tokenizer, tmp_path):
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, _ = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    with pytest.raises(ConfigError, match="rl.grad_clip_scope: 'both' is not one of per_model, joint"):
        make_config(["rl.grad_clip_scope=both"])
    cfg = make_config([])
    cfg.rl.grad_clip_scope = "both"  # a config not made by make_config: the updater still names it
    with pytest.raises(ConfigError, match="rl.grad_clip_scope must be one of per_model, joint, got 'both'"):
        Updater(learner, cfg, World(), CPU, micro_batch=8)


def test_deepspeed_bf16_trains_both_engines(tiny_model_and_tokenizer, tmp_path):
    """DeepSpeed's bf16 (bf16 weights, fp32 master copies, as on a GPU) with an engine per model:
    the forward still hands the loss fp32 log-probs and values, each step reports the pre-clip norms
    of both models, and five steps follow plain fp32 Adam's losses and norms to within 1%."""
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    batch = batch_of(tok, TEXTS)
    flags = ["rl.learning_rate=1e-3"]
    trajectories = {}
    for bf16 in (False, True):
        run = copy.deepcopy(learner)
        ds = ["deepspeed.enabled=true", "deepspeed.zero_stage=2", "deepspeed.bf16=true"] if bf16 else []
        updater = Updater(run, make_config(flags + ds), World(), CPU, micro_batch=8)
        dtype = torch.bfloat16 if bf16 else torch.float32
        assert {p.dtype for p in run.parameters()} == {dtype}
        seen = []
        for _ in range(5):
            losses = _ppo_losses(updater, batch)
            norms = updater.step(losses)
            assert set(norms) == {"train/grad_norm", "train/grad_norm_value"}
            seen.append((losses["policy"].item(), losses["value"].item(), norms["train/grad_norm"],
                         norms["train/grad_norm_value"]))
        trajectories[bf16] = seen
    fp32, bf16 = trajectories[False], trajectories[True]
    assert fp32[-1][1] < 0.9 * fp32[0][1]  # the value loss falls: there is a trajectory to follow
    for a, b in zip(fp32, bf16, strict=True):
        assert b == pytest.approx(a, rel=0.01), (a, b)  # bf16 keeps 8 mantissa bits; here within 0.3%


@pytest.mark.parametrize("stage", [None, 2, 3])
def test_snapshot_then_restore_gives_back_weights_and_optimizer(tiny_model_and_tokenizer, tmp_path, stage):
    """RestEM's epoch choice goes back to an earlier epoch: after `restore`, the weights are the
    snapshot's and the next step moves them exactly as it would have from there (the optimizer's
    moments came back too); in memory, and through DeepSpeed's own checkpoint (ZeRO-2, ZeRO-3)."""
    from vineppo.config import make_config
    from vineppo.distributed import World
    from vineppo.learner import Updater

    def weights(learner):
        from vineppo.distributed import full_parameters

        with full_parameters(learner, stage or 0):
            return {n: p.detach().clone() for n, p in learner.named_parameters()}

    def run(restore: bool):
        learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
        cfg = make_config(["rl.learning_rate=1e-3"] + (["deepspeed.enabled=true", f"deepspeed.zero_stage={stage}",
                                                        "deepspeed.bf16=false"] if stage else []))
        updater = Updater(learner, cfg, World(), CPU, micro_batch=8)
        batch = batch_of(tok, TEXTS)
        updater.step(_ppo_losses(updater, batch))
        snap, at_snap = updater.snapshot(tmp_path / "snap", "one"), weights(learner)
        if restore:  # two more steps, then back
            updater.step(_ppo_losses(updater, batch))
            updater.step(_ppo_losses(updater, batch))
            assert any(not torch.equal(v, weights(learner)[k]) for k, v in at_snap.items())
            updater.restore(tmp_path / "snap", snap)
            assert all(torch.equal(v, weights(learner)[k]) for k, v in at_snap.items())
        updater.step(_ppo_losses(updater, batch))
        return weights(learner)

    straight, restored = run(False), run(True)
    assert all(torch.allclose(straight[k], restored[k], atol=1e-6, rtol=0) for k in straight)


def test_value_head_starts_at_zero_or_as_the_authors_draw_it(tiny_model_and_tokenizer, tmp_path):
    """rl.value_head_init: zero gives V = 0 on every state; normal, the authors' head, draws the
    weights from N(0, 1 / (hidden + 1)) with the run's seed (the same seed the same head, another
    seed another), bias 0, so V starts as a non-zero projection of each state."""
    from vineppo.algorithms.ppo import ValueModel

    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    batch = batch_of(tok, TEXTS)
    zero = ValueModel(str(tmp_path / "m"))
    assert torch.count_nonzero(zero(batch)) == 0
    a, b, c = (ValueModel(str(tmp_path / "m"), head_init="normal", seed=s) for s in (0, 0, 1))
    assert torch.equal(a.head.weight, b.head.weight) and not torch.equal(a.head.weight, c.head.weight)
    assert a.head.bias.item() == 0.0 and torch.count_nonzero(a(batch)) > 0
    hidden = a.head.weight.numel()  # 32: its mean square is 1 / 33 up to sampling (chi-square, 32 draws)
    assert 0.4 < (a.head.weight ** 2).mean().item() * (hidden + 1) < 1.8


def test_zero_shards_count_the_processes_that_wrote_a_checkpoint(tmp_path):
    """ZeRO's optimizer shards, one per process (named as tests/test_distributed.py finds DeepSpeed
    writing them), tell how many processes wrote a checkpoint; a folder without them (plain Adam,
    ZeRO-0, a universal checkpoint) counts 0, which any number of processes reads."""
    from vineppo.learner import zero_shards

    state = tmp_path / "deepspeed" / "state"
    state.mkdir(parents=True)
    assert zero_shards(state) == 0
    (state / "mp_rank_00_model_states.pt").write_bytes(b"")
    for rank in range(2):
        (state / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(b"")
    assert zero_shards(state) == 2


def test_a_damaged_checkpoint_fails_its_conversion_by_name(tmp_path):
    """Shards that DeepSpeed cannot read (here: empty files, as from a full disk) stop the
    universal conversion with the folder's name and what to do, not torch's unpickling error alone;
    no half-written conversion is left beside the checkpoint."""
    from vineppo.learner import to_universal

    state = tmp_path / "deepspeed" / "state"
    state.mkdir(parents=True)
    (state / "mp_rank_00_model_states.pt").write_bytes(b"")
    for rank in range(2):
        (state / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(b"")
    with pytest.raises(RuntimeError, match=rf"{state}: converting it to DeepSpeed's universal checkpoint failed"
                                           r".*resume it on the 2 process\(es\)"):
        to_universal(state)
    assert sorted(p.name for p in state.parent.iterdir()) == ["state"]


@pytest.mark.parametrize("scope,stage,bf16", [("per_model", None, False), ("per_model", 2, False), ("joint", 3, False),
                                              ("joint", 0, False), ("per_model", 2, True)])
def test_a_checkpoint_gives_back_its_value_network(tiny_model_and_tokenizer, tmp_path, scope, stage, bf16):
    """What the value-estimate analyses read (`ValueModel.from_checkpoint`): PPO's value network as
    `Updater.save` left it, in state.pt (plain Adam) or only in DeepSpeed's shards (the paper
    preset's runs): its own engine's (per model) or the whole learner's (joint), ZeRO-0, 2 and 3.
    After three steps the network read back is the trained one: exactly in fp32; under bf16 the
    fp32 master weights, which the bf16 module holds rounded. A checkpoint without one is named."""
    from vineppo.algorithms.ppo import ValueModel
    from vineppo.config import make_config
    from vineppo.distributed import World, full_parameters
    from vineppo.learner import Updater, saved_value_weights

    learner, tok = _ppo_learner(tiny_model_and_tokenizer, tmp_path)
    start = {k: v.clone() for k, v in learner.value_model.state_dict().items()}
    ds = ["deepspeed.enabled=true", f"deepspeed.zero_stage={stage}", f"deepspeed.bf16={str(bf16).lower()}"]
    cfg = make_config([f"rl.init={tmp_path / 'm'}", "rl.learning_rate=1e-3", f"rl.grad_clip_scope={scope}"]
                      + (ds if stage is not None else []))
    updater = Updater(learner, cfg, World(), CPU, micro_batch=8)
    batch = batch_of(tok, TEXTS)
    for _ in range(3):
        updater.step(_ppo_losses(updater, batch))
    updater.save(tmp_path / "checkpoints", 3, tok, {"grad_steps": 3}, keep=1)
    checkpoint = tmp_path / "checkpoints" / "step-3"
    with full_parameters(learner, stage or 0):
        trained = {k: v.detach().float().clone() for k, v in learner.value_model.state_dict().items()}
    read = saved_value_weights(checkpoint)
    assert read.keys() == trained.keys() and {t.dtype for t in read.values()} == {torch.float32}
    assert ("value_model" in torch.load(checkpoint / "state.pt")) == (stage is None)
    for k, t in read.items():
        if bf16:  # the module's bf16 weights are the master weights rounded to 8 bits of mantissa
            assert torch.equal(t.bfloat16().float(), trained[k]), k
        else:
            assert torch.equal(t, trained[k]), k
    if bf16:  # and not the bf16 module's own weights
        assert any(not torch.equal(read[k], trained[k]) for k in read)
    assert max((read[k] - start[k]).abs().max().item() for k in read) > 1e-3  # it trained: three steps of ~1e-3
    value_model = ValueModel.from_checkpoint(checkpoint, cfg.rl)
    with torch.no_grad():
        assert torch.equal(value_model.head.weight, read["head.weight"]) and not value_model.training
        assert value_model(batch).abs().sum() > 0

    # A checkpoint without a value network (VinePPO's, here through DeepSpeed too) is named.
    policy_only = Learner(copy.deepcopy(tiny_model_and_tokenizer[0]).train(), None)
    Updater(policy_only, cfg, World(), CPU, micro_batch=8).save(tmp_path / "vine", 1, tok, {}, keep=1)
    with pytest.raises(FileNotFoundError, match=r"step-1.* holds no value network.*only PPO's checkpoints do"):
        saved_value_weights(tmp_path / "vine" / "step-1")


def test_a_damaged_checkpoint_fails_to_give_its_value_network_by_name(tmp_path):
    """Shards that DeepSpeed cannot read (empty files, as from a full disk) stop the value network's
    read-out with the folder's name, not torch's unpickling error alone."""
    from vineppo.learner import saved_value_weights

    checkpoint = tmp_path / "step-1"
    state = checkpoint / "deepspeed_value" / "state"
    state.mkdir(parents=True)
    torch.save({"grad_steps": 1}, checkpoint / "state.pt")
    (state / "mp_rank_00_model_states.pt").write_bytes(b"")
    (state / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"")
    with pytest.raises(RuntimeError, match=rf"{state}: reading the value network from DeepSpeed's files failed"):
        saved_value_weights(checkpoint)
