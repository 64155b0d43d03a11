"""Tokenizer and tiny model go through AutoTokenizer / AutoModelForCausalLM like any hub model."""

import torch

from vineppo.models import load_model, load_tokenizer, num_parameters


def test_tokenizer_roundtrip_and_digits(tmp_path, tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    tok.save_pretrained(tmp_path)
    loaded = load_tokenizer(tmp_path)
    text = "Ava has 1234 apples.\n$\\frac{7}{2}$ ü 漢字\n#### 17"
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert loaded.decode(ids) == text  # byte-level: any text round-trips
    pieces = loaded.convert_ids_to_tokens(loaded("1234", add_special_tokens=False)["input_ids"])
    assert pieces == ["1", "2", "3", "4"]  # one digit per token
    assert loaded.padding_side == "left" and loaded.eos_token == "</s>"


def test_model_save_load_same_logits(tmp_path, tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    x = torch.tensor([tok("Question: 1 + 2", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert num_parameters(loaded) == num_parameters(model)


def test_bad_model_sources_are_named_by_their_key(tmp_path, tiny_model_and_tokenizer):
    """A path that is not there, a file, a folder without a saved model, and a source transformers
    cannot read each end in one ConfigError naming the key, before anything is loaded."""
    import pytest

    from vineppo.config import ConfigError
    from vineppo.models import check_source, loading

    with pytest.raises(ConfigError, match=f"rl.init={tmp_path / 'absent'}: no such folder"):
        load_model(tmp_path / "absent", key="rl.init")
    with pytest.raises(ConfigError, match="model.name_or_path=runs/sft/final: no such folder"):
        load_tokenizer("runs/sft/final")  # relative, two slashes: a path, not a hub name
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no config.json in this folder"):
        load_model(tmp_path / "empty")
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ConfigError, match="weights.bin: a file, not a model folder"):
        load_tokenizer(tmp_path / "weights.bin")
    check_source("realtreetune/rho-1b-sft-GSM8K")  # a hub name passes; it is tried when loaded
    with pytest.raises(ConfigError, match=r"rl.init=org/name: could not load it \(not on the hub\)"):
        with loading("org/name", "rl.init"):
            raise OSError("not on the hub\nmore detail")
    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    assert num_parameters(load_model(tmp_path / "m")) == num_parameters(model)  # a good folder loads


def test_cuda_without_a_gpu_is_named(monkeypatch):
    import pytest

    from vineppo.config import ConfigError
    from vineppo.distributed import World
    from vineppo.models import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ConfigError, match=f"device={device}: torch .* sees no CUDA GPU here"):
            resolve_device(device)
    with pytest.raises(ConfigError, match="device=cuda: torch"):
        World().device("cuda")
    assert resolve_device("auto").type == World().device("auto").type == "cpu"
