"""A policy's arithmetic and copying on fixed inputs, on the generated tasks.

Read from a policy's own answers, its slips depend on what it writes (a policy that stops making
the flaw writes other operations on other numbers). Here every checkpoint gets the same inputs:
the correct reference solution of each problem cut just before a number, and greedy decoding
says what the policy writes there: the result of a line (`... 25 - 10 =`, "arithmetic", per
operation) or the value carried from the line before at the start of the next line ("copy").

And one token further (`copy_states`, `next_token_mass`): the same solutions cut right after a
carried value copied right, where the next token is the line's operation. There the flaw is
decided (the flawed line writes another operation), and a copy stutter (`23` written `230`) is a
digit. How the policy's next-token mass splits between the right operation, the flaw, the other
operations, digits and the rest says where the stutter's extra digit takes its mass from.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch

from vineppo.analysis.kl import digit_tokens
from vineppo.inference import Engine, SamplingParams
from vineppo.tasks import PROMPT
from vineppo.tasks.arith import FLAW_OF, OPS, SYMBOLS, _step_parts


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


@dataclass(frozen=True)
class CopyState:
    prompt: str
    """A reference solution up to and with the value carried into a line, copied right."""
    op: str
    """The line's operation: its symbol is the token the reference writes next."""


def copy_states(examples: list[dict[str, str]]) -> list[CopyState]:
    """Every line after the first of the examples' reference solutions, cut after its first operand."""
    out: list[CopyState] = []
    for e in examples:
        done = PROMPT.format(question=e["question"])
        for i, line in enumerate(e["solution"].split("\n")):
            parts = _step_parts(" ".join(line.split()))
            if parts is None:  # the answer line
                break
            if i:
                out.append(CopyState(done + line[:line.index(parts[0]) + len(parts[0])], SYMBOLS[parts[1]]))
            done += line + "\n"
    return out


NEXT = ("right", "flaw", "other_op", "digit", "other")
"""`next_token_mass`'s classes of the token after a copied value: the line's operation, its flaw
(`FLAW_OF`), the two other operations, a digit (the copy goes on: a stutter), anything else."""


def operation_tokens(tokenizer) -> dict[str, torch.Tensor]:
    """A bool per vocabulary id for each operation: does the token write its symbol (spaces aside)?"""
    texts = [tokenizer.decode([i]).strip() for i in range(len(tokenizer))]
    out = {op: torch.tensor([SYMBOLS.get(t) == op for t in texts]) for op in OPS}
    missing = [op for op, m in out.items() if not m.any()]
    if missing:
        raise ValueError(f"no single token of the tokenizer writes the symbol of {', '.join(missing)}: "
                         "next_token_mass reads an operation as one token")
    return out


def _fit(flags: torch.Tensor, vocab: int) -> torch.Tensor:
    """Per-token flags cut or padded (False) to a model's vocabulary, which can be padded past its
    tokenizer's."""
    return torch.nn.functional.pad(flags[:vocab], (0, max(vocab - len(flags), 0)))


@torch.no_grad()
def next_token_mass(model, tokenizer, states: list[CopyState], batch_size: int = 64) -> list[dict[str, float]]:
    """Per state, the policy's next-token probability (temperature 1) summed over each class of
    `NEXT` (they add up to 1), and `greedy`: the class of its most likely token."""
    ops = operation_tokens(tokenizer)
    digits = digit_tokens(tokenizer)
    device = next(model.parameters()).device
    by_op: dict[str, dict[str, torch.Tensor]] = {}  # each operation's classes, fitted to the model's vocabulary
    out = []
    for start in range(0, len(states), batch_size):
        chunk = states[start:start + batch_size]
        ids = [tokenizer(s.prompt, add_special_tokens=False)["input_ids"] for s in chunk]
        width = max(map(len, ids))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        batch = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)  # right-padded
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
        logits = model(input_ids=batch, attention_mask=mask).logits
        last = logits[torch.arange(len(ids)), torch.tensor([len(x) - 1 for x in ids])].float()
        probs = last.softmax(-1).cpu()
        for s, p in zip(chunk, probs, strict=True):
            if s.op not in by_op:
                other_op = torch.stack([ops[o] for o in OPS if o not in (s.op, FLAW_OF[s.op])]).any(0)
                by_op[s.op] = {k: _fit(m, len(p)) for k, m in (("right", ops[s.op]), ("flaw", ops[FLAW_OF[s.op]]),
                                                               ("other_op", other_op), ("digit", digits))}
            classes = by_op[s.op]
            mass = {k: float(p[m].sum()) for k, m in classes.items()}
            mass["other"] = max(0.0, 1.0 - sum(mass.values()))
            top = int(p.argmax())
            mass["greedy"] = next((k for k, m in classes.items() if m[top]), "other")
            out.append(mass)
    return out


__all__ = ["NEXT", "CopyState", "Probe", "copy_states", "first_value", "next_token_mass", "operation_tokens",
           "probe_errors", "probes"]
