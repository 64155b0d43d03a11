"""Reasoning steps: where VinePPO resets the environment and estimates a value (SPEC.md).

GSM8K format: one step per line (a blank line joins the next). MATH format: lines and sentence ends (". " before a capital),
never inside math ($...$, $$...$$, \\(...\\), \\[...\\], \\begin{..}...\\end{..}); pieces shorter than
MIN_STEP_CHARS that do not end a sentence are merged into the next one. Splitting is lossless:
`"".join(split_steps(t, task)) == t` for every string. Each step keeps its trailing separator.

Other rules (`rl.vine_steps`), for data whose steps are marked otherwise and for granularity
ablations: `lines`, `math` (either rule whatever the task), `lines_answer` (lines, the final
`#### n` line joined to the line before it, as the authors' GSM8K splitter does: no state between
the last reasoning line and the answer), `response` (the whole response is one step: only the
prompt's value is estimated, every token gets R - V(prompt)), and `regex:PATTERN` (a step ends
where each match of PATTERN ends, e.g. `regex:\\n\\n` for blank-line paragraphs).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vineppo.grading import answer_format

MIN_STEP_CHARS = 20


def _split_newlines(text: str) -> list[str]:
    """`"a\\nb\\n\\nc"` -> `["a\\n", "b\\n", "\\nc"]`: each line with its newline; a blank line is
    no step of its own and joins the line after it (the last line, where none follows), as the
    authors' code merges the empty first step of their SFT responses ("\\n" + solution)."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    return _join_forward(lines, str.strip)


def _join_forward(pieces: list[str], keep: Callable[[str], object]) -> list[str]:
    """Pieces, each one for which `keep(what has gathered + piece)` is false joined to the piece
    after it (to the last kept piece, where none follows; alone, where none was kept)."""
    out: list[str] = []
    carry = ""
    for p in pieces:
        if keep(carry + p):
            out.append(carry + p)
            carry = ""
        else:
            carry += p
    if carry:
        if out:
            out[-1] += carry
        else:
            out.append(carry)
    return out


_OPENERS = [("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$")]
_BEGIN = re.compile(r"\\begin\{([^{}]*)\}")


def _math_boundaries(text: str) -> list[int]:
    """Split positions (end index of each piece) outside math: after '\\n', and after '. ' + capital."""
    cuts = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and text.startswith("\\begin{", i):
            m = _BEGIN.match(text, i)
            if m:
                end = text.find(f"\\end{{{m.group(1)}}}", m.end())
                i = n if end < 0 else end + len(m.group(1)) + len("\\end{}")
                continue
        opened = False
        for open_, close in _OPENERS:
            if text.startswith(open_, i) and not (c == "$" and i > 0 and text[i - 1] == "\\"):
                end = text.find(close, i + len(open_))
                # An unclosed delimiter: treat the rest as math (never split inside it).
                i = n if end < 0 else end + len(close)
                opened = True
                break
        if opened:
            continue
        if c == "\\":  # an escaped character, e.g. \$ or \.
            i += 2
            continue
        if c == "\n":
            cuts.append(i + 1)
        elif c == "." and i + 2 < n and text[i + 1] == " " and text[i + 2].isupper():
            cuts.append(i + 2)
        i += 1
    return cuts


def _merge_short(pieces: list[str]) -> list[str]:
    """Merge pieces under MIN_STEP_CHARS that do not end a sentence into the following piece."""
    return _join_forward(pieces, lambda p: len(p.strip()) >= MIN_STEP_CHARS or p.strip().endswith("."))


def split_math(text: str) -> list[str]:
    cuts = [0] + _math_boundaries(text) + [len(text)]
    pieces = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    return _merge_short(pieces)


STEP_RULES = ("auto", "lines", "math", "lines_answer", "response")
"""`rl.vine_steps`: one of these, or `regex:PATTERN`. `auto` is the task's own rule (SPEC.md)."""


def check_rule(rule: str) -> None:
    """ValueError naming the rule when it is neither a known name nor a compilable `regex:`."""
    if rule in STEP_RULES:
        return
    if rule.startswith("regex:"):
        pattern = rule[len("regex:"):]
        if not pattern:
            raise ValueError("step rule 'regex:' needs a pattern after the colon")
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"step rule {rule!r}: bad regular expression ({e})") from None
        return
    raise ValueError(f"unknown step rule {rule!r}; use one of {', '.join(STEP_RULES)} or regex:PATTERN")


def join_answer_line(steps: list[str]) -> list[str]:
    """The first step that starts (after blank lines) with GSM8K's `####`, and every step after
    it, joined to the step before it (where it comes first, the steps after it joined to it);
    unchanged where there is none."""
    at = next((i for i, step in enumerate(steps) if step.lstrip().startswith("####")), None)
    if at is None:
        return steps
    at = max(at - 1, 0)
    return steps[:at] + ["".join(steps[at:])]


def split_regex(text: str, pattern: str) -> list[str]:
    """Cut after every match of `pattern` (zero-width matches cut where they stand)."""
    cuts = sorted({m.end() for m in re.finditer(pattern, text) if 0 < m.end() < len(text)})
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def split_steps(text: str, task: str, rule: str = "auto") -> list[str]:
    """The reasoning steps of a response, losslessly, by `rule` (STEP_RULES or `regex:PATTERN`)."""
    if rule == "auto":
        rule = "lines" if answer_format(task) == "gsm8k" else "math"
    if rule == "lines":
        return _split_newlines(text)
    if rule == "math":
        return split_math(text)
    if rule == "lines_answer":
        return join_answer_line(_split_newlines(text))
    if rule == "response":
        return [text] if text else []
    check_rule(rule)
    return split_regex(text, rule[len("regex:"):])


def step_boundaries(text: str, task: str, rule: str = "auto") -> list[int]:
    """Character offsets where each step starts (0 first): the states VinePPO estimates."""
    offsets, pos = [], 0
    for step in split_steps(text, task, rule):
        offsets.append(pos)
        pos += len(step)
    return offsets
