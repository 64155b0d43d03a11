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


# Answers that need math-verify (neither plain numbers nor the same text), with known verdicts.
SYMBOLIC = [("$\\boxed{\\frac{1}{\\sqrt{2}}}$", "\\frac{\\sqrt{2}}{2}", 1.0), ("$\\boxed{\\sqrt{2}}$", "\\frac{\\sqrt{2}}{2}", 0.0),
            ("$\\boxed{2\\sqrt{3}}$", "\\sqrt{12}", 1.0), ("$\\boxed{x^{2}+1}$", "1+x^2", 1.0),
            ("$\\boxed{3.14}$", "\\pi", 0.0), ("$\\boxed{2\\pi}$", "\\pi", 0.0)]


@pytest.fixture
def pool_of_two(monkeypatch):
    from vineppo import grading

    monkeypatch.setattr(grading, "POOL_MIN", 4)
    grading.set_workers(2)
    yield grading
    grading.shutdown_pool()
    grading.set_workers(1)


def test_grade_many_in_a_pool_equals_grade_one_by_one(pool_of_two):
    grading = pool_of_two
    cases = MATH_CASES + SYMBOLIC * 4
    got = grading.grade_many([(c, r) for c, r, _ in cases], "math")
    assert grading._grading_pool is not None  # the symbolic half went to the workers
    assert got == [e for _, _, e in cases]
    assert grading.grade_many([(c, r) for c, r, _ in GSM8K_CASES], "gsm8k") == [e for _, _, e in GSM8K_CASES]


def test_grade_many_counts_the_workers_time_outs(pool_of_two):
    grading = pool_of_two
    grading.pop_timeouts()
    grading.set_timeout(0.5)
    try:
        pairs = [(c, r) for c, r, _ in SYMBOLIC] + [(f"$\\boxed{{{SLOW[1]}}}$", SLOW[0])]
        got = grading.grade_many(pairs, "math")
    finally:
        grading.set_timeout(grading.DEFAULT_TIMEOUT_S)
    assert got == [e for _, _, e in SYMBOLIC] + [0.0]
    assert grading.pop_timeouts() == 1


def test_grade_many_survives_a_dead_pool(pool_of_two, caplog):
    """Workers killed between calls: the verdicts come from this process instead, none lost, and
    the pool is not restarted (a worker that died once may die again), which is said once."""
    grading = pool_of_two
    pairs = [(c, r) for c, r, _ in SYMBOLIC] * 2
    assert grading.grade_many(pairs, "math") == [e for _, _, e in SYMBOLIC] * 2
    for proc in list(grading._grading_pool._processes.values()):
        proc.kill()
        proc.join()
    assert grading.grade_many(pairs, "math") == [e for _, _, e in SYMBOLIC] * 2
    assert grading._workers == 1 and grading._grading_pool is None
    assert caplog.text.count("grading pool stopped") == 1


def test_grade_workers_setting():
    from vineppo import grading
    from vineppo.config import ConfigError

    with pytest.raises(ConfigError, match="grade_workers"):
        grading.set_workers(-2)
    grading.set_workers(-1)
    assert 1 <= grading._workers <= 8
    grading.set_workers(1)


def test_first_grading_in_a_fresh_process_is_not_cut_by_the_imports():
    """math-verify and sympy take seconds to import; the cap must time the comparison, not them."""
    import subprocess
    import sys

    code = ("from vineppo import grading; grading.set_timeout(0.3); "
            "print(grading.math_equal('\\\\frac{\\\\sqrt{2}}{2}', '\\\\frac{1}{\\\\sqrt{2}}'), grading.pop_timeouts())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.split() == ["True", "0"], out.stderr[-2000:]
