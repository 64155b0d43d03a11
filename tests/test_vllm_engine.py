"""The vllm engine against the hf engine and a fresh forward pass: same greedy tokens, the same
sampling distribution, true log-probs, weight sync, finish reasons, and RL training through it.

Runs in the vLLM environment (`make test-vllm`; `.venv-vllm/`, made by scripts/ensure_vllm_env.sh).
In the main environment, where vLLM is not installed, the module skips as a whole.
"""

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here: `make test-vllm` runs these in .venv-vllm")

from vineppo.config import ModelConfig  # noqa: E402
from vineppo.inference import HFEngine, SamplingParams, make_engine  # noqa: E402
from vineppo.inference.vllm import VLLMEngine  # noqa: E402
from vineppo.models import build_tiny_model  # noqa: E402
from vineppo.rollout import response_tokens  # noqa: E402

pytestmark = pytest.mark.vllm

PROMPTS = ["Question: Ava has 3 apples.\nAnswer:\n", "Question: Ben has 12 coins. He finds 4 more.\nAnswer:\n"]


def fresh_logprobs(model, tok, prompt, ids, temperature, bos=False):
    p = [tok.bos_token_id] * bos + tok(prompt, add_special_tokens=False)["input_ids"]
    x = torch.tensor([p + ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, len(p) - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None]).squeeze(-1).tolist()


@pytest.fixture(scope="module")
def model_tok(arith_task, tiny_model_and_tokenizer):
    """A random tiny Llama with head size 32 (vLLM's CPU attention wants one of its supported
    sizes) and logits scaled up by 6, so next-token distributions are peaked enough for a
    sampling test of a few thousand draws."""
    _, tok = tiny_model_and_tokenizer
    model = build_tiny_model(ModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                                         max_length=256), tok, seed=1).eval()
    with torch.no_grad():
        model.model.norm.weight.mul_(6.0)
    return model, tok


@pytest.fixture(scope="module")
def engine(model_tok):
    model, tok = model_tok
    return VLLMEngine.from_model(model, tok)


def test_greedy_matches_hf_engine(model_tok, engine):
    model, tok = model_tok
    params = SamplingParams(temperature=0.0, max_new_tokens=16)
    ours = engine.generate(PROMPTS, params)
    ref = HFEngine(model, tok).generate(PROMPTS, params)
    assert [c[0].token_ids for c in ours] == [c[0].token_ids for c in ref]
    assert [c[0].text for c in ours] == [c[0].text for c in ref]


def test_bos_prompts_are_read_after_the_bos_token(model_tok, engine):
    """With task.prompt_bos a text prompt is read as [BOS] + its tokens, as the hf engine reads it:
    the sampled tokens' log-probs are those of a forward pass with BOS first, not without it."""
    model, tok = model_tok
    engine.bos = True
    try:
        out = engine.generate(PROMPTS, SamplingParams(n=2, temperature=0.8, max_new_tokens=12, seed=2))
    finally:
        engine.bos = False
    off_without = []
    for prompt, comps in zip(PROMPTS, out, strict=True):
        for c in comps:
            with_bos = fresh_logprobs(model, tok, prompt, c.token_ids, 0.8, bos=True)
            without = fresh_logprobs(model, tok, prompt, c.token_ids, 0.8)
            assert max(abs(a - b) for a, b in zip(c.logprobs, with_bos, strict=True)) < 1e-4
            off_without.append(max(abs(a - b) for a, b in zip(c.logprobs, without, strict=True)))
    # A BOS far back moves later log-probs little on a random model, but not nothing: over the four
    # samples at least one token is off by more than ten times the tolerance above.
    assert max(off_without) > 1e-3, off_without


def test_logprobs_equal_fresh_forward(model_tok, engine):
    model, tok = model_tok
    out = engine.generate(PROMPTS, SamplingParams(n=3, temperature=0.8, max_new_tokens=12, seed=2))
    for prompt, comps in zip(PROMPTS, out, strict=True):
        assert len(comps) == 3
        for c in comps:
            assert len(c.logprobs) == len(c.token_ids) > 0
            ref = fresh_logprobs(model, tok, prompt, c.token_ids, 0.8)
            assert max(abs(a - b) for a, b in zip(c.logprobs, ref, strict=True)) < 1e-4


def test_same_distribution_as_hf_and_softmax(model_tok, engine):
    """4,000 one-token samples from each engine: both match softmax(logits / T) (total variation
    < 0.06), while the untempered softmax is measurably further away (> 0.1), so the test can fail."""
    model, tok = model_tok
    prompt, t, n = PROMPTS[0], 0.7, 4000
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    want, untempered = torch.softmax(logits / t, -1), torch.softmax(logits, -1)

    def empirical(e) -> torch.Tensor:
        comps = e.generate([prompt], SamplingParams(n=n, temperature=t, max_new_tokens=1, seed=11))[0]
        return torch.bincount(torch.tensor([c.token_ids[0] for c in comps]), minlength=len(want)).float() / n

    tv = lambda p, q: 0.5 * (p - q).abs().sum().item()  # noqa: E731
    ours, hf = empirical(engine), empirical(HFEngine(model, tok, batch_size=512))
    assert tv(ours, want) < 0.06 and tv(hf, want) < 0.06 and tv(ours, hf) < 0.08
    assert tv(want, untempered) > 0.1


def test_seeded_and_finish_reasons(model_tok, engine):
    model, tok = model_tok
    p = SamplingParams(n=2, temperature=1.0, max_new_tokens=6, seed=4)
    a, b = engine.generate(PROMPTS, p), engine.generate(PROMPTS, p)
    assert [[c.token_ids for c in x] for x in a] == [[c.token_ids for c in x] for x in b]
    for comps in a:
        for c in comps:
            eos = bool(c.token_ids) and c.token_ids[-1] == tok.eos_token_id
            assert c.finish_reason == ("stop" if eos else "length")
            assert eos or len(c.token_ids) == 6
    # A stop string: the text ends before its first occurrence, the reason is 'stop'. The same seed
    # gives the same sample up to there, so the cut is known from the unstopped sample.
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=9)
    full = engine.generate(PROMPTS[1:], params)[0][0]
    stop = next(s for i in range(2, len(full.token_ids)) if (s := tok.decode(full.token_ids[i:i + 2])).strip())
    cut = engine.generate(PROMPTS[1:], SamplingParams(temperature=1.0, max_new_tokens=16, seed=9, stop=[stop]))[0][0]
    assert cut.text == full.text[:full.text.index(stop)]
    assert cut.finish_reason == "stop" and len(cut.token_ids) < len(full.token_ids)
    # The ids run through the token that completed the stop string (as the hf engine's); trained
    # on the text instead (rl.response_tokens=text), an episode is the cut text's tokens and EOS.
    assert cut.token_ids == full.token_ids[:len(cut.token_ids)] and stop in tok.decode(cut.token_ids)
    ids, logprobs = response_tokens(cut, tok, "text")
    assert tok.decode(ids[:-1]) == cut.text and ids[-1] == tok.eos_token_id and logprobs == []


def test_load_weights_reaches_engine_and_clears_prefix_cache(model_tok):
    """After new weights, samples for the same prompts (whose prefix blocks are cached) carry the
    new model's log-probs, not the old one's."""
    model, tok = model_tok
    other = build_tiny_model(ModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128,
                                         max_length=256), tok, seed=7).eval()
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=3)

    def gap(comps, m) -> float:
        return max(abs(a - b) for p, cs in zip(PROMPTS, comps, strict=True) for c in cs
                   for a, b in zip(c.logprobs, fresh_logprobs(m, tok, p, c.token_ids, 1.0), strict=True))

    e = make_engine("vllm", model, tok, batch_size=64, vllm_memory=0.45)
    assert e.llm.llm_engine.vllm_config.cache_config.gpu_memory_utilization == 0.45  # the vllm_memory key
    before = e.generate(PROMPTS, params)
    assert gap(before, model) < 1e-4 and gap(before, other) > 0.1
    e.load_weights(other)
    after = e.generate(PROMPTS, params)
    assert gap(after, other) < 1e-4 and gap(after, model) > 0.1


def test_unsupported_head_size_is_a_clear_error(tiny_model_and_tokenizer):
    """vLLM's CPU attention has no kernel for head size 16: a ConfigError naming the setting, not a
    crash deep inside vLLM."""
    from vineppo.config import ConfigError

    model, tok = tiny_model_and_tokenizer  # hidden 32 / 2 heads = head size 16
    with pytest.raises(ConfigError, match="head_dim=16.*model.hidden_size / model.num_heads"):
        VLLMEngine.from_model(model, tok)


@pytest.mark.slow
def test_rl_with_vllm_engine_syncs_policy(tmp_path, easy_sft_checkpoint):
    """VinePPO for 2 iterations through engine=vllm. The final greedy accuracy the run logs (measured
    by the vllm engine) equals the hf engine's on the saved final policy: the engine sampled from the
    trained weights, not the initial ones, whose accuracy differs."""
    from tests.conftest import EASY
    from vineppo.checkpoint import latest_checkpoint
    from vineppo.config import TaskConfig, make_config
    from vineppo.evaluate import evaluate
    from vineppo.loop import train_rl
    from vineppo.models import load_model, load_tokenizer
    from vineppo.tasks import load_task

    cfg = make_config(EASY + [f"output_dir={tmp_path}", "engine=vllm", "rl.algo=vineppo", f"rl.init={easy_sft_checkpoint}",
                              "rl.iterations=2", "rl.prompts_per_iter=8", "rl.samples_per_prompt=2",
                              "rl.vine_k=2", "rl.eval_every=2", "rl.learning_rate=3e-3", "rl.max_new_tokens=60"])
    summary = train_rl(cfg)
    last = latest_checkpoint(tmp_path / "vineppo-arith-s0" / "checkpoints")
    task = load_task(TaskConfig(**{**cfg.task.__dict__}))
    tok = load_tokenizer(last)

    def acc(path) -> float:
        return evaluate(HFEngine(load_model(path), tok), task.test, "arith", max_new_tokens=60)["greedy_accuracy"]

    assert summary["test_greedy_accuracy"] == pytest.approx(acc(last), abs=1e-9)
    assert acc(easy_sft_checkpoint) != pytest.approx(acc(last), abs=1e-9)


@pytest.fixture(scope="module")
def one_process_vllm_run(tmp_path_factory, easy_sft_checkpoint):
    """VinePPO through engine=vllm in one process, rollouts cut in 2 shards: the reference below."""
    from tests.conftest import EASY
    from tests.test_loop import RL
    from vineppo.config import make_config
    from vineppo.loop import train_rl

    args = EASY + RL + [f"rl.init={easy_sft_checkpoint}", "rl.algo=vineppo", "rl.rollout_shards=2", "num_threads=1",
                        "device=cpu", "rl.autocast=null", "engine=vllm"]
    out = tmp_path_factory.mktemp("vllm-one")
    summary = train_rl(make_config(args + [f"output_dir={out}"]))
    return args, out / "vineppo-arith-s0" / "metrics.jsonl", summary


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_two_processes_sample_with_an_engine_each(tmp_path, one_process_vllm_run, stage):
    """engine=vllm in 2 processes under DeepSpeed ZeRO-2 and ZeRO-3: each process starts its own
    engine in the launcher's process group (vLLM's external_launcher) and samples its own rollout
    shard. Against one process on the same 2 shards: the same rewards, token counts, MC states and
    test accuracy, losses within 1e-4. Under ZeRO-3 the engine gets the gathered weights (given the
    process's shards, vLLM's weight loader stopped at start)."""
    import json

    from tests.test_distributed import LOSS_TOLERANCE, torchrun
    from vineppo.runio import read_jsonl

    args, reference, summary = one_process_vllm_run
    out = torchrun(args + [f"output_dir={tmp_path}", "deepspeed.enabled=true", f"deepspeed.zero_stage={stage}"],
                   2, tmp_path)
    assert (out.stdout + out.stderr).count("Using external launcher for distributed inference") == 2
    one, two = read_jsonl(reference), read_jsonl(tmp_path / "vineppo-arith-s0" / "metrics.jsonl")
    assert [r["iteration"] for r in two] == [1, 2]
    for a, b in zip(one, two, strict=True):
        for k in ["train/reward", "train/tokens_generated", "train/grad_steps", "vine/num_states",
                  "vine/num_unique_states"]:
            assert a[k] == b[k], (a["iteration"], k)
        for k in ["loss/policy", "loss/kl", "loss/clip_fraction"]:
            assert abs(a[k] - b[k]) <= LOSS_TOLERANCE, (a["iteration"], k, a[k], b[k])
        assert b["train/grad_norm"] == pytest.approx(a["train/grad_norm"], rel=1e-3)
    two_summary = json.loads((tmp_path / "vineppo-arith-s0" / "summary.json").read_text())
    assert two_summary["test_greedy_accuracy"] == summary["test_greedy_accuracy"]
