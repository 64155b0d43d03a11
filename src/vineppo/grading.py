"""Answer extraction and grading: the reward is 1.0 for a correct final answer, else 0.0.

GSM8K format: the number after the last `####`. MATH format: the content of the last `\\boxed{}`,
compared with math-verify (fractions, decimals, LaTeX forms). Plain numbers are compared exactly as
rationals first, which settles nearly every case without sympy. Model output is never evaluated as
code: LaTeX goes through math-verify's LaTeX parser only (no `sympy.parse_expr`, which uses eval).
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from fractions import Fraction

# Which answer format each task uses (tasks re-export this).
ANSWER_FORMAT = {"arith": "gsm8k", "gsm8k": "gsm8k", "arith_hard": "math", "math": "math"}

MAX_ANSWER_CHARS = 200
"""An extracted answer longer than this is not an answer (and could make sympy slow)."""
MAX_NUMBER_DIGITS = 60
"""A longer digit string is not an answer (and int() refuses over 4300 digits)."""
DEFAULT_TIMEOUT_S = 1.0
"""Wall-clock cap on one grading call's math-verify work (`task.grade_timeout_s`); past it the
answer counts as wrong and the call is counted in `train/grading_timeouts`."""

_timeout_s = DEFAULT_TIMEOUT_S
_timeouts = 0
_count_lock = threading.Lock()

# math-verify logs each of its own time-outs (and that its own timer is off, which it is here: the
# cap below replaces it) as warnings; they are counted instead of printed.
for _name in ("math_verify", "math_verify.grader", "math_verify.parser", "math_verify.metric"):
    logging.getLogger(_name).setLevel(logging.ERROR)


class GradingTimeout(BaseException):
    """Raised by the cap's timer. A BaseException, so that math-verify's `except Exception` around
    each comparison cannot swallow it and go on to the next one."""


def set_timeout(seconds: float) -> None:
    """The per-call cap (seconds > 0) for gradings in this process from now on."""
    global _timeout_s
    if not seconds > 0:
        from vineppo.config import ConfigError

        raise ConfigError(f"task.grade_timeout_s must be > 0, got {seconds}")
    _timeout_s = float(seconds)


def pop_timeouts() -> int:
    """Gradings cut by the cap since the last call (the loop logs it once per iteration)."""
    global _timeouts
    with _count_lock:
        n, _timeouts = _timeouts, 0
    return n


def _count_timeout() -> None:
    global _timeouts
    with _count_lock:
        _timeouts += 1


def answer_format(task: str) -> str:
    """'gsm8k' or 'math' for a task name; the format names themselves are accepted."""
    try:
        return ANSWER_FORMAT[task]
    except KeyError:
        raise ValueError(f"unknown task '{task}'; available: {', '.join(ANSWER_FORMAT)}") from None


# ----------------------------------------------------------------------------- GSM8K format

_NUMBER = re.compile(r"-?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?")


def _to_fraction(text: str) -> Fraction | None:
    """'1,234' -> 1234, '-3.50' -> -7/2, '3/4' -> 3/4; anything else -> None."""
    s = text.replace(",", "").replace(" ", "")
    if not s or len(s.replace("-", "").replace(".", "").replace("/", "")) > MAX_NUMBER_DIGITS:
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def _canonical(x: Fraction) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    return f"{x.numerator}/{x.denominator}"


def extract_gsm8k(completion: str) -> str | None:
    """The first number after the last `####`, commas, `$` and units tolerated."""
    if "####" not in completion:
        return None
    tail = completion.rsplit("####", 1)[1].lstrip()
    tail = tail.split("\n", 1)[0][:MAX_ANSWER_CHARS].lstrip("$ ")
    m = _NUMBER.match(tail)
    if not m:
        return None
    value = _to_fraction(m.group(0))
    return None if value is None else _canonical(value)


# ----------------------------------------------------------------------------- MATH format


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) with nested braces; `\\boxed 5` too."""
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*(\{|\s+)", text)]
    for m in reversed(starts):
        if m.group(1) != "{":  # `\boxed 5`: up to the next whitespace or `$`
            token = re.match(r"[^\s$]+", text[m.end():])
            if token and token.group(0).rstrip(".,"):
                return token.group(0).rstrip(".,")
            continue
        depth, i = 1, m.end()
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[m.end():i].strip()
            i += 1
    return None


_FRAC = re.compile(r"^(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}$")


def _simple_number(latex: str) -> Fraction | None:
    """Plain numbers in LaTeX: `7`, `-3.5`, `\\frac{7}{2}`, `-\\dfrac{7}{2}`, `7/2`; else None."""
    s = latex.strip().strip("$").strip()
    s = re.sub(r"\\[,!; ]|\\text\{\s*\}", "", s).replace("{,}", "")
    m = _FRAC.match(s.replace(" ", ""))
    if m:
        num, den = int(m.group(2)), int(m.group(3))
        if den == 0 or len(m.group(2)) + len(m.group(3)) > MAX_NUMBER_DIGITS:
            return None
        value = Fraction(num, den)
        return -value if m.group(1) else value
    if re.fullmatch(r"-?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?", s):
        return _to_fraction(s)
    return None


def extract_math(completion: str) -> str | None:
    boxed = last_boxed(completion)
    if boxed is None or not boxed or len(boxed) > MAX_ANSWER_CHARS:
        return None
    return boxed


def _math_verify(reference: str, prediction: str) -> bool:
    """math-verify with its own (whole-second, per-stage) timers off: the caller caps the call."""
    from math_verify import LatexExtractionConfig, parse, verify

    # LaTeX extraction only: math-verify's expression extractor goes through sympy.parse_expr (eval).
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    gold = parse(f"\\boxed{{{reference}}}", extraction_config=config, parsing_timeout=None)
    pred = parse(f"\\boxed{{{prediction}}}", extraction_config=config, parsing_timeout=None)
    if not gold or not pred:
        return False
    return bool(verify(gold, pred, timeout_seconds=None))


def _capped(reference: str, prediction: str) -> bool:
    """`_math_verify` under one wall-clock timer for the whole call (main thread: SIGALRM)."""
    def on_alarm(signum, frame):
        raise GradingTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, _timeout_s)
            return _math_verify(reference, prediction)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except GradingTimeout:
        _count_timeout()
        return False
    finally:
        signal.signal(signal.SIGALRM, previous)


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _verify_off_main_thread(reference: str, prediction: str) -> bool:
    """signal-based time limits work only on the main thread; elsewhere use a worker process."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1)
        pool = _pool
    future = pool.submit(_math_verify, reference, prediction)
    try:
        return future.result(timeout=_timeout_s)
    except FutureTimeout:
        _count_timeout()
        with _pool_lock:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)
            _pool = None
        return False


def math_equal(reference: str, prediction: str) -> bool:
    """Equivalence of two MATH answers: exact rationals first, then math-verify with a time limit."""
    a, b = _simple_number(reference), _simple_number(prediction)
    if a is not None and b is not None:
        return a == b
    if reference.strip() == prediction.strip():
        return True
    try:
        if threading.current_thread() is threading.main_thread():
            return _capped(reference, prediction)
        return _verify_off_main_thread(reference, prediction)
    except Exception:  # a parser failure on model output is a wrong answer, never a crash
        return False


# ----------------------------------------------------------------------------- public API


def extract_answer(completion: str, task: str) -> str | None:
    """The final answer in `completion` as a string, or None if there is none."""
    if not isinstance(completion, str):
        return None
    return extract_gsm8k(completion) if answer_format(task) == "gsm8k" else extract_math(completion)


def grade(completion: str, reference: str, task: str) -> float:
    """1.0 if the completion's final answer equals `reference`, else 0.0 (also when unparseable)."""
    pred = extract_answer(completion, task)
    if pred is None:
        return 0.0
    if answer_format(task) == "gsm8k":
        ref = _to_fraction(str(reference))
        return float(ref is not None and _to_fraction(pred) == ref)
    return float(math_equal(str(reference), pred))
