"""Answer extraction and grading: the reward is 1.0 for a correct final answer, else 0.0.

GSM8K format: the number after the last `####`. MATH format: the content of the last `\\boxed{}`,
compared with math-verify (fractions, decimals, LaTeX forms). Plain numbers are compared exactly as
rationals first, which settles nearly every case without sympy. Model output is never evaluated as
code: LaTeX goes through math-verify's LaTeX parser only (no `sympy.parse_expr`, which uses eval).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Sequence
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

POOL_MIN = 16
"""Symbolic comparisons in one `grade_many` call from which a worker pool pays. Measured with 2
workers (`benchmarks/grading_throughput.py`'s workload): 8 comparisons took 26 ms here and 28 ms
in the pool, 16 took 96 ms and 41 ms."""

_timeout_s = DEFAULT_TIMEOUT_S
_workers = 1
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


def set_workers(workers: int) -> None:
    """Processes for `grade_many`'s symbolic comparisons (`task.grade_workers`): -1 for one per CPU
    this process may use (shared among the processes of one node, at most 8), 0 or 1 for this
    process only, N > 1 for a pool of N."""
    global _workers
    if workers < -1:
        from vineppo.config import ConfigError

        raise ConfigError(f"task.grade_workers must be -1 (auto), 0, 1 or a process count, got {workers}")
    if workers == -1:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(8, cpus // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1))
    _workers = max(workers, 1)


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
    """`_math_verify` under one wall-clock timer for the whole call (main thread: SIGALRM). The
    first call's import of math-verify and sympy (seconds) happens before the timer starts."""
    import math_verify  # noqa: F401

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
            _pool.submit(_warm_worker).result()  # the imports, before any grading's timer runs
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


def _settled(reference: str, prediction: str) -> bool | None:
    """Equivalence settled without sympy: both plain numbers, or the same text; else None."""
    a, b = _simple_number(reference), _simple_number(prediction)
    if a is not None and b is not None:
        return a == b
    if reference.strip() == prediction.strip():
        return True
    return None


def math_equal(reference: str, prediction: str) -> bool:
    """Equivalence of two MATH answers: exact rationals first, then math-verify with a time limit."""
    settled = _settled(reference, prediction)
    if settled is not None:
        return settled
    return _symbolic_equal(reference, prediction)


def _symbolic_equal(reference: str, prediction: str) -> bool:
    """math-verify under the per-call cap; a parser failure on model output is a wrong answer."""
    try:
        if threading.current_thread() is threading.main_thread():
            return _capped(reference, prediction)
        return _verify_off_main_thread(reference, prediction)
    except Exception:  # a parser failure on model output is a wrong answer, never a crash
        return False


# ----------------------------------------------------------------------------- many at once

_grading_pool: ProcessPoolExecutor | None = None
_grading_pool_size = 0


def _warm_worker() -> None:
    import math_verify  # noqa: F401  (seconds of imports, before any grading's timer runs)


def _symbolic_chunk(pairs: list[tuple[str, str]], timeout_s: float) -> tuple[list[bool], int]:
    """In a pool worker (its main thread, so the SIGALRM cap holds): verdicts and time-outs."""
    set_timeout(timeout_s)
    verdicts = [_symbolic_equal(r, p) for r, p in pairs]
    return verdicts, pop_timeouts()


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """The grading pool, started once per process (spawned: no fork of a process running torch)."""
    global _grading_pool, _grading_pool_size
    if _grading_pool is None or _grading_pool_size != workers:
        shutdown_pool()
        _grading_pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_warm_worker)
        _grading_pool_size = workers
    return _grading_pool


def shutdown_pool() -> None:
    """Stop the grading pool's workers (a later `grade_many` starts a new one)."""
    global _grading_pool
    if _grading_pool is not None:
        for proc in list(getattr(_grading_pool, "_processes", {}).values()):
            proc.kill()
        _grading_pool.shutdown(wait=False, cancel_futures=True)
        _grading_pool = None


def _pool_failed(error: BaseException) -> None:
    """A pool that could not start, or whose worker died or hung: grade in this process from now
    on (say so once) rather than restart workers that may fail the same way again."""
    global _workers
    shutdown_pool()
    if _workers > 1:
        logging.getLogger(__name__).warning("grading pool stopped (%s: %s); grading in this process from now on",
                                            type(error).__name__, error)
    _workers = 1


def _symbolic_many(pairs: list[tuple[str, str]]) -> list[bool]:
    """Symbolic comparisons, spread over `_workers` processes when there are POOL_MIN or more. A
    chunk the pool fails to return (a dead or hung worker, which each worker's own cap should
    prevent) is graded here instead, so no verdict is lost."""
    global _timeouts
    if _workers <= 1 or len(pairs) < POOL_MIN or threading.current_thread() is not threading.main_thread():
        return [_symbolic_equal(r, p) for r, p in pairs]
    size = -(-len(pairs) // (4 * _workers))  # a few chunks per worker evens out slow ones
    chunks = [pairs[i:i + size] for i in range(0, len(pairs), size)]
    try:
        pool = _start_pool(_workers)
        futures = [pool.submit(_symbolic_chunk, chunk, _timeout_s) for chunk in chunks]
    except Exception as error:  # could not start, or broke while idle
        _pool_failed(error)
        futures = []
    verdicts: list[bool] = []
    for i, chunk in enumerate(chunks):
        try:
            got, timeouts = futures[i].result(timeout=len(chunk) * _timeout_s * 2 + 60)
        except Exception as error:
            if futures:
                _pool_failed(error)
                futures = []
            got, timeouts = [_symbolic_equal(r, p) for r, p in chunk], 0
        with _count_lock:
            _timeouts += timeouts
        verdicts.extend(got)
    return verdicts


# ----------------------------------------------------------------------------- public API


def extract_answer(completion: str, task: str) -> str | None:
    """The final answer in `completion` as a string, or None if there is none."""
    if not isinstance(completion, str):
        return None
    return extract_gsm8k(completion) if answer_format(task) == "gsm8k" else extract_math(completion)


def grade_many(pairs: Sequence[tuple[str, str]], task: str) -> list[float]:
    """`grade` over (completion, reference) pairs: what needs no sympy (every GSM8K answer, plain
    numbers and identical text in MATH) here, the symbolic comparisons together, over a pool of
    `task.grade_workers` processes when there are enough of them to pay."""
    rewards: list[float | None] = []
    symbolic: list[tuple[int, tuple[str, str]]] = []
    for i, (completion, reference) in enumerate(pairs):
        pred = extract_answer(completion, task)
        if pred is None:
            rewards.append(0.0)
        elif answer_format(task) == "gsm8k":
            ref = _to_fraction(str(reference))
            rewards.append(float(ref is not None and _to_fraction(pred) == ref))
        else:
            settled = _settled(str(reference), pred)
            rewards.append(None if settled is None else float(settled))
            if settled is None:
                symbolic.append((i, (str(reference), pred)))
    for (i, _), verdict in zip(symbolic, _symbolic_many([pair for _, pair in symbolic]), strict=True):
        rewards[i] = float(verdict)
    return rewards  # type: ignore[return-value]


def grade(completion: str, reference: str, task: str) -> float:
    """1.0 if the completion's final answer equals `reference`, else 0.0 (also when unparseable)."""
    pred = extract_answer(completion, task)
    if pred is None:
        return 0.0
    if answer_format(task) == "gsm8k":
        ref = _to_fraction(str(reference))
        return float(ref is not None and _to_fraction(pred) == ref)
    return float(math_equal(str(reference), pred))
