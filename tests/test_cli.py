"""The command line: eval writes its JSON; bad keys exit 2 with the closest key named."""

import json

from vineppo.cli import main


def test_eval_command_writes_results(tmp_path, tiny_model_and_tokenizer, capsys):
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    rc = main(["eval", f"model.name_or_path={tmp_path / 'm'}", f"output_dir={tmp_path}", "task.num_train=50",
               "task.num_test=6", "eval.max_new_tokens=8", "eval.num_samples=2", "eval.batch_size=4"])
    assert rc == 0
    result = json.loads((tmp_path / "eval-arith-test.json").read_text())
    assert result["num_problems"] == 6 and len(result["problems"]) == 6
    # An untrained model cut off at 8 tokens never finishes: every answer scores 0.
    assert result["greedy_accuracy"] == 0.0 and result["sampled_accuracy"] == 0.0
    assert all(len(p["sampled_correct"]) == 2 for p in result["problems"])


def test_eval_of_a_hub_task_reads_only_its_test_file(tmp_path, tiny_model_and_tokenizer, monkeypatch, capsys):
    """`vineppo eval` on GSM8K with only task.test_path: the train split is never loaded, so no
    hub is asked; eval.split=sft on a task without an SFT pool is named."""
    import datasets

    def offline(*a, **kw):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}] * 3
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = [f"model.name_or_path={tmp_path / 'm'}", f"output_dir={tmp_path}", "task.name=gsm8k",
              f"task.test_path={tmp_path / 'test.jsonl'}", "eval.max_new_tokens=4", "eval.num_samples=0"]
    assert main(["eval", *common]) == 0
    assert json.loads((tmp_path / "eval-gsm8k-test.json").read_text())["num_problems"] == 3
    assert main(["eval", *common, "eval.split=sft"]) == 2
    assert "eval.split=sft: task gsm8k has no SFT pool here" in capsys.readouterr().err


def test_bad_key_exits_2_naming_closest(capsys):
    assert main(["sft", "sft.max_stepz=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'sft.max_stepz'" in err and "'sft.max_steps'" in err


def test_bad_value_and_bad_data_exit_2_with_one_line(tmp_path, tiny_model_and_tokenizer, capsys):
    """Out-of-range values and malformed data files end the command with their message, not a
    traceback."""
    assert main(["rl", "rl.vine_k=0"]) == 2
    assert capsys.readouterr().err.strip() == "config error: rl.vine_k must be >= 1, got 0"
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    rows = tmp_path / "test.jsonl"
    rows.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"}\n')
    assert main(["eval", "task.name=gsm8k", f"task.test_path={rows}", f"task.train_path={rows}",
                 f"model.name_or_path={tmp_path / 'm'}", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err  # after the progress bars of saving and loading the model
    assert err.strip().splitlines()[-1] == f"data error: {rows}, row 2: missing field 'answer'"
    assert "Traceback" not in err


def test_unknown_command(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_usage_names_every_rl_algorithm():
    from vineppo.cli import USAGE
    from vineppo.loop import ALGOS

    line = next(x for x in USAGE.splitlines() if x.strip().startswith("rl "))
    assert set(line.split("rl.algo=")[1].split()[0].split("|")) == set(ALGOS)


def test_keys_shows_values_under_the_settings_given_and_each_key_described(capsys):
    from vineppo.config import valid_keys

    assert main(["keys"]) == 0
    out = capsys.readouterr().out
    listed = [line.split(" = ")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert listed == valid_keys()  # every key, once, in order, each followed by its description
    lines = out.splitlines()
    assert all(lines[i + 1].startswith("    ") for i, line in enumerate(lines) if not line.startswith(" "))
    # A section and a key, under the paper preset (presets/paper.yaml: learning_rate 1.0e-6,
    # model realtreetune/rho-1b-sft-GSM8K); the dataclass default of rl.learning_rate differs.
    assert main(["keys", "rl.learning_rate", "model", "preset=paper"]) == 0
    out = capsys.readouterr().out
    assert "rl.learning_rate = 1e-06\n" in out and "model.name_or_path = realtreetune/rho-1b-sft-GSM8K\n" in out
    assert {line.split(" = ")[0] for line in out.splitlines() if not line.startswith(" ")} == \
        {"rl.learning_rate"} | {k for k in valid_keys() if k.startswith("model.")}
    assert main(["keys", "rl.clip"]) == 0
    assert capsys.readouterr().out == "rl.clip = 0.2\n    PPO ratio clip.\n"
    assert main(["keys", "", "rl.init"]) == 0  # "": the top-level keys
    out = capsys.readouterr().out
    assert "seed = 0\n" in out and "rl.init = null\n" in out and "rl.clip" not in out
    assert main(["keys", "rll"]) == 2
    assert "no config key or section 'rll'; sections: deepspeed, eval, model, rl, sft, task" in capsys.readouterr().err


def test_command_help_lists_the_keys_it_reads(capsys):
    assert main(["rl", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vineppo rl [key=value ...]\n") and "\nrl.algo = vineppo\n" in out
    assert "\ndeepspeed.zero_stage = 2\n" in out and "sft.learning_rate" not in out
    assert main(["eval", "-h"]) == 0
    out = capsys.readouterr().out
    assert "\neval.split = test\n" in out and "rl.algo" not in out and "sft.max_steps" not in out


def test_memory_plans_a_7b_ppo_run_without_loading_it(tmp_path, tiny_model_and_tokenizer, capsys):
    """`vineppo memory` on DeepSeekMath-7B's shape (a config.json with its dimensions and a tokenizer:
    no weights exist, none are needed), PPO on 8 x 80 GB: 85 GiB per GPU with Adam on the GPUs
    (the hand-worked figure of tests/test_memory.py), which does not fit, named with the settings
    to change; 66 with Adam on the CPU, as the paper table runs it."""
    from transformers import LlamaConfig

    from vineppo.config import make_config
    from vineppo.loop import longest_prompt, memory_parts
    from vineppo.memory import estimate
    from vineppo.models import load_tokenizer
    from vineppo.tasks import load_task

    _, tok = tiny_model_and_tokenizer
    LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=30, num_attention_heads=32,
                num_key_value_heads=32, vocab_size=102_400).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    run = [f"rl.init={tmp_path}", "rl.algo=ppo", "model.dtype=bfloat16", "model.gradient_checkpointing=true",
           "model.max_length=2048", "rl.max_new_tokens=1024", "rl.minibatch_size=64", "deepspeed.zero_stage=2"]
    assert main(["memory", *run, "--processes", "8", "--gpu-gib=80"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out.strip().splitlines()[-1])
    n = 30 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 102_400 * 4096 + 4096  # Llama's parameters
    by_hand = estimate(n, 4096, 30, dtype="bfloat16", algo="ppo", engine="hf", minibatch_size=64, max_length=2048,
                       zero_stage=2, num_processes=8, gradient_checkpointing=True, vocab_size=102_400,
                       response_tokens=1025)
    assert plan["per_gpu_gib"] == round(sum(by_hand.values()) / 2**30, 2) and round(plan["per_gpu_gib"]) == 85
    assert not plan["fits"] and plan["processes"] == plan["node_processes"] == 8
    assert "logits (one mini-batch): 12.5 GiB" in out and "\nfits\n" not in out
    assert "does not fit: about 85.2 GiB on cuda:0, which has 80.0 GiB free\n" in out and "offload_optimizer" in out
    cfg = make_config(run + ["deepspeed.enabled=true"])  # the loop's own check sees the same parts
    task = load_task(cfg.task)
    parts, _ = memory_parts(cfg, longest_prompt(task, load_tokenizer(str(tmp_path))), len(task.train), torch_cuda(), 8)
    assert parts == by_hand
    assert main(["memory", *run, "deepspeed.offload_optimizer=true", "--processes", "8"]) == 0
    out = capsys.readouterr().out
    assert round(json.loads(out.strip().splitlines()[-1])["per_gpu_gib"]) == 66 and out.count("\nfits\n") == 1
    assert main(["memory", *run, "--gpu-gib", "forty"]) == 2
    assert "--gpu-gib takes a number, got 'forty'" in capsys.readouterr().err
    assert main(["memory", "--help"]) == 0 and "--node-processes M: of them per node" in capsys.readouterr().out
    # Planning without the data: GSM8K is a hub dataset (not reachable here); given the longest
    # prompt and the problem count, nothing of it is read. DPO+'s 7,100 x 64 episodes of up to
    # 200 + 1 + 1,024 tokens x 32 B, on each of 8 processes.
    assert main(["memory", *run, "task.name=gsm8k", "rl.algo=dpo_plus", "rl.prompts_per_iter=0",
                 "rl.samples_per_prompt=64", "--processes", "8", "--prompt-tokens", "200",
                 "--train-problems", "7100"]) == 0
    plan = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert plan["host_gib"] == round(8 * 7100 * 64 * 1225 * 32 / 2**30, 2)
    assert main(["memory", "--gpus", "8"]) == 2 and "unknown option --gpus" in capsys.readouterr().err


def torch_cuda():
    import torch

    return torch.device("cuda", 0)


def test_out_of_memory_is_a_short_message_with_the_settings(monkeypatch, capsys):
    """A GPU running out of memory mid-run (torch.OutOfMemoryError) ends the command with exit 3,
    torch's first line and what to change, not a traceback; other runtime errors still raise."""
    import pytest
    import torch

    from vineppo import loop

    def oom(cfg, progress=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)\nsecond line")

    monkeypatch.setattr(loop, "train_rl", oom)
    assert main(["rl", "rl.algo=ppo"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("out of memory: CUDA out of memory. Tried to allocate 2.00 GiB") and "second line" not in err
    assert "resumes the run from its last checkpoint" in err and "vineppo memory" in err
    monkeypatch.setattr(loop, "train_rl", lambda cfg, progress=False: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):
        main(["rl", "rl.algo=ppo"])
