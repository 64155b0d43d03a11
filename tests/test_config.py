"""Config: presets, key=value overrides, and errors that name the closest valid key."""

import pytest

from vineppo.config import ConfigError, make_config, parse_overrides, valid_keys


def test_defaults_and_overrides():
    cfg = make_config(["sft.learning_rate=3e-4", "task.name=arith_hard", "task.ops=[add,sub]", "seed=5"])
    assert cfg.sft.learning_rate == 3e-4
    assert cfg.task.name == "arith_hard"
    assert cfg.task.ops == ["add", "sub"]
    assert cfg.seed == 5
    assert cfg.preset == "tiny" and cfg.model.name_or_path is None


def test_paper_preset_then_override():
    cfg = make_config(["preset=paper"])
    assert cfg.model.name_or_path == "realtreetune/rho-1b-sft-GSM8K"
    assert cfg.eval.temperature == 0.35 and cfg.eval.max_new_tokens == 1024
    cfg = make_config(["preset=paper", "model.name_or_path=/models/rho"])
    assert cfg.model.name_or_path == "/models/rho"
    # The authors' SFT format (McGill-NLP/VinePPO configs/sft_rho1b_for_gsm8k.jsonnet and _MATH:
    # query_template, response_template, append_bos_to_query), which their checkpoints expect.
    assert (cfg.task.prompt_template, cfg.task.response_template, cfg.task.prompt_bos) == (
        "[MATH_TASK] Problem:\n{question}\n\nSolution:", "\n{solution}\n", True)
    # ... and their sampling's stop string (program_kwargs.stop in every episode generator and eval).
    assert cfg.task.stop == ["\n\n\nProblem:"] and make_config([]).task.stop == []
    assert make_config(['task.stop=["\\n\\n\\nProblem:"]']).task.stop == ["\n\n\nProblem:"]
    assert make_config(["task.stop=['\\nQ:', END]"]).task.stop == ["\nQ:", "END"]
    with pytest.raises(ConfigError, match="task.stop must be a list of non-empty strings"):
        make_config(['task.stop=[""]'])
    # Their test evaluation (configs/sft_rho1b_for_gsm8k_eval.jsonnet, imported by every RL config):
    # 16 samples at temperature 0.35, top-p 0.9, up to 1024 tokens; for the SFT row and RL alike.
    assert (cfg.eval.num_samples, cfg.rl.eval_samples, cfg.eval.temperature, cfg.eval.top_p,
            cfg.eval.max_new_tokens) == (16, 16, 0.35, 0.9, 1024)
    # Their RestEM picks its checkpoints on a validation split (restem_trainer, SPEC.md), of 373
    # GSM8K problems (their GSM8K eval config: "about 373" train problems are 0.05253521 of 7,100).
    assert (cfg.rl.restem_select, cfg.task.num_validation) == ("validation", 373)
    assert (cfg.rl.iterations, cfg.rl.vine_max_steps, cfg.rl.init) == (650, 25, "realtreetune/rho-1b-sft-GSM8K")
    # Their learning rate (configs/deepspeed/lr_scheduler.jsonnet, trainers/ppo_MATH.jsonnet):
    # DeepSpeed's WarmupDecayLR, warm-up ratio 0.03; the tiny preset's runs kept one rate.
    assert (cfg.rl.learning_rate, cfg.rl.lr_schedule, cfg.rl.warmup_ratio) == (1e-6, "warmup_decay", 0.03)
    assert make_config([]).rl.lr_schedule == "constant"
    # Their value head (treetune's pretrained_with_value_head: normal_(std=1/sqrt(hidden + 1)), bias 0).
    assert cfg.rl.value_head_init == "normal" and make_config([]).rl.value_head_init == "zero"
    # Their episodes (math_episode_generator): the response text re-tokenized, EOS appended when it
    # stopped; their GSM8K steps (tasks/gsm8k.py): lines, the "#### n" line joined to the last one.
    assert (cfg.rl.response_tokens, cfg.rl.vine_steps) == ("text", "lines_answer")
    # Their trainers checkpoint gradients (trainers/ppo_MATH.jsonnet: gradient_checkpointing: true).
    assert cfg.model.gradient_checkpointing and not make_config([]).model.gradient_checkpointing
    assert (make_config([]).rl.response_tokens, make_config([]).rl.vine_steps) == ("sampled", "auto")
    # MATH (polIter_rho1bSft2_*_MATH): its own SFT checkpoint, 1,000 iterations, no cap on the
    # MC states; a validation split of 500 (0.04347826 of 11,500), the PRM800K split's test set.
    math = make_config(["preset=paper", "task.name=math"])
    assert (math.model.name_or_path, math.rl.init) == ("realtreetune/rho-1b-sft-MATH",) * 2
    assert (math.rl.iterations, math.rl.vine_max_steps, math.task.num_validation, math.task.math_split) == \
        (1000, None, 500, "prm800k")
    assert (math.rl.vine_steps, math.rl.response_tokens) == ("auto", "text")  # their MATH splitter is ours
    assert make_config(["preset=paper", "task.name=math", "rl.iterations=5"]).rl.iterations == 5  # overrides win
    # Their RL-free baselines' protocols (polIter_*_restem_*, _dpo_positive_*): every train problem
    # each iteration; RestEM 10 iterations of 8 samples and up to 8 epochs, each fine-tuning the SFT
    # model afresh (restem_trainer._init_actor_model); DPO+ one iteration of 64
    # samples, up to 64 pairs per problem, 3 epochs, DPO-Positive (lambda 50), beta 0.3 / 0.1.
    for task in ("gsm8k", "math"):
        r = make_config(["preset=paper", f"task.name={task}", "rl.algo=restem"]).rl
        assert (r.iterations, r.prompts_per_iter, r.samples_per_prompt, r.epochs, r.restem_select, r.restem_from) == \
            (10, 0, 8, 8, "validation", "init")
        d = make_config(["preset=paper", f"task.name={task}", "rl.algo=dpo_plus"]).rl
        assert (d.iterations, d.prompts_per_iter, d.samples_per_prompt, d.epochs, d.dpo_max_pairs,
                d.dpo_positive_lambda, d.dpo_nll_coef, d.dpo_beta) == \
            (1, 0, 64, 3, 64, 50.0, 0.0, 0.3 if task == "gsm8k" else 0.1)
        p = make_config(["preset=paper", f"task.name={task}", "rl.algo=ppo"]).rl
        assert (p.prompts_per_iter, p.samples_per_prompt, p.epochs) == (64, 8, 2)
    assert make_config(["preset=paper", "rl.algo=restem", "rl.epochs=2"]).rl.epochs == 2  # overrides win
    assert make_config(["rl.algo=restem"]).rl.prompts_per_iter == 32  # the tiny preset: no per_algo
    with pytest.raises(ConfigError, match="rl.restem_select=validation needs a validation split"):
        make_config(["rl.algo=restem", "rl.restem_select=validation"])


def test_templates_are_text_and_need_their_field():
    """A template on the command line is its text with \\n and \\t as newline and tab (not the YAML
    mapping `Q: {question}` parses to), or a quoted YAML string read as YAML reads it (single
    quotes keep the backslash); it must hold its field exactly once."""
    assert make_config(["task.prompt_template=Q: {question} A:"]).task.prompt_template == "Q: {question} A:"
    assert make_config([r"task.prompt_template=Q:\n{question}\tA:"]).task.prompt_template == "Q:\n{question}\tA:"
    assert make_config([r'task.prompt_template="Q:\n{question}\nA:"']).task.prompt_template == "Q:\n{question}\nA:"
    assert make_config([r"task.prompt_template='Q:\n{question}'"]).task.prompt_template == r"Q:\n{question}"
    assert make_config(["task.response_template= {solution}"]).task.response_template == " {solution}"
    # As typed, the paper preset's own values.
    typed = make_config(["preset=paper", r"task.prompt_template=[MATH_TASK] Problem:\n{question}\n\nSolution:",
                         r"task.response_template=\n{solution}\n"])
    assert typed == make_config(["preset=paper"])
    for bad, message in [("task.prompt_template=Q: {q}", r"task.prompt_template must hold \{question\} exactly once"),
                         ("task.prompt_template={question} {question}", "exactly once"),
                         ("task.response_template=x", r"task.response_template must hold \{solution\}")]:
        with pytest.raises(ConfigError, match=message):
            make_config([bad])


def test_unknown_key_names_the_closest():
    with pytest.raises(ConfigError, match="unknown config key 'sft.lerning_rate'.*'sft.learning_rate'"):
        make_config(["sft.lerning_rate=1"])
    with pytest.raises(ConfigError, match="'task.num_train'"):
        make_config({"task.num_trian": 3})


def test_bad_value_type_is_a_config_error():
    with pytest.raises(ConfigError, match="sft.max_steps"):
        make_config(["sft.max_steps=lots"])


@pytest.mark.parametrize(("override", "message"), [
    ("rl.minibatch_size=0", "rl.minibatch_size must be >= 1, got 0"),
    ("rl.vine_k=0", "rl.vine_k must be >= 1, got 0"),
    ("rl.iterations=-1", "rl.iterations must be >= 0, got -1"),
    ("rl.learning_rate=-1e-4", "rl.learning_rate must be > 0, got -0.0001"),
    ("rl.temperature=0", "rl.temperature must be > 0, got 0.0"),
    ("rl.gamma=1.5", r"rl.gamma must be in \[0, 1\], got 1.5"),
    ("task.limit_test=0", "task.limit_test must be >= 1, got 0"),
    ("rl.top_p=0", "rl.top_p and eval.top_p must be > 0"),
    ("rl.vine_steps=sentences", "rl.vine_steps: unknown step rule 'sentences'"),
    ("rl.vine_steps=regex:[0-9", "rl.vine_steps: step rule 'regex:\\[0-9': bad regular expression"),
])
def test_out_of_range_values_are_named(override, message):
    """A value no run can use fails when the config is made, by name (not later, deep in training)."""
    with pytest.raises(ConfigError, match=message):
        make_config([override])


def test_range_edges_and_cross_field_rules():
    # The edges themselves are valid: no training iterations (evaluate only), K = 1, greedy-free eval.
    cfg = make_config(["rl.iterations=0", "rl.vine_k=1", "eval.num_samples=0", "rl.gamma=0", "rl.top_p=1",
                       "task.limit_test=null"])
    assert cfg.rl.iterations == 0 and cfg.task.limit_test is None
    with pytest.raises(ConfigError, match=r"model.hidden_size \(100\) must be a multiple of model.num_heads \(3\)"):
        make_config(["model.hidden_size=100", "model.num_heads=3"])
    make_config(["model.hidden_size=100", "model.num_heads=3", "model.name_or_path=/some/model"])  # not built here
    for algo in ("grpo", "rloo", "dpo_plus"):
        with pytest.raises(ConfigError, match=f"rl.algo={algo} .* rl.samples_per_prompt must be >= 2, got 1"):
            make_config([f"rl.algo={algo}", "rl.samples_per_prompt=1"])
    for algo in ("ppo", "vineppo", "restem"):  # one response per prompt is enough for these
        assert make_config([f"rl.algo={algo}", "rl.samples_per_prompt=1"]).rl.samples_per_prompt == 1


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'tinyy'"):
        make_config(["preset=tinyy"])


def test_malformed_argument():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["learning_rate"])


def test_parse_overrides_types():
    assert parse_overrides(["a=1", "b=0.5", "c=x", "d=null", "e=true"]) == {
        "a": 1, "b": 0.5, "c": "x", "d": None, "e": True}


def test_yaml_round_trip():
    import yaml

    from vineppo.config import to_yaml

    cfg = make_config(["task.name=arith_hard", "sft.max_steps=7"])
    flat = {}

    def walk(d, prefix=""):
        for k, v in d.items():
            walk(v, f"{prefix}{k}.") if isinstance(v, dict) else flat.__setitem__(f"{prefix}{k}", v)

    walk(yaml.safe_load(to_yaml(cfg)))
    assert set(flat) == set(valid_keys())
    assert make_config(flat) == cfg


def test_per_task_preset_keys_apply_to_their_task_only():
    from vineppo.config import make_config

    hard, easy = make_config(["task.name=arith_hard"]), make_config(["task.name=arith"])
    assert (hard.sft.max_steps, hard.task.num_sft) == (3000, 96000)
    assert (easy.sft.max_steps, easy.task.num_sft) == (1500, 48000)
    assert make_config(["task.name=arith_hard", "sft.max_steps=7"]).sft.max_steps == 7  # the user wins


def test_per_task_bad_key_is_named(monkeypatch):
    import pytest

    from vineppo import config

    real = config.load_preset
    monkeypatch.setattr(config, "load_preset",
                        lambda name: {**real(name), "per_task": {"arith": {"sft": {"max_stepz": 3}}}})
    with pytest.raises(config.ConfigError, match="per_task.arith.*max_stepz|max_stepz.*per_task.arith"):
        config.make_config(["task.name=arith"])


def test_check_unchanged_names_each_changed_key_and_allows_free_ones(tmp_path):
    from vineppo.config import check_unchanged, to_yaml

    path = tmp_path / "run" / "config.yaml"
    check_unchanged(path, make_config([]), ())  # no recorded config: nothing to compare
    path.parent.mkdir()
    path.write_text(to_yaml(make_config(["rl.learning_rate=1e-4", "sft.max_steps=10"])))
    check_unchanged(path, make_config(["rl.learning_rate=1e-4", "sft.max_steps=99", "num_threads=3"]),
                    ("sft.", "num_threads"))
    with pytest.raises(ConfigError, match=r"rl.clip: 0.2 there, 0.3 now; rl.learning_rate: 0.0001 there, 0.0002 now"):
        check_unchanged(path, make_config(["rl.learning_rate=2e-4", "rl.clip=0.3", "sft.max_steps=10"]), ())
    with pytest.raises(ConfigError, match=r"sft.max_steps: 10 there, 99 now"):  # 'sft.' frees sft.*, not 'sft'
        check_unchanged(path, make_config(["rl.learning_rate=1e-4", "sft.max_steps=99"]), ("sft",))


@pytest.mark.parametrize(("override", "message"), [
    ("task.name=gsm9k", "task.name: 'gsm9k' is not one of arith, arith_hard, gsm8k, math; did you mean 'gsm8k'"),
    ("model.dtype=float17", "model.dtype: 'float17' is not one of float32, bfloat16, float16; did you mean 'float16'"),
    ("engine=vlm", "engine: 'vlm' is not one of hf, vllm; did you mean 'vllm'"),
    ("eval.split=tset", "eval.split: 'tset' is not one of test, train, sft; did you mean 'test'"),
    ("rl.algo=grp", "rl.algo: 'grp' is not one of ppo, vineppo, grpo, rloo, restem, dpo_plus; did you mean"),
    ("rl.old_logprobs=x", "rl.old_logprobs: 'x' is not one of sampler, recompute$"),
    ("rl.response_tokens=txt", "rl.response_tokens: 'txt' is not one of sampled, text; did you mean 'text'"),
    ("rl.vine_steps=lines-answer", "rl.vine_steps: unknown step rule 'lines-answer'"),
    ("rl.grad_clip_scope=both", "rl.grad_clip_scope: 'both' is not one of per_model, joint$"),
    ("rl.autocast=fp8", "rl.autocast: 'fp8' is not one of auto, bfloat16"),
    ("deepspeed.bf16=maybe", "deepspeed.bf16: 'maybe' is not one of auto, true, false"),
    ("deepspeed.zero_stage=4", "deepspeed.zero_stage: '4' is not one of 0, 1, 2, 3"),
    ("device=gpu", "device: 'gpu' is not one of auto, cpu, cuda, cuda:N"),
    ("task.flaw_ops=[add,pow]", r"task.flaw_ops must be a non-empty list of add, sub, mul, div, got \['add', 'pow'\]"),
    ("task.flaw_ops=[]", "task.flaw_ops must be a non-empty list"),
])
def test_a_setting_outside_its_choices_is_named_with_them(override, message):
    with pytest.raises(ConfigError, match=message):
        make_config([override])


def test_every_choice_is_accepted_and_the_lists_agree_with_the_code():
    from vineppo.config import CHOICES, FLAW_OPS
    from vineppo.inference import ENGINES
    from vineppo.learner import AUTOCAST_CHOICES, CLIP_SCOPES, LR_SCHEDULES
    from vineppo.loop import ALGOS
    from vineppo.tasks import TASKS
    from vineppo.tasks.arith import FLAW_OF
    from vineppo.tasks.hub import MATH_SPLITS

    assert CHOICES["task.math_split"] == MATH_SPLITS and CHOICES["rl.lr_schedule"] == LR_SCHEDULES
    assert CHOICES["rl.algo"] == ALGOS and CHOICES["engine"] == ENGINES and set(CHOICES["task.name"]) == set(TASKS)
    assert CHOICES["rl.autocast"] == AUTOCAST_CHOICES and CHOICES["rl.grad_clip_scope"] == CLIP_SCOPES
    assert set(FLAW_OPS) == set(FLAW_OF)
    for key, choices in CHOICES.items():
        for choice in choices:
            extra = ["rl.samples_per_prompt=2"] if key == "rl.algo" else []
            make_config([f"{key}={choice}", *extra])
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert make_config([f"device={device}"]).device == device
    assert make_config(["deepspeed.bf16=true", "rl.autocast=null"]).rl.autocast is None
