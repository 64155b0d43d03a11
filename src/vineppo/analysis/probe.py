"""A policy's arithmetic and copying on fixed inputs, on the generated tasks.

Read from a policy's own answers, its slips depend on what it writes (a policy that stops making
the flaw writes other operations on other numbers). Here every checkpoint gets the same inputs:
the correct reference solution of each problem cut just before a number, and greedy decoding
says what the policy writes there: the result of a line (`... 25 - 10 =`, "arithmetic", per
operation) or the value carried from the line before at the start of the next line ("copy").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from vineppo.inference import Engine, SamplingParams
from vineppo.tasks import PROMPT
from vineppo.tasks.arith import SYMBOLS, _step_parts


@dataclass(frozen=True)
class Probe:
    prompt: str
    target: str
    """The number the reference writes next."""
    kind: str
    """"arithmetic" (a line's result) or "copy" (the carried value opening a line)."""
    op: str | None = None
    """The line's operation, for "arithmetic"."""


def probes(examples: list[dict[str, str]]) -> list[Probe]:
    """Every line result and every carried value of the examples' reference solutions."""
    out: list[Probe] = []
    for e in examples:
        base, done = PROMPT.format(question=e["question"]), ""
        for line in e["solution"].split("\n"):
            parts = _step_parts(" ".join(line.split()))
            if parts is None:  # the answer line
                break
            first, sym, _, result, _ = parts
            if done:
                out.append(Probe(base + done, first, "copy"))
            out.append(Probe(base + done + line[:line.index(" = ") + 2], result, "arithmetic", SYMBOLS.get(sym)))
            done += line + "\n"
    return out


def first_value(text: str) -> str:
    """The first number-like word a continuation writes (`$` and what follows a number cut off)."""
    m = re.match(r"\s*\$?([^\s$]+)", text)
    return m.group(1).rstrip(".,") if m else ""


def probe_errors(engine: Engine, items: list[Probe], max_new_tokens: int = 16) -> dict[str, float]:
    """Greedy error rates: `probe_copy`, `probe_arithmetic` and `probe_arithmetic_<op>`."""
    outputs = engine.generate([p.prompt for p in items], SamplingParams(n=1, temperature=0.0,
                                                                         max_new_tokens=max_new_tokens))
    wrong, total = Counter(), Counter()
    for p, out in zip(items, outputs, strict=True):
        miss = first_value(out[0].text) != p.target
        for key in (p.kind, *((f"{p.kind}_{p.op}",) if p.op else ())):
            total[key] += 1
            wrong[key] += miss
    return {f"probe_{k}": wrong[k] / total[k] for k in sorted(total)}


__all__ = ["Probe", "first_value", "probe_errors", "probes"]
