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


def test_missing_local_model_is_named(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="no model at"):
        load_model(tmp_path / "absent")
