"""Step splitting: lossless on any string (hypothesis) and hand-worked splits per SPEC.md."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vineppo.steps import check_rule, split_steps, step_boundaries

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
    # Blank lines join the line after them (the last line, at the end): the authors' SFT responses
    # start with "\n", which is no step of its own (their GSM8K step splitter merges it too).
    assert split_steps("a\n\nb\n", "arith") == ["a\n", "\nb\n"]
    assert split_steps("\n3 + 4 = 7\n#### 7\n", "gsm8k") == ["\n3 + 4 = 7\n", "#### 7\n"]
    assert split_steps("a\nb\n\n \n", "gsm8k") == ["a\n", "b\n\n \n"]
    assert split_steps("\n\n", "gsm8k") == ["\n\n"]
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


RULES = st.sampled_from(["auto", "lines", "math", "lines_answer", "response", r"regex:\n\n", r"regex:(?m)\n|^\d+(?= )",
                         r"regex:(?=X)", "regex:a*"])


@settings(max_examples=400, deadline=None)
@given(TEXTS, RULES)
def test_every_rule_is_lossless(text, rule):
    steps = split_steps(text, "arith", rule)
    assert "".join(steps) == text
    assert all(steps), "no empty steps"
    assert step_boundaries(text, "arith", rule) == [sum(map(len, steps[:i])) for i in range(len(steps))]


def test_named_rules_by_hand():
    text = "3 + 4 = 7 apples.\n7 * 2 = 14 apples. So we are done.\n#### 14"
    assert split_steps(text, "arith", "auto") == split_steps(text, "arith", "lines") == [
        "3 + 4 = 7 apples.\n", "7 * 2 = 14 apples. So we are done.\n", "#### 14"]
    # `math` on a GSM8K-format task: also the sentence end, whatever the task says.
    assert split_steps(text, "arith", "math") == [
        "3 + 4 = 7 apples.\n", "7 * 2 = 14 apples. ", "So we are done.\n#### 14"]
    assert split_steps(text, "math", "auto") == split_steps(text, "arith", "math")
    assert split_steps(text, "arith", "response") == [text]
    assert split_steps("", "arith", "response") == []


def test_lines_answer_by_hand():
    text = "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n#### 14"
    assert split_steps(text, "arith", "lines_answer") == ["3 + 4 = 7 apples.\n", "7 * 2 = 14 apples.\n#### 14"]
    assert step_boundaries(text, "arith", "lines_answer") == [0, 18]
    # A blank line before the answer, and text after it, go with it; an answer alone stays alone.
    assert split_steps("a = 1\nb = 2\n\n#### 2\nDone.", "arith", "lines_answer") == [
        "a = 1\n", "b = 2\n\n#### 2\nDone."]
    assert split_steps("#### 5", "arith", "lines_answer") == ["#### 5"]
    assert split_steps("#### 5\nDone.", "arith", "lines_answer") == ["#### 5\nDone."]
    assert split_steps("a = 1\nb = 2", "arith", "lines_answer") == ["a = 1\n", "b = 2"]
    # Only the first `####` line counts: everything from it on is one step.
    assert split_steps("x\n#### 1\ny\n#### 2", "arith", "lines_answer") == ["x\n#### 1\ny\n#### 2"]


def authors_gsm8k_steps(solution: str) -> list[str]:
    """The authors' GSM8K splitter (treetune/tasks/gsm8k.py), rewritten from its description: split
    off the answer at the first "\\n#### ", split the rest on "\\n", merge leading empty steps into
    the first non-empty one and the last non-empty step with everything after it and the answer.
    Their steps leave out the newline between them (ours keep it), so they are compared stripped."""
    body, _, answer = solution.partition("\n#### ")
    has_answer = "\n#### " in solution
    steps = body.split("\n")
    first = next((i for i, s in enumerate(steps) if s.strip()), None)
    if first:
        steps = ["\n".join(steps[:first + 1])] + steps[first + 1:]
    if has_answer:
        last = next((i for i in range(len(steps) - 1, -1, -1) if steps[i].strip()), 0)
        steps = steps[:last] + ["\n".join(steps[last:]) + "\n#### " + answer]
    return steps


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2), st.lists(st.text("ab =+1", min_size=1, max_size=6).filter(str.strip), max_size=5),
       st.booleans(), st.sampled_from(["", "\n", "\nDone."]))
def test_lines_answer_matches_the_authors_splitter(lead, lines, answer, tail):
    """The same steps as the authors' GSM8K splitter on responses without blank lines inside
    (theirs keeps those as empty steps, ours joins a blank line to the line after it)."""
    text = "\n" * lead + "\n".join(lines) + ("\n#### 42" + tail if answer else "")
    if not text.strip():
        return
    ours = [s.strip() for s in split_steps(text, "gsm8k", "lines_answer")]
    assert ours == [s.strip() for s in authors_gsm8k_steps(text)]


def test_regex_rule_by_hand():
    text = "13 + 10 = 23 marbles.\n23 * 2 = 46 marbles.\n#### 46"
    # A step ends after each newline and after the operand each line starts with.
    assert split_steps(text, "arith", r"regex:(?m)\n|^\d+(?= )") == [
        "13", " + 10 = 23 marbles.\n", "23", " * 2 = 46 marbles.\n", "#### 46"]
    assert step_boundaries(text, "arith", r"regex:(?m)\n|^\d+(?= )") == [0, 2, 22, 24, 43]
    # Zero-width matches cut where they stand; a match at either end cuts nothing.
    assert split_steps("ab=cd=", "arith", "regex:(?==)") == ["ab", "=cd", "="]
    assert split_steps("ab=cd=", "arith", "regex:=") == ["ab=", "cd="]
    assert split_steps("Step 1: a\n\nStep 2: b", "math", r"regex:\n\n") == ["Step 1: a\n\n", "Step 2: b"]


@pytest.mark.parametrize(("rule", "message"), [
    ("bogus", "unknown step rule 'bogus'"), ("regex:", "needs a pattern"), ("regex:(", "bad regular expression")])
def test_bad_rules_are_named(rule, message):
    with pytest.raises(ValueError, match=message):
        check_rule(rule)
    with pytest.raises(ValueError, match=message):
        split_steps("a\nb", "arith", rule)
