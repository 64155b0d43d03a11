"""Reasoning steps: where VinePPO resets the environment and estimates a value (SPEC.md).

GSM8K format: one step per line. MATH format: lines and sentence ends (". " before a capital),
never inside math ($...$, $$...$$, \\(...\\), \\[...\\], \\begin{..}...\\end{..}); pieces shorter than
MIN_STEP_CHARS that do not end a sentence are merged into the next one. Splitting is lossless:
`"".join(split_steps(t, task)) == t` for every string. Each step keeps its trailing separator.
"""

from __future__ import annotations

import re

from vineppo.grading import answer_format

MIN_STEP_CHARS = 20


def _split_newlines(text: str) -> list[str]:
    """`"a\\nb\\n\\nc"` -> `["a\\n", "b\\n", "\\n", "c"]`: each line with its newline."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
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
    out: list[str] = []
    carry = ""
    for p in pieces:
        p = carry + p
        body = p.strip()
        if len(body) < MIN_STEP_CHARS and not body.endswith("."):
            carry = p
            continue
        out.append(p)
        carry = ""
    if carry:
        if out:
            out[-1] += carry
        else:
            out.append(carry)
    return out


def split_math(text: str) -> list[str]:
    cuts = [0] + _math_boundaries(text) + [len(text)]
    pieces = [text[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    return _merge_short(pieces)


def split_steps(text: str, task: str) -> list[str]:
    """The reasoning steps of a response, losslessly."""
    if answer_format(task) == "gsm8k":
        return _split_newlines(text)
    return split_math(text)


def step_boundaries(text: str, task: str) -> list[int]:
    """Character offsets where each step starts (0 first): the states VinePPO estimates."""
    offsets, pos = [], 0
    for step in split_steps(text, task):
        offsets.append(pos)
        pos += len(step)
    return offsets
