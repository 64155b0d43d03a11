"""Generated multi-step arithmetic word problems in GSM8K's format (`arith`) and a harder,
MATH-like variant with fractions and `\\boxed{}` answers (`arith_hard`).

A problem is a start quantity followed by a chain of operations, one sentence each. The solution
has one computation per line and ends with the answer line, so step boundaries are solution lines
exactly as for GSM8K. Problems are routed to train or test by a hash of the question text, so the
two splits can never share a problem.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from fractions import Fraction

NAMES = [
    "Ava", "Ben", "Cleo", "Dan", "Ema", "Finn", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena",
    "Milo", "Nora", "Omar", "Pia", "Quin", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Zoe",
]
ITEMS = [
    "apples", "books", "coins", "stamps", "marbles", "pencils", "cards", "shells", "stickers",
    "cookies", "toys", "beads", "eggs", "rocks", "candles", "ribbons",
]
MATERIALS = [
    "flour", "sugar", "rice", "sand", "clay", "paint", "juice", "water", "salt", "tea",
]
UNITS = ["kilograms", "liters", "cups", "grams"]

OPS = ("add", "sub", "mul", "div")
FLAW_OF = {"sub": "add", "add": "sub", "mul": "add", "div": "sub"}
"""The controlled flaw of each operation: the solution line written with this operation instead
("gives away 4" -> `12 + 4`, "gets 4 more" -> `12 - 4`, "triples" -> `12 + 3`, "splits into 2" ->
`12 - 2`). `task.flaw_ops` says which operations' steps can be flawed (default: subtraction only)."""
FACTOR_WORDS = {2: "doubles", 3: "triples"}


@dataclass(frozen=True)
class ArithSpec:
    """Knobs of the generator; the defaults of `arith` and `arith_hard` differ."""

    min_steps: int
    max_steps: int
    max_operand: int
    max_start: int
    max_factor: int
    ops: tuple[str, ...]
    max_value: int
    fractions: bool
    boxed: bool


ARITH = ArithSpec(min_steps=2, max_steps=4, max_operand=10, max_start=30, max_factor=3,
                  ops=OPS, max_value=200, fractions=False, boxed=False)
ARITH_HARD = ArithSpec(min_steps=3, max_steps=4, max_operand=15, max_start=30, max_factor=4,
                       ops=OPS, max_value=400, fractions=True, boxed=True)


def latex(x: Fraction) -> str:
    """A rational as LaTeX: `7`, `-3`, `\\frac{7}{2}`, `-\\frac{7}{2}`."""
    if x.denominator == 1:
        return str(x.numerator)
    sign = "-" if x < 0 else ""
    return f"{sign}\\frac{{{abs(x.numerator)}}}{{{x.denominator}}}"


def _fmt(x: Fraction, spec: ArithSpec) -> str:
    return latex(x) if spec.boxed else str(x.numerator)


def _pick_op(rng: random.Random, value: Fraction, spec: ArithSpec) -> tuple[str, int] | None:
    """Choose an operation and operand that keep the value positive, bounded and (for `arith`) whole."""
    for _ in range(20):
        op = rng.choice(spec.ops)
        if op == "add":
            k = rng.randint(1, spec.max_operand)
            if value + k <= spec.max_value:
                return op, k
        elif op == "sub":
            k = rng.randint(1, spec.max_operand)
            if value - k > 0:
                return op, k
        elif op == "mul":
            k = rng.randint(2, spec.max_factor)
            if value * k <= spec.max_value:
                return op, k
        elif op == "div":
            divisors = [k for k in range(2, spec.max_factor + 1)]
            if not spec.fractions:
                divisors = [k for k in divisors if value.numerator % k == 0]
            if divisors:
                return op, rng.choice(divisors)
    return None


def _sentence(op: str, k: int, name: str, thing: str, noun: str, rng: random.Random) -> str:
    if op == "add":
        return rng.choice([f"{name} gets {k} more {thing}.", f"Then {name} finds {k} more {thing}."])
    if op == "sub":
        return rng.choice([f"{name} gives away {k} {thing}.", f"Then {name} loses {k} {thing}."])
    if op == "mul":
        word = FACTOR_WORDS.get(k)
        if word and rng.random() < 0.5:
            return f"Then the amount of {noun} {word}."
        return f"Then the amount of {noun} becomes {k} times as large."
    return f"{name} splits the {noun} into {k} equal parts and keeps one part."


SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def apply(op: str, value: Fraction, k: int) -> Fraction:
    if op == "add":
        return value + k
    if op == "sub":
        return value - k
    if op == "mul":
        return value * k
    return value / k


def _line(op: str, before: Fraction, k: int, after: Fraction, thing: str, spec: ArithSpec) -> str:
    a, b = _fmt(before, spec), _fmt(after, spec)
    if spec.boxed:
        sym = {"add": "+", "sub": "-", "mul": "\\times", "div": "\\div"}[op]
        return f"${a} {sym} {k} = {b}$ {thing}."
    return f"{a} {SYMBOL[op]} {k} = {b} {thing}."


def generate_problem(rng: random.Random, spec: ArithSpec, flaw_rate: float = 0.0,
                     flaw_ops: tuple[str, ...] = ("sub",)) -> dict:
    """One problem: {question, solution, answer}, plus `flawed_steps` when `flaw_rate` > 0.

    With probability `flaw_rate` a step of the *solution* whose operation is in `flaw_ops` is
    written with its flawed operation (`FLAW_OF`; a subtraction as an addition: "gives away 4" ->
    `12 + 4 = 16`) and the wrong value is carried through the later steps, so the solution ends at
    a wrong answer. The question and `answer` stay correct. This is the
    miniature's controlled, step-local flaw: SFT data made with it teaches the model a wrong
    habit beside the right one, and `flawed_steps` (0-based solution lines) says which step
    deserves the blame. A step is flawed only where the later steps stay whole numbers (`arith`).
    """
    name = rng.choice(NAMES)
    if spec.boxed:
        unit, noun = rng.choice(UNITS), rng.choice(MATERIALS)
        thing = f"{unit} of {noun}"
    else:
        unit = noun = thing = rng.choice(ITEMS)
    value = Fraction(rng.randint(2, max(spec.max_start, 2)))
    sentences = [f"{name} has {_fmt(value, spec)} {thing}."]
    chain: list[tuple[str, int]] = []
    n_steps = rng.randint(spec.min_steps, spec.max_steps)
    start = value
    for _ in range(n_steps):
        choice = _pick_op(rng, value, spec)
        if choice is None:
            break
        op, k = choice
        sentences.append(_sentence(op, k, name, thing, noun, rng))
        chain.append((op, k))
        value = apply(op, value, k)
    # The solution: each step applied to the value written so far (the flawed value after a flaw).
    flaw_draws = [rng.random() < flaw_rate for _ in chain] if flaw_rate > 0 else [False] * len(chain)
    lines, flawed, written = _solution_lines(start, chain, flaw_draws, unit, spec, flaw_ops)
    question = " ".join(sentences) + f" How many {thing} does {name} have now?"
    if spec.boxed:
        answer = latex(value)
        lines.append(f"The answer is $\\boxed{{{latex(written)}}}$.")
    else:
        answer = str(value.numerator)
        lines.append(f"#### {written.numerator}")
    out: dict = {"question": question, "solution": "\n".join(lines), "answer": answer}
    if flaw_rate > 0:
        out["flawed_steps"] = flawed
    return out


def _written_values(start: Fraction, chain: list[tuple[str, int]], flawed: list[int]) -> list[Fraction]:
    """The value after each step as the solution writes it: a flawed step applies `FLAW_OF[op]`."""
    values, value = [], start
    for i, (op, k) in enumerate(chain):
        value = apply(FLAW_OF[op] if i in flawed else op, value, k)
        values.append(value)
    return values


def _solution_lines(start: Fraction, chain: list[tuple[str, int]], flaw_draws: list[bool], unit: str,
                    spec: ArithSpec, flaw_ops: tuple[str, ...] = ("sub",)) -> tuple[list[str], list[int], Fraction]:
    """Solution lines, the indices of the flawed ones and the final written value. A drawn flaw is
    kept only where the chain written after it stays valid (positive, and whole numbers for
    `arith`), so every line is well formed, and where it changes the answer (`4 / 2` written as
    `4 - 2` is still 2): a flawed solution always ends wrong."""
    flawed: list[int] = []
    true_final = _written_values(start, chain, [])[-1] if chain else start
    for i, (op, _) in enumerate(chain):
        if not (op in flaw_ops and flaw_draws[i]):
            continue
        written = _written_values(start, chain, flawed + [i])
        if all(v > 0 and (spec.fractions or v.denominator == 1) for v in written) and written[-1] != true_final:
            flawed.append(i)
    values = _written_values(start, chain, flawed)
    befores = [start] + values[:-1]
    lines = [_line(FLAW_OF[op] if i in flawed else op, before, k, after, unit, spec)
             for i, ((op, k), before, after) in enumerate(zip(chain, befores, values, strict=True))]
    return lines, flawed, values[-1] if values else start


def _is_test(question: str, test_fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(question.encode()).digest()[:8], "big")
    return (h % 10_000) < test_fraction * 10_000


def generate_splits(spec: ArithSpec, num_train: int, num_test: int, seed: int,
                    prefix: str = "arith") -> tuple[list[dict], list[dict]]:
    """Generate disjoint train and test sets; the same seed and spec give the same problems."""
    rng = random.Random(seed)
    train: list[dict] = []
    test: list[dict] = []
    seen: set[str] = set()
    test_fraction = 0.2
    attempts = 0
    while len(train) < num_train or len(test) < num_test:
        attempts += 1
        if attempts > 50 * (num_train + num_test) + 1000:
            raise RuntimeError(
                f"could not generate {num_train} train / {num_test} test distinct problems for "
                f"{prefix}; widen the operand range or the number of steps")
        p = generate_problem(rng, spec)
        if p["question"] in seen:
            continue
        seen.add(p["question"])
        split, target = (test, num_test) if _is_test(p["question"], test_fraction) else (train, num_train)
        if len(split) < target:
            split.append({"id": f"{prefix}-{'test' if split is test else 'train'}-{len(split)}", **p})
    return train, test


def generate_sft_pool(spec: ArithSpec, num: int, seed: int, exclude: set[str], flaw_rate: float,
                      prefix: str = "arith", flaw_ops: tuple[str, ...] = ("sub",)) -> list[dict]:
    """Fresh problems for SFT, disjoint from the RL prompts (`exclude`) and from every problem the
    test split could hold (hash-routed), with the controlled flaw at `flaw_rate` in their solutions.
    A stream of its own (seed + 1), so the train and test splits do not depend on the pool's size."""
    rng = random.Random(seed + 1)
    pool: list[dict] = []
    seen = set(exclude)
    attempts = 0
    while len(pool) < num:
        attempts += 1
        if attempts > 50 * num + 1000:
            raise RuntimeError(f"could not generate {num} distinct SFT problems for {prefix}; widen the "
                               "operand range or the number of steps, or lower task.num_sft")
        p = generate_problem(rng, spec, flaw_rate, flaw_ops)
        if p["question"] in seen or _is_test(p["question"], 0.2):
            continue
        seen.add(p["question"])
        pool.append({"id": f"{prefix}-sft-{len(pool)}", **p})
    return pool


def _step_lines(solution: str) -> list[str]:
    """The computation lines of a solution (the answer line dropped), whitespace-normalised."""
    lines = [" ".join(line.split()) for line in solution.strip().split("\n")]
    return [line for line in lines if line and not line.startswith("####") and "\\boxed" not in line]


SYMBOLS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "\\times": "mul", "\\div": "div"}


def first_error(response: str, reference: str, flaw_ops: tuple[str, ...] = ("sub",)) -> tuple[int | None, str]:
    """Where a response to a generated problem first goes wrong, against its reference solution.

    Returns (index of the first computation line that differs from the reference's, kind), kind
    being "none" (every line right), "flaw" (that line is the reference's step, its operation in
    `flaw_ops`, written with the flawed operation `FLAW_OF[op]`: the controlled flaw) or "other".
    A generated problem's correct solution is unique, so the first differing line is the first
    wrong step.
    """
    got, want = _step_lines(response), _step_lines(reference)
    for i, ref in enumerate(want):
        line = got[i] if i < len(got) else ""
        if line == ref:
            continue
        step = re.match(r"^(\$?\S+) (\S+) (\d+) = ", ref)
        op = SYMBOLS.get(step.group(2)) if step else None
        if op in flaw_ops:
            boxed = ref.startswith("$")
            sym = {"add": "+", "sub": "-", "mul": "\\times" if boxed else "*",
                   "div": "\\div" if boxed else "/"}[FLAW_OF[op]]
            if line.startswith(f"{step.group(1)} {sym} {step.group(3)} = "):
                return i, "flaw"
        return i, "other"
    return None, "none"


ERROR_DETAILS = ("flaw", "copy", "operation", "operand", "arithmetic", "format", "missing")
"""`error_detail`'s kinds of a first wrong step, in the order a line is read."""


def _step_parts(line: str) -> tuple[str, str, str, str, str] | None:
    """(first operand, operation symbol, second operand, result, rest) of a computation line, plain
    (`12 - 4 = 8 pens.`) or boxed (`$12 \\times 4 = 48$ cups.`); None if it is not one."""
    m = re.match(r"^\$?(\S+) (\S+) (\S+) = ([^\s$]+)\$?(.*)$", line)
    return m.groups() if m else None  # type: ignore[return-value]


def error_detail(response: str, reference: str, flaw_ops: tuple[str, ...] = ("sub",)) -> tuple[int | None, str]:
    """`first_error`, with its "other" told apart by what first differs in the first wrong line:
    "copy" (the first operand: the value carried from the line before, or the start, copied
    wrong), "operation" (an operation other than the controlled flaw), "operand" (the second
    operand), "arithmetic" (operands and operation right, the result wrong), "format" (the
    numbers right, the wording not, or not a computation line), "missing" (the response has no
    line there)."""
    i, kind = first_error(response, reference, flaw_ops)
    if kind != "other":
        return i, kind
    got = _step_lines(response)
    if i >= len(got):
        return i, "missing"
    mine, ref = _step_parts(got[i]), _step_parts(_step_lines(reference)[i])
    if mine is None or ref is None:
        return i, "format"
    for name, a, b in zip(("copy", "operation", "operand", "arithmetic"), mine, ref, strict=False):
        if a != b:
            return i, name
    return i, "format"


def _number(text: str) -> Fraction | None:
    """A written value (`12`, `-3`, `\\frac{7}{2}`, `-\\frac{7}{2}`) as a Fraction; None otherwise."""
    if re.fullmatch(r"-?\d+", text):
        return Fraction(int(text))
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", text)
    if m and int(m.group(3)) != 0:
        return Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
    return None


def line_slips(response: str) -> dict[str, int]:
    """Slips a response makes within its own lines, whatever the problem: "arithmetic" (a line whose
    result is not its operation applied to its operands, as written) among "lines" (computation
    lines that parse), and "copy" (a line whose first operand is not the result of the line before)
    among "carried" (lines after a parsed line); and per operation as written, "lines_<op>" and
    "arithmetic_<op>" (a policy that changes which operations it writes changes its overall rate
    without any change in its arithmetic). Unlike the first wrong step, this is not hidden behind
    an earlier error: an SFT model that makes the flaw first is still read for its arithmetic."""
    out = dict.fromkeys(("lines", "arithmetic", "carried", "copy", *(f"{k}_{op}" for k in ("lines", "arithmetic")
                                                                     for op in OPS)), 0)
    previous: Fraction | None = None
    for line in _step_lines(response):
        parts = _step_parts(line)
        values = parts and (_number(parts[0]), _number(parts[2]), _number(parts[3]))
        if not parts or not values or None in values or SYMBOLS.get(parts[1]) is None:
            previous = None
            continue
        a, k, result = values
        out["lines"] += 1
        op = SYMBOLS[parts[1]]
        slip = (op == "div" and k == 0) or apply(op, a, k) != result
        out["arithmetic"] += slip
        out[f"lines_{op}"] += 1
        out[f"arithmetic_{op}"] += slip
        if previous is not None:
            out["carried"] += 1
            out["copy"] += a != previous
        previous = result
    return out
