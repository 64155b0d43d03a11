"""The before-start memory check: hand-worked byte counts, and a clear error naming the settings."""

import pytest
import torch

from vineppo.config import ConfigError
from vineppo.memory import available_bytes, check_fits, estimate, model_shape, trained_bytes_per_param


def test_bytes_per_parameter_hand_worked():
    assert trained_bytes_per_param("bfloat16") == 2 + 2 + 4 + 8  # weights, grads, fp32 master, Adam m and v
    assert trained_bytes_per_param("float32") == 4 + 4 + 8      # fp32: the weights are the master copy


def test_estimate_for_rhomath_scale_ppo_hand_worked():
    # 1.1e9 parameters in bf16, PPO, vllm engine with a 4 GiB KV cache; mini-batch 64 x 2048 tokens,
    # hidden 2048, 22 layers.
    parts = estimate(1_100_000_000, 2048, 22, dtype="bfloat16", algo="ppo", engine="vllm",
                     minibatch_size=64, max_length=2048, kv_cache_bytes=4 * 2**30)
    assert parts["policy (weights, grads, Adam)"] == 1_100_000_000 * 16
    assert parts["value network (weights, grads, Adam)"] == 1_100_000_000 * 16
    assert parts["reference policy"] == 1_100_000_000 * 2
    assert parts["vllm engine (weights + KV cache)"] == 1_100_000_000 * 2 + 4 * 2**30
    assert parts["activations (one mini-batch)"] == 64 * 2048 * 22 * 2048 * 2 * 16
    # The value network's forward is held for the backward beside the policy's: the same again.
    assert parts["value network activations"] == parts["activations (one mini-batch)"]
    # VinePPO with the hf engine holds neither the value network nor the engine's copy.
    vine = estimate(1_100_000_000, 2048, 22, dtype="bfloat16", algo="vineppo", engine="hf",
                    minibatch_size=64, max_length=2048)
    assert set(vine) == {"policy (weights, grads, Adam)", "reference policy", "activations (one mini-batch)"}
    # With gradient checkpointing each layer keeps its input (hidden units x dtype per token) and one
    # layer's activations live at a time: 64 x 2048 tokens x 2048 x 2 bytes x (22 + 16).
    ckpt = estimate(1_100_000_000, 2048, 22, dtype="bfloat16", algo="vineppo", engine="hf",
                    minibatch_size=64, max_length=2048, gradient_checkpointing=True)
    assert ckpt["activations (one mini-batch)"] == 64 * 2048 * 2048 * 2 * (22 + 16)
    assert ckpt["activations (one mini-batch)"] < vine["activations (one mini-batch)"] / 9


def test_deepseek_7b_ppo_fits_an_80gb_gpu_only_as_the_authors_ran_it():
    """DeepSeekMath-7B's shape (6.9e9 parameters, hidden 4096, 30 layers, 102,400 tokens), PPO
    under ZeRO-2 on 8 GPUs, a mini-batch share of 8 sequences of 2048 tokens, logits at 1,025
    response tokens, the value network's activations beside the policy's: 194 GiB per GPU as
    stored, 85 GiB with the activations recomputed (the paper preset's
    model.gradient_checkpointing), over an 80 GB H100's 79.6 GiB, and 66 GiB with Adam on the CPU
    as well (the authors' ppo_MATH trainer config, which all their PPO
    runs import: ZeRO-2 with offload_optimizer)."""
    kw = dict(dtype="bfloat16", algo="ppo", engine="hf", minibatch_size=64, max_length=2048, zero_stage=2,
              num_processes=8, vocab_size=102_400, response_tokens=1025)
    stored = sum(estimate(6_900_000_000, 4096, 30, **kw).values())
    recomputed = sum(estimate(6_900_000_000, 4096, 30, gradient_checkpointing=True, **kw).values())
    offloaded = sum(estimate(6_900_000_000, 4096, 30, gradient_checkpointing=True, offload=True, **kw).values())
    assert stored > recomputed > 80 * 2**30 > 70 * 2**30 > offloaded
    assert round(stored / 2**30) == 194 and round(recomputed / 2**30) == 85 and round(offloaded / 2**30) == 66


def test_logits_hand_worked():
    """A step's logits: its share of the mini-batch x response tokens x vocabulary x 16 B (the
    fp32 log-softmax kept for the backward and three fp32 temporaries at the peak): RhoMath-1.1B's
    32,000 tokens, 16 sequences per GPU (64 over 4), 1,025 tokens -> 7.8 GiB."""
    parts = estimate(1_100_000_000, 2048, 22, dtype="bfloat16", algo="vineppo", engine="hf", minibatch_size=64,
                     max_length=2048, num_processes=4, vocab_size=32_000, response_tokens=1025)
    assert parts["logits (one mini-batch)"] == 16 * 1025 * 32_000 * 16
    assert "logits (one mini-batch)" not in estimate(1_100_000_000, 2048, 22, dtype="bfloat16", algo="vineppo",
                                                     engine="hf", minibatch_size=64, max_length=2048)


def test_check_fits_names_the_settings():
    parts = {"policy (weights, grads, Adam)": 60 * 2**30, "activations (one mini-batch)": 30 * 2**30}
    check_fits(parts, 100 * 2**30, "cuda:0")  # 90 GiB into 100: fine
    with pytest.raises(ConfigError, match=r"about 90.0 GiB on cuda:0, which has 80.0 GiB free") as e:
        check_fits(parts, 80 * 2**30, "cuda:0")
    assert "rl.minibatch_size" in str(e.value) and "activations (one mini-batch): 30.0 GiB" in str(e.value)


def test_model_shape_from_config_alone(tmp_path, tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path)
    n, hidden, layers, vocab = model_shape(str(tmp_path))
    assert n == sum(p.numel() for p in model.parameters()) and (hidden, layers) == (32, 2)
    assert vocab == model.config.vocab_size == model.get_output_embeddings().weight.shape[0]
    assert available_bytes(torch.device("cpu")) > 0


def test_rl_run_that_cannot_fit_stops_before_loading(tmp_path, tiny_model_and_tokenizer, monkeypatch):
    from vineppo import loop
    from vineppo.config import make_config

    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    monkeypatch.setattr(loop, "available_bytes", lambda device: 1024)  # a 1 KiB device
    monkeypatch.setattr(loop, "load_model", lambda *a, **k: pytest.fail("loaded a model that cannot fit"))
    cfg = make_config([f"output_dir={tmp_path}", f"rl.init={tmp_path / 'm'}", "rl.algo=ppo", "device=cpu"])
    with pytest.raises(ConfigError, match="which has 0.0 GiB free"):
        loop.train_rl(cfg)


def test_zero_shards_what_each_process_holds():
    """Hand-worked: bf16 trained weights are 2 B + 2 B grads + 12 B master/Adam per parameter; over 4
    processes ZeRO-2 keeps 2 + 2/4 + 12/4, ZeRO-3 2/4 + 2/4 + 12/4, offload drops the 12 B."""
    from vineppo.memory import trained_bytes_per_param

    assert trained_bytes_per_param("bfloat16") == 16
    assert trained_bytes_per_param("bfloat16", zero_stage=1, num_processes=4) == 2 + 2 + 3
    assert trained_bytes_per_param("bfloat16", zero_stage=2, num_processes=4) == 5.5
    assert trained_bytes_per_param("bfloat16", zero_stage=3, num_processes=4) == 4
    assert trained_bytes_per_param("bfloat16", zero_stage=2, num_processes=4, offload=True) == 2.5
    parts = estimate(10**9, 2048, 22, dtype="bfloat16", algo="vineppo", engine="hf", minibatch_size=64,
                     max_length=1024, zero_stage=3, num_processes=4)
    assert parts["policy (weights, grads, Adam)"] == 4 * 10**9
    assert parts["whole policy copy for the hf engine (ZeRO-3)"] == 2 * 10**9
    # Each process trains on its quarter of the mini-batch.
    one = estimate(10**9, 2048, 22, dtype="bfloat16", algo="vineppo", engine="hf", minibatch_size=64, max_length=1024)
    assert parts["activations (one mini-batch)"] * 4 == one["activations (one mini-batch)"]


def test_the_iterations_episodes_are_counted():
    """Every process holds the iteration's episodes collated, per token position: int64 ids and
    attention mask, fp32 response mask, advantages, sampler's and old log-probs (32 B), the
    reference's for the KL methods (+4), PPO's values and returns (+8), VinePPO's MC values (+4).
    Hand-worked: the authors' DPO+ on GSM8K, 7,100 problems x 64 samples of up to 1,150 tokens."""
    from vineppo.memory import episode_bytes_per_token, episodes_bytes

    assert [episode_bytes_per_token(a) for a in ("restem", "dpo_plus", "grpo", "rloo", "vineppo", "ppo")] == \
        [32, 32, 36, 36, 40, 44]
    assert episodes_bytes("dpo_plus", 7100 * 64, 1150) == 7100 * 64 * 1150 * 32  # 15.6 GiB


def test_episodes_live_in_host_memory_on_a_gpu_run():
    """On a GPU the device holds the models and one mini-batch; the episodes are checked against the
    node's RAM, once for each process on the node. Hand-worked: 70 GiB of device parts fit an 80 GiB
    GPU although 70 + 15.6 GiB of episodes would not; 8 processes x 15.6 GiB need 124.6 GiB of RAM."""
    from vineppo.memory import check_run_fits

    gib = 2**30
    parts = {"policy (weights, grads, Adam)": 60 * gib, "activations (one mini-batch)": 10 * gib}
    episodes = 7100 * 64 * 1150 * 32
    free = {"cuda": 80 * gib, "cpu": 200 * gib}
    check_run_fits(parts, episodes, torch.device("cuda", 0), 8, lambda d: free[d.type])
    free["cpu"] = 100 * gib
    with pytest.raises(ConfigError, match=r"about 124.6 GiB on this node's RAM, which has 100.0 GiB free") as e:
        check_run_fits(parts, episodes, torch.device("cuda", 0), 8, lambda d: free[d.type])
    assert "the iteration's episodes (token tensors), x 8 processes on this node: 124.6 GiB" in str(e.value)
    assert "fewer processes per node" in str(e.value) and "rl.minibatch_size" not in str(e.value)
    free["cuda"] = 69 * gib  # the device's own check still names the device
    with pytest.raises(ConfigError, match=r"about 70.0 GiB on cuda:0, which has 69.0 GiB free"):
        check_run_fits(parts, episodes, torch.device("cuda", 0), 1, lambda d: free[d.type])


def test_on_the_cpu_everything_shares_the_ram():
    """On the CPU the models, the mini-batch and the episodes all live in RAM, for each process:
    2 processes x (70 GiB + 15.6 GiB) = 171.1 GiB."""
    from vineppo.memory import check_run_fits

    gib = 2**30
    parts = {"policy (weights, grads, Adam)": 60 * gib, "activations (one mini-batch)": 10 * gib}
    episodes = 7100 * 64 * 1150 * 32
    check_run_fits(parts, episodes, torch.device("cpu"), 2, lambda d: 172 * gib)
    with pytest.raises(ConfigError, match=r"about 171.1 GiB on cpu, which has 171.0 GiB free") as e:
        check_run_fits(parts, episodes, torch.device("cpu"), 2, lambda d: 171 * gib)
    assert "policy (weights, grads, Adam), x 2 processes on this node: 120.0 GiB" in str(e.value)
    with pytest.raises(ConfigError, match=r"about 85.6 GiB on cpu"):  # one process
        check_run_fits(parts, episodes, torch.device("cpu"), 1, lambda d: 85 * gib)


def test_rl_run_whose_episodes_cannot_fit_stops_before_loading(tmp_path, tiny_model_and_tokenizer, monkeypatch):
    """An iteration of 16 prompts x 200,000 samples (about 10 GiB of token tensors) on a 2 GiB
    device stops before any model loads, naming the episodes and the settings that shrink them."""
    from vineppo import loop
    from vineppo.config import make_config

    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    monkeypatch.setattr(loop, "available_bytes", lambda device: 2 * 2**30)
    monkeypatch.setattr(loop, "load_model", lambda *a, **k: pytest.fail("loaded a model that cannot fit"))
    cfg = make_config([f"output_dir={tmp_path}", f"rl.init={tmp_path / 'm'}", "rl.algo=grpo", "device=cpu",
                       "rl.samples_per_prompt=200000", "model.max_length=4096"])
    with pytest.raises(ConfigError, match=r"the iteration's episodes \(token tensors\): \d+\.\d GiB") as e:
        loop.train_rl(cfg)
    assert "rl.samples_per_prompt" in str(e.value)
    monkeypatch.setattr(loop, "available_bytes", lambda device: 2**40)  # with room, it gets past the check
    with pytest.raises(pytest.fail.Exception, match="loaded a model"):
        loop.train_rl(cfg)


def test_the_vllm_engine_takes_its_share_of_the_gpu():
    """On a GPU vLLM reserves vllm_memory x the GPU's memory whatever the model (0.3 x 80 GiB = 24
    GiB for RhoMath-1.1B's 2.2 GB of weights), and the estimate counts that; a share that cannot
    hold the weights and a KV cache stops with the key to raise. On the CPU: weights + 1 GiB."""
    from vineppo.memory import vllm_bytes

    gib, gpu = 2**30, torch.device("cuda", 0)
    assert vllm_bytes(gpu, 0.3, 2_200_000_000, total=80 * gib) == int(0.3 * 80 * gib)
    assert vllm_bytes(torch.device("cpu"), 0.3, 2_200_000_000) == 2_200_000_000 + gib
    parts = estimate(1_100_000_000, 2048, 22, dtype="bfloat16", algo="vineppo", engine="vllm", minibatch_size=64,
                     max_length=2048, engine_bytes=vllm_bytes(gpu, 0.3, 2_200_000_000, total=80 * gib))
    assert parts["vllm engine (weights + KV cache)"] == int(0.3 * 80 * gib)
    with pytest.raises(ConfigError, match=r"vllm_memory=0.1: 8.0 GiB of the GPU's 80.0 GiB leaves vLLM no room "
                                          r"for a KV cache .* \(12.9 GiB\); raise vllm_memory, or use engine=hf"):
        vllm_bytes(gpu, 0.1, 13_800_000_000, total=80 * gib)


def test_vllm_memory_is_a_share():
    from vineppo.config import make_config

    assert make_config([]).vllm_memory == 0.3 and make_config(["vllm_memory=0.9"]).vllm_memory == 0.9
    for bad in ("0", "1.5", "-0.2"):
        with pytest.raises(ConfigError, match="vllm_memory must be"):
            make_config([f"vllm_memory={bad}"])


def test_micro_batches_shrink_a_pass():
    """rl.micro_batch_size=8 on one GPU: a pass holds 8 of the mini-batch's 64 sequences, so the
    activations and logits are an eighth (RhoMath-1.1B's PPO: 104 GiB on one GPU, 43 GiB in passes
    of 8); it cannot raise a process's share (64 over 8 GPUs is 8 already)."""
    kw = dict(dtype="bfloat16", algo="ppo", engine="hf", minibatch_size=64, max_length=2048,
              gradient_checkpointing=True, vocab_size=32_000, response_tokens=1025)
    whole, micro = (estimate(1_100_048_384, 2048, 22, micro_batch_size=m, **kw) for m in (None, 8))
    for part in ("activations (one mini-batch)", "logits (one mini-batch)", "value network activations"):
        assert micro[part] * 8 == whole[part]
    assert round(sum(whole.values()) / 2**30) == 104 and round(sum(micro.values()) / 2**30) == 43
    assert estimate(1_100_048_384, 2048, 22, num_processes=8, micro_batch_size=16, **kw) == \
        estimate(1_100_048_384, 2048, 22, num_processes=8, **kw)


def test_micro_batch_size_setting():
    from vineppo.config import make_config

    assert make_config(["rl.micro_batch_size=8"]).rl.micro_batch_size == 8
    assert make_config(["rl.micro_batch_size=8", "deepspeed.enabled=true"]).rl.micro_batch_size == 8
    with pytest.raises(ConfigError, match="rl.micro_batch_size must be >= 1"):
        make_config(["rl.micro_batch_size=0"])
