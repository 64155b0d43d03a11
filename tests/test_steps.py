"""Step splitting: lossless on any string (hypothesis) and hand-worked splits per SPEC.md."""

from hypothesis import given, settings
from hypothesis import strategies as st

from vineppo.steps import split_steps, step_boundaries

ALPHABET = st.sampled_from(list("ab XY.\n$\\()[]{}012,") + ["\\[", "\\]", "\\(", "\\)", "$$", ". T",
                                                          "\\begin{align}", "\\end{align}", "\r\n"])
TEXTS = st.one_of(st.text(), st.lists(ALPHABET, max_size=60).map("".join))


@settings(max_examples=400, deadline=None)
@given(TEXTS, st.sampled_from(["gsm8k", "math", "arith", "arith_hard"]))
def test_lossless(text, task):
    steps = split_steps(text, task)
    assert "".join(steps) == text
    assert all(steps), "no empty steps"


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_boundaries_are_step_starts(text):
    steps = split_steps(text, "math")
    offsets = step_boundaries(text, "math")
    assert len(offsets) == len(steps)
    for off, step in zip(offsets, steps, strict=True):
        assert text[off:off + len(step)] == step


def test_gsm8k_lines():
    text = "12 + 5 = 17 apples.\n17 * 2 = 34 apples.\n#### 34"
    assert split_steps(text, "gsm8k") == ["12 + 5 = 17 apples.\n", "17 * 2 = 34 apples.\n", "#### 34"]
    assert split_steps("a\n\nb\n", "arith") == ["a\n", "\n", "b\n"]
    assert split_steps("", "gsm8k") == []
    # GSM8K steps are lines only: a sentence end inside a line does not split it.
    assert split_steps("First we add. Then we stop.\n#### 1", "gsm8k") == [
        "First we add. Then we stop.\n", "#### 1"]


def test_math_sentences_and_lines():
    text = "We first compute the total cost. Then we divide it by three.\nThe answer is $\\boxed{4}$."
    assert split_steps(text, "math") == [
        "We first compute the total cost. ", "Then we divide it by three.\n", "The answer is $\\boxed{4}$."]


def test_math_never_splits_inside_math():
    text = "Note that $x = 1. Then y = 2$ holds here. Therefore the result follows."
    assert split_steps(text, "math") == ["Note that $x = 1. Then y = 2$ holds here. ",
                                         "Therefore the result follows."]
    display = "We expand the product as follows:\n\\[\na = 1 + 2.\nB = 2 + 4 + 6\n\\]\nSo we are done with it."
    assert split_steps(display, "math") == [
        "We expand the product as follows:\n", "\\[\na = 1 + 2.\nB = 2 + 4 + 6\n\\]\n", "So we are done with it."]
    env = "Consider the system below.\n\\begin{align}\nx &= 1. Y\n\\end{align}\nIt has one solution only."
    assert split_steps(env, "math") == [
        "Consider the system below.\n", "\\begin{align}\nx &= 1. Y\n\\end{align}\n",
        "It has one solution only."]


def test_math_short_pieces_merge_into_next():
    # "So:\n" is under 20 chars and does not end a sentence: merged into the next piece.
    text = "So:\nthe value is $\\boxed{3}$ which we wanted."
    assert split_steps(text, "math") == [text]
    # A short piece that ends a sentence stays on its own.
    assert split_steps("Done. Next we add the two numbers.", "math") == ["Done. ", "Next we add the two numbers."]
    # A short last piece joins the previous one.
    assert split_steps("We add the two numbers up.\nok", "math") == ["We add the two numbers up.\nok"]


def test_arith_hard_solution_lines():
    sol = "$4 + 5 = 9$ kilograms.\n$9 \\div 2 = \\frac{9}{2}$ kilograms.\nThe answer is $\\boxed{\\frac{9}{2}}$."
    assert split_steps(sol, "arith_hard") == [
        "$4 + 5 = 9$ kilograms.\n", "$9 \\div 2 = \\frac{9}{2}$ kilograms.\n",
        "The answer is $\\boxed{\\frac{9}{2}}$."]
