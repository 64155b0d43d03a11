"""Grading against hand-worked cases: both answer formats, traps, and hostile strings."""

import os
import threading

import pytest

from vineppo.grading import extract_answer, grade, last_boxed

# (completion, reference, expected reward) in GSM8K format.
GSM8K_CASES = [
    ("12 + 5 = 17 apples.\n#### 17", "17", 1.0),
    ("#### 17", "17", 1.0),
    ("####17", "17", 1.0),
    ("#### 17.", "17", 1.0),
    ("#### 17.0", "17", 1.0),
    ("#### 17.00 apples", "17", 1.0),
    ("#### $17", "17", 1.0),
    ("#### 1,234", "1234", 1.0),
    ("#### 1234", "1,234", 1.0),
    ("#### 1,234,567 dollars", "1234567", 1.0),
    ("#### -5", "-5", 1.0),
    ("#### -5", "5", 0.0),  # sign matters
    ("#### 5", "-5", 0.0),
    ("#### 0.5", "1/2", 1.0),
    ("#### 3/4", "0.75", 1.0),
    ("#### 18", "17", 0.0),  # wrong answer
    ("#### 171", "17", 0.0),  # prefix of the right answer is not the right answer
    ("#### 1.7", "17", 0.0),
    ("The answer is 17.", "17", 0.0),  # no #### marker
    ("#### 17\n#### 18", "17", 0.0),  # the LAST marker counts
    ("#### 18\n#### 17", "17", 1.0),
    ("17 = 17\n####", "17", 0.0),  # marker with nothing after it
    ("#### seventeen", "17", 0.0),
    ("", "17", 0.0),
    ("#### 17 " + "x" * 100_000, "17", 1.0),  # huge tail is fine
    ("#### " + "9" * 100_000, "9", 0.0),  # huge number: not an answer, no crash
    ("#### __import__('os').system('echo pwned')", "0", 0.0),
    ("#### 12 + 5", "17", 0.0),  # an expression is not evaluated
]

# (completion, reference, expected reward) in MATH format.
MATH_CASES = [
    ("So the answer is $\\boxed{17}$.", "17", 1.0),
    ("$\\boxed{\\frac{7}{2}}$", "\\frac{7}{2}", 1.0),
    ("$\\boxed{3.5}$", "\\frac{7}{2}", 1.0),  # decimal vs fraction
    ("$\\boxed{\\dfrac{7}{2}}$", "\\frac{7}{2}", 1.0),
    ("$\\boxed{7/2}$", "\\frac{7}{2}", 1.0),
    ("$\\boxed{\\frac{14}{4}}$", "\\frac{7}{2}", 1.0),  # unreduced but equal
    ("$\\boxed{\\frac{7}{3}}$", "\\frac{7}{2}", 0.0),
    ("$\\boxed{-\\frac{7}{2}}$", "\\frac{7}{2}", 0.0),
    ("$\\boxed{-\\frac{7}{2}}$", "-\\frac{7}{2}", 1.0),
    ("$\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{\\sqrt{2}}{2}", 1.0),  # nested braces, via math-verify
    ("$\\boxed{\\sqrt{2}}$", "\\frac{\\sqrt{2}}{2}", 0.0),
    ("$\\boxed{2\\sqrt{3}}$", "\\sqrt{12}", 1.0),
    ("$\\boxed{x^{2}+1}$", "1+x^2", 1.0),
    ("$\\boxed{1,000}$", "1000", 1.0),
    ("$\\boxed{5}$ then $\\boxed{6}$", "6", 1.0),  # last box counts
    ("$\\boxed{5}$ then $\\boxed{6}$", "5", 0.0),
    ("The answer is \\boxed 7.", "7", 1.0),
    ("\\fbox{12}", "12", 1.0),
    ("The answer is 17.", "17", 0.0),  # no box
    ("$\\boxed{}$", "17", 0.0),
    ("$\\boxed{17", "17", 0.0),  # unclosed
    ("", "17", 0.0),
    ("$\\boxed{\\frac{7}{2}" + "}" * 10, "\\frac{7}{2}", 1.0),
    ("$\\boxed{" + "1" * 5000 + "}$", "1", 0.0),  # huge: not an answer
    ("$\\boxed{__import__('os').system('touch /tmp/vineppo_pwned')}$", "0", 0.0),
    ("$\\boxed{\\pi}$", "\\pi", 1.0),
    ("$\\boxed{3.14}$", "\\pi", 0.0),
]


@pytest.mark.parametrize("completion,reference,expected", GSM8K_CASES)
def test_grade_gsm8k(completion, reference, expected):
    assert grade(completion, reference, "gsm8k") == expected
    assert grade(completion, reference, "arith") == expected


@pytest.mark.parametrize("completion,reference,expected", MATH_CASES)
def test_grade_math(completion, reference, expected):
    assert grade(completion, reference, "math") == expected


def test_at_least_forty_cases():
    assert len(GSM8K_CASES) + len(MATH_CASES) >= 40


def test_extract_answer_values():
    assert extract_answer("a\n#### 1,234 apples", "gsm8k") == "1234"
    assert extract_answer("#### -3.50", "gsm8k") == "-7/2"
    assert extract_answer("no answer", "gsm8k") is None
    assert extract_answer("$\\boxed{\\frac{a}{b}}$", "math") == "\\frac{a}{b}"
    assert extract_answer("no box", "math") is None


def test_last_boxed_nested():
    assert last_boxed("\\boxed{\\frac{\\sqrt{2}}{2}} and \\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert last_boxed("\\boxed{a{b{c}}d}") == "a{b{c}}d"


def test_hostile_text_is_never_run(tmp_path):
    marker = "/tmp/vineppo_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    for text in [f"$\\boxed{{__import__('os').system('touch {marker}')}}$",
                 f"#### __import__('os').system('touch {marker}')",
                 f"$\\boxed{{eval(\"open('{marker}','w')\")}}$"]:
        assert grade(text, "0", "math") == 0.0
        assert grade(text, "0", "gsm8k") == 0.0
    assert not os.path.exists(marker)


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown task 'gsm9k'"):
        grade("#### 1", "1", "gsm9k")


def test_math_grading_off_the_main_thread():
    """signal-based time limits need the main thread; off it, grading must still work."""
    results = {}

    def work():
        results["eq"] = grade("$\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{\\sqrt{2}}{2}", "math")
        results["ne"] = grade("$\\boxed{\\sqrt{3}}$", "\\frac{\\sqrt{2}}{2}", "math")

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=60)
    assert results == {"eq": 1.0, "ne": 0.0}


SLOW = ("5", "9^{9^{9^{9}}}")  # sympy works on this for far longer than a second


@pytest.mark.parametrize("cap", [0.3, 1.0])
def test_time_cap_holds_and_is_counted_silently(cap, capsys, caplog):
    import time

    from vineppo import grading

    grading.pop_timeouts()
    grading.set_timeout(cap)
    try:
        t0 = time.perf_counter()
        assert grading.math_equal(*SLOW) is False
        took = time.perf_counter() - t0
        assert grading.math_equal("7/2", "\\frac{7}{2}") is True  # fast cases are untouched
    finally:
        grading.set_timeout(grading.DEFAULT_TIMEOUT_S)
    assert cap * 0.9 <= took <= cap + 0.5, took
    assert grading.pop_timeouts() == 1 and grading.pop_timeouts() == 0
    out = capsys.readouterr()
    assert "Timeout" not in out.out + out.err and "Timeout" not in caplog.text


def test_time_cap_off_the_main_thread_is_counted():
    import time

    from vineppo import grading

    grading.pop_timeouts()
    grading.set_timeout(0.5)
    box = {}

    def work():
        t0 = time.perf_counter()
        box["ok"] = grading.math_equal(*SLOW)
        box["took"] = time.perf_counter() - t0

    try:
        grading.math_equal("1", "x")  # start the worker process before timing
        t = threading.Thread(target=work)
        t.start()
        t.join(timeout=60)
    finally:
        grading.set_timeout(grading.DEFAULT_TIMEOUT_S)
    assert box["ok"] is False and box["took"] < 0.5 + 2.0
    assert grading.pop_timeouts() >= 1


def test_bad_cap_is_a_config_error():
    from vineppo import grading
    from vineppo.config import ConfigError

    with pytest.raises(ConfigError, match="grade_timeout_s"):
        grading.set_timeout(0)
