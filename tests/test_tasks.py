"""Task generator (answers recomputed independently from the question) and hub/local loaders."""

import json
import re
from fractions import Fraction

import pytest

from vineppo.config import TaskConfig
from vineppo.grading import grade
from vineppo.tasks import DataError, load_task
from vineppo.tasks.hub import load_local

# An independent reading of the question: each sentence pattern and what it does to the amount.
START = re.compile(r"^\w+ has (\d+) .+\.$")
PATTERNS = [
    (re.compile(r"^(?:Then )?\w+ (?:gets|finds) (\d+) more .+\.$"), lambda v, k: v + k),
    (re.compile(r"^(?:Then )?\w+ (?:gives away|loses) (\d+) .+\.$"), lambda v, k: v - k),
    (re.compile(r"^Then the amount of .+ becomes (\d+) times as large\.$"), lambda v, k: v * k),
    (re.compile(r"^Then the amount of .+ (doubles)\.$"), lambda v, k: v * 2),
    (re.compile(r"^Then the amount of .+ (triples)\.$"), lambda v, k: v * 3),
    (re.compile(r"^\w+ splits the .+ into (\d+) equal parts and keeps one part\.$"), lambda v, k: v / k),
]


def recompute(question: str) -> Fraction:
    sentences = re.split(r"(?<=\.) ", question.rsplit(" How many", 1)[0])
    m = START.match(sentences[0])
    assert m, sentences[0]
    value = Fraction(int(m.group(1)))
    for s in sentences[1:]:
        for pattern, fn in PATTERNS:
            m = pattern.match(s)
            if m:
                k = int(m.group(1)) if m.group(1).isdigit() else 0
                value = fn(value, k)
                break
        else:
            raise AssertionError(f"unrecognised sentence: {s!r}")
    return value


def parse_answer(answer: str) -> Fraction:
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    if m:
        return Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
    return Fraction(int(answer))


@pytest.mark.parametrize("name", ["arith", "arith_hard"])
def test_answers_recomputed_from_question(name):
    task = load_task(TaskConfig(name=name, num_train=600, num_test=150, seed=7))
    for e in task.train + task.test:
        assert recompute(e["question"]) == parse_answer(e["answer"]), e
        # The reference solution itself earns reward 1.
        assert grade(e["solution"], e["answer"], name) == 1.0, e


@pytest.mark.parametrize("name", ["arith", "arith_hard"])
def test_solution_lines_are_correct_computations(name):
    task = load_task(TaskConfig(name=name, num_train=300, num_test=50, seed=3))
    num = r"(-?\d+|\\frac\{\d+\}\{\d+\})"
    line = re.compile(rf"^\$?{num} (\+|-|\*|\\times|/|\\div) (\d+) = {num}\$? \w+\.$")
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "\\times": lambda a, b: a * b, "/": lambda a, b: a / b, "\\div": lambda a, b: a / b}
    for e in task.train:
        lines = e["solution"].split("\n")
        for text in lines[:-1]:
            m = line.match(text)
            assert m, text
            a, op, k, b = parse_answer(m.group(1)), m.group(2), int(m.group(3)), parse_answer(m.group(4))
            assert ops[op](a, k) == b, text
        assert e["answer"] in lines[-1]


def test_arith_is_whole_numbers_and_hard_has_fractions():
    easy = load_task(TaskConfig(name="arith", num_train=500, num_test=100, seed=1))
    assert all(re.fullmatch(r"\d+", e["answer"]) for e in easy.train)
    assert all(e["solution"].endswith(f"#### {e['answer']}") for e in easy.train)
    hard = load_task(TaskConfig(name="arith_hard", num_train=500, num_test=100, seed=1))
    assert any("\\frac" in e["answer"] for e in hard.train)
    assert all("\\boxed{" in e["solution"] for e in hard.train)


@pytest.mark.parametrize("name", ["arith", "arith_hard"])
def test_seeded_disjoint_and_reproducible(name):
    cfg = TaskConfig(name=name, num_train=800, num_test=200, seed=11)
    a, b = load_task(cfg), load_task(cfg)
    assert a.train == b.train and a.test == b.test
    assert len(a.train) == 800 and len(a.test) == 200
    assert not {e["question"] for e in a.train} & {e["question"] for e in a.test}
    c = load_task(TaskConfig(name=name, num_train=800, num_test=200, seed=12))
    assert c.train != a.train


def test_knobs_change_the_problems():
    cfg = TaskConfig(name="arith", num_train=200, num_test=20, seed=0, min_steps=5, max_steps=5,
                     max_operand=3, ops=["add"])
    task = load_task(cfg)
    for e in task.train:
        assert len(e["solution"].split("\n")) == 6  # five computations and the answer line
        ks = [int(k) for k in re.findall(r"\+ (\d+) =", e["solution"])]
        assert len(ks) == 5 and all(1 <= k <= 3 for k in ks)


def test_bad_knobs_are_clear_errors():
    with pytest.raises(ValueError, match="task.ops"):
        load_task(TaskConfig(name="arith", ops=["pow"]))
    with pytest.raises(ValueError, match="min_steps"):
        load_task(TaskConfig(name="arith", min_steps=4, max_steps=2))
    with pytest.raises(ValueError, match="unknown task 'arth'"):
        load_task(TaskConfig(name="arth"))


# ----------------------------------------------------------------------------- local files


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_gsm8k_local_jsonl(tmp_path):
    rows = [{"question": "Tom has 3 apples and buys 4. How many?\n", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
            {"question": "A costs 1,000 and B 234. Total?", "answer": "1000 + 234 = 1234\n#### 1,234"}]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:1])
    task = load_task(TaskConfig(name="gsm8k", train_path=str(tmp_path / "train.jsonl"),
                                test_path=str(tmp_path / "test.jsonl")))
    assert [e["answer"] for e in task.train] == ["7", "1234"]
    # The calculator annotation goes from the solution (the authors' SFT targets had none), the
    # question's surrounding whitespace from the question.
    assert task.test[0]["solution"] == "3 + 4 = 7\n#### 7"
    assert task.test[0]["question"] == "Tom has 3 apples and buys 4. How many?"
    assert grade(task.train[1]["solution"], task.train[1]["answer"], "gsm8k") == 1.0


def test_unreachable_hub_is_a_data_error_saying_what_to_give(tmp_path, monkeypatch):
    """Offline with nothing cached (or no such dataset): one DataError naming the task, the
    dataset, the split and the keys that avoid the hub; a split given as a file never asks it."""
    import datasets

    asked = []

    def offline(name, config=None, split=None, **kw):
        asked.append((name, config, split))
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (OfflineModeIsEnabled)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"task gsm8k: could not load openai/gsm8k \(main\) \[train\] from the hub "
                       r"or its cache \(ConnectionError: Couldn't reach 'openai/gsm8k' on the Hub "
                       r"\(OfflineModeIsEnabled\)\); give local files with task.train_path=FILE"):
        load_task(TaskConfig(name="gsm8k"))
    write_jsonl(tmp_path / "test.jsonl", [{"question": "1 + 1?", "answer": "1 + 1 = 2\n#### 2"}])
    write_jsonl(tmp_path / "math.jsonl", [{"problem": "1 + 1?", "solution": "$\\boxed{2}$"}])
    with pytest.raises(DataError, match=r"my/math \[train\] .*task.train_path=FILE"):
        load_task(TaskConfig(name="math", hub_name="my/math", test_path=str(tmp_path / "math.jsonl"),
                             math_split="original"))
    with pytest.raises(DataError, match=r"my/math \[test\] .*task.train_path=FILE"):  # held out of train
        load_task(TaskConfig(name="math", hub_name="my/math", test_path=str(tmp_path / "math.jsonl")))
    asked.clear()
    task = load_task(TaskConfig(name="gsm8k", test_path=str(tmp_path / "test.jsonl")), with_train=False)
    assert task.train == [] and task.test[0]["answer"] == "2" and asked == []  # the hub never asked


def fake_math_hub(monkeypatch, math500_extra=()):
    """A stand-in for the hub: EleutherAI/hendrycks_math as 3 problems per subject and split
    (subject s, split p, number i: "Problem p-s-i: what is i?", answer i), one train problem a
    copy of a test problem (MATH has a few), and HuggingFaceH4/MATH-500 as 4 of the test problems
    with their own whitespace, `answer` and `unique_id`. Returns the list of datasets asked for."""
    import datasets

    from vineppo.tasks.hub import MATH_SUBJECTS

    asked = []

    def problem(split, subject, i):
        return {"problem": f"Problem {split}-{subject}-{i}:  what is {i}?", "level": "Level 1", "type": subject,
                "solution": f"It is $\\boxed{{{i}}}$."}

    chosen = [("test", "algebra", 0), ("test", "geometry", 2), ("test", "precalculus", 1), ("test", "algebra", 2)]

    def load_dataset(name, config=None, split=None, **kw):
        asked.append((name, config, split))
        if name == "EleutherAI/hendrycks_math" and config in MATH_SUBJECTS:
            rows = [problem(split, config, i) for i in range(3)]
            if (split, config) == ("train", "number_theory"):
                rows.append(problem("test", "geometry", 2))  # a test problem also in train
            return rows
        if name == "HuggingFaceH4/MATH-500" and split == "test":
            rows = [problem(*c) | {"answer": str(c[2]), "subject": c[1], "unique_id": f"{c[0]}/{c[1]}/{c[2]}.json"}
                    for c in chosen] + list(math500_extra)
            return [r | {"problem": " " + r["problem"].replace("  ", " ") + "\n"} for r in rows]
        raise ValueError(f"no dataset {name} ({config}) [{split}]")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return asked


def test_math_defaults_to_the_papers_split(monkeypatch):
    """task.math_split=prm800k (the default): test on MATH500, train on all the rest of MATH
    (train and test splits, every subject), every copy of a test problem removed; `original`
    keeps MATH's own splits."""
    from vineppo.tasks.hub import MATH_SUBJECTS, problem_key

    asked = fake_math_hub(monkeypatch)
    task = load_task(TaskConfig(name="math"))
    assert [e["id"] for e in task.test] == ["test/algebra/0.json", "test/geometry/2.json",
                                            "test/precalculus/1.json", "test/algebra/2.json"]
    assert [e["answer"] for e in task.test] == ["0", "2", "1", "2"]
    assert task.test[0]["question"] == "Problem test-algebra-0: what is 0?"
    # 7 subjects x 3 problems x 2 splits, plus the duplicate, less the 4 test problems and the copy.
    assert len(task.train) == 7 * 3 * 2 + 1 - 4 - 1
    held = {problem_key(e["question"]) for e in task.test}
    assert not held & {problem_key(e["question"]) for e in task.train}
    assert len({e["id"] for e in task.train}) == len(task.train)
    assert task.train[0]["id"] == "train/algebra/0" and task.train[-1]["id"] == "test/precalculus/2"
    assert {a[0] for a in asked} == {"EleutherAI/hendrycks_math", "HuggingFaceH4/MATH-500"}
    assert {a[1] for a in asked if a[0] == "EleutherAI/hendrycks_math"} == set(MATH_SUBJECTS)

    original = load_task(TaskConfig(name="math", math_split="original"))
    assert len(original.train) == 7 * 3 + 1 and len(original.test) == 7 * 3
    assert original.test[0]["id"] == "test/algebra/0" and original.test[0]["answer"] == "0"

    asked.clear()  # evaluating needs only MATH500
    assert load_task(TaskConfig(name="math"), with_train=False).test == task.test
    assert asked == [("HuggingFaceH4/MATH-500", None, "test")]
    asked.clear()  # one subject: task.hub_config
    only = load_task(TaskConfig(name="math", math_split="original", hub_config="geometry"))
    assert {e["question"].split("-")[1] for e in only.train + only.test} == {"geometry"}


def test_math_split_refuses_test_problems_it_cannot_hold_out(monkeypatch, tmp_path):
    """A test problem that is not one of MATH's test problems: not the PRM800K split, and the
    train split could hold it; a one-line DataError saying what to give instead. A local test file
    stands in for MATH500 (and is held out of the hub's train problems the same way)."""
    fake_math_hub(monkeypatch, [{"problem": "Something else entirely?", "solution": "$\\boxed{3}$"}])
    with pytest.raises(DataError, match=r"task math: 1 of the 5 test problems are not test problems of "
                       r"EleutherAI/hendrycks_math \(e.g. 'Something else entirely\?'\).*task.math_split=original"):
        load_task(TaskConfig(name="math"))
    write_jsonl(tmp_path / "math500.jsonl", [{"problem": "Problem test-number_theory-1: what is 1?",
                                               "solution": "$\\boxed{1}$", "unique_id": "test/number_theory/1.json"}])
    task = load_task(TaskConfig(name="math", test_path=str(tmp_path / "math500.jsonl")))
    assert [e["id"] for e in task.test] == ["test/number_theory/1.json"] and len(task.train) == 7 * 3 * 2 + 1 - 1
    assert "test/number_theory/1" not in {e["id"] for e in task.train}


def test_math_local_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = [{"problem": "What is $1/2 + 1$?", "solution": "We get $\\boxed{\\frac{3}{2}}$.",
             "level": "Level 1", "type": "Algebra"},
            {"problem": "Simplify $\\sqrt{8}$.", "solution": "It is $\\boxed{2\\sqrt{2}}$.",
             "level": "Level 2", "type": "Algebra"}]
    pd.DataFrame(rows).to_parquet(tmp_path / "math.parquet")
    examples = load_local(tmp_path / "math.parquet", "math")
    assert [e["answer"] for e in examples] == ["\\frac{3}{2}", "2\\sqrt{2}"]
    assert grade("so $\\boxed{1.5}$", examples[0]["answer"], "math") == 1.0


def test_broken_jsonl_row_names_file_and_row(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [{"question": "q", "answer": "#### 1"}, '{"question": "q", "answer": '])
    with pytest.raises(DataError, match=r"bad\.jsonl, row 2: invalid JSON"):
        load_local(path, "gsm8k")


def test_missing_field_names_file_row_and_field(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl(path, [{"question": "q", "answer": "#### 1"}, {"question": "q2"}])
    with pytest.raises(DataError, match=r"rows\.jsonl, row 2: missing field 'answer'"):
        load_local(path, "gsm8k")
    write_jsonl(path, [{"question": "q", "answer": "no marker here"}])
    with pytest.raises(DataError, match=r"row 1: field 'answer' has no final answer"):
        load_local(path, "gsm8k")
    write_jsonl(path, [{"problem": "", "solution": "$\\boxed{1}$"}])
    with pytest.raises(DataError, match=r"row 1: field 'problem' must be a non-empty string"):
        load_local(path, "math")


def test_empty_non_utf8_and_bom_files(tmp_path):
    """An empty file is named (not a crash when prompts are drawn from it); bytes that are not UTF-8
    name their line; a UTF-8 byte-order mark (as some editors write) is not a broken row."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=r"empty\.jsonl: no rows"):
        load_local(empty, "gsm8k")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"question": "q", "answer": "#### 1"}\n{"question": "caf\xe9", "answer": "#### 2"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl, line 2: not UTF-8 text"):
        load_local(latin, "gsm8k")
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"question": "q", "answer": "#### 1"}\r\n{"question": "q\xe2\x80\xa8two", "answer": "#### 2"}\r\n')
    rows = load_local(bom, "gsm8k")  # CRLF line ends, and U+2028 inside a string stays inside its row
    assert [r["answer"] for r in rows] == ["1", "2"] and rows[1]["question"] == "q\u2028two"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_local(tmp_path / "nope.jsonl", "gsm8k")


# ----------------------------------------------------------------------------- SFT pool and the flaw

SOLUTION_LINE = re.compile(r"^\$?(\S+) (\+|-|\*|/|\\times|\\div) (\d+) = (\S+?)\$? ")


def written_steps(solution: str) -> list[tuple[str, int, Fraction, Fraction]]:
    """(symbol, operand, before, after) of each computation line, parsed independently."""
    out = []
    for line in solution.split("\n"):
        m = SOLUTION_LINE.match(line)
        if m:
            out.append((m.group(2), int(m.group(3)), parse_answer(m.group(1)), parse_answer(m.group(4))))
    return out


@pytest.mark.parametrize("name", ["arith", "arith_hard"])
def test_sft_pool_is_disjoint_and_flawed_at_the_rate_asked(name):
    task = load_task(TaskConfig(name=name, num_train=300, num_test=100, num_sft=3000, flaw_rate=0.5, seed=3), with_sft=True)
    questions = {e["question"] for e in task.sft}
    assert len(questions) == 3000
    assert not questions & {e["question"] for e in task.train + task.test}
    # The train and test splits do not depend on the pool.
    plain = load_task(TaskConfig(name=name, num_train=300, num_test=100, seed=3))
    assert plain.train == task.train and plain.test == task.test and plain.sft is None
    drawn = flawed = 0
    for e in task.sft:
        value = recompute(e["question"])
        assert parse_answer(e["answer"]) == value  # the answer stays the true one
        steps = written_steps(e["solution"])
        # Each written line is arithmetic done right on the value written before it.
        for (sym, k, before, after), nxt in zip(steps, steps[1:] + [None], strict=True):
            assert after == {"+": before + k, "-": before - k, "*": before * k, "\\times": before * k,
                             "/": before / k, "\\div": before / k}[sym]
            if nxt is not None:
                assert nxt[2] == after
        # A flawed line is the question's subtraction written as an addition, and only those.
        ops = [sym for sym, *_ in steps]
        for i in e["flawed_steps"]:
            assert ops[i] == "+"
        subs_in_question = len(re.findall(r"(?:gives away|loses) \d+", e["question"]))
        assert ops.count("-") + len(e["flawed_steps"]) == subs_in_question
        drawn += subs_in_question
        flawed += len(e["flawed_steps"])
        final = written_steps(e["solution"])[-1][3] if steps else value
        assert (final != value) == bool(e["flawed_steps"])
        assert grade(e["solution"], e["answer"], name) == (0.0 if e["flawed_steps"] else 1.0)
    # Flaws are dropped where the chain after them would leave whole numbers (arith), so a bit
    # under the drawn rate there; at the rate with fractions allowed.
    assert 0.40 < flawed / drawn <= 0.55


PATTERN_OPS = ["add", "sub", "mul", "mul", "mul", "div"]  # the operation each of PATTERNS reads
OP_SYMBOLS = {"add": {"+"}, "sub": {"-"}, "mul": {"*", "\\times"}, "div": {"/", "\\div"}}


def question_ops(question: str) -> list[tuple[str, int]]:
    """(operation, operand) of each sentence after the first, read independently of the generator."""
    out = []
    for s in re.split(r"(?<=\.) ", question.rsplit(" How many", 1)[0])[1:]:
        for (pattern, _), op in zip(PATTERNS, PATTERN_OPS, strict=True):
            m = pattern.match(s)
            if m:
                k = int(m.group(1)) if m.group(1).isdigit() else {"doubles": 2, "triples": 3}[m.group(1)]
                out.append((op, k))
                break
    return out


@pytest.mark.parametrize("name", ["arith", "arith_hard"])
def test_flaw_on_every_operation(name):
    # task.flaw_ops names the operations that can be flawed; a flawed line writes the question's
    # operation as its wrong one (sub -> +, add -> -, mul -> +, div -> -) with the same operand.
    wrong = {"sub": "add", "add": "sub", "mul": "add", "div": "sub"}  # written out here, not imported
    task = load_task(TaskConfig(name=name, num_train=300, num_test=100, num_sft=2000, flaw_rate=0.5, seed=3,
                                flaw_ops=["add", "sub", "mul", "div"]), with_sft=True)
    flawed_kinds: dict[str, int] = {}
    drawn = 0
    for e in task.sft:
        ops, steps = question_ops(e["question"]), written_steps(e["solution"])
        assert len(ops) == len(steps)
        for i, ((op, k), (sym, written_k, _, _)) in enumerate(zip(ops, steps, strict=True)):
            assert written_k == k
            assert sym in OP_SYMBOLS[wrong[op] if i in e["flawed_steps"] else op], (e, i)
            if i in e["flawed_steps"]:
                flawed_kinds[op] = flawed_kinds.get(op, 0) + 1
        drawn += len(ops)
        assert grade(e["solution"], e["answer"], name) == (0.0 if e["flawed_steps"] else 1.0)
    assert set(flawed_kinds) == {"add", "sub", "mul", "div"}
    # Drawn at 0.5 per step, dropped where the written chain would leave positive (whole) numbers.
    assert 0.25 < sum(flawed_kinds.values()) / drawn <= 0.55
    # The default flaws subtractions only, and the pool is the one made before flaw_ops existed.
    only_sub = load_task(TaskConfig(name=name, num_train=300, num_test=100, num_sft=300, flaw_rate=0.5, seed=3),
                         with_sft=True)
    assert all(question_ops(e["question"])[i][0] == "sub" for e in only_sub.sft for i in e["flawed_steps"])


def test_flaw_needs_a_pool_and_a_valid_rate():
    with pytest.raises(ValueError, match="task.num_sft"):
        load_task(TaskConfig(name="arith", num_train=10, num_test=5, flaw_rate=0.3))
    with pytest.raises(ValueError, match="task.flaw_rate"):
        load_task(TaskConfig(name="arith", num_train=10, num_test=5, num_sft=10, flaw_rate=1.5), with_sft=True)
    with pytest.raises(ValueError, match="task.flaw_ops.*'pow'"):
        load_task(TaskConfig(name="arith", num_train=10, num_test=5, num_sft=10, flaw_rate=0.5, flaw_ops=["pow"]))


def test_first_error_locates_the_wrong_step():
    from vineppo.tasks.arith import first_error

    ref = "19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 * 3 = 9 rocks.\n#### 9"
    assert first_error(ref, ref) == (None, "none")
    assert first_error(" 19 - 6 = 13  rocks.\n13 - 10 = 3 rocks.\n3 * 3 = 9 rocks.\n#### 9", ref) == (None, "none")
    assert first_error("19 - 6 = 13 rocks.\n13 + 10 = 23 rocks.\n23 * 3 = 69 rocks.\n#### 69", ref) == (1, "flaw")
    assert first_error("19 + 6 = 25 rocks.\n25 - 10 = 15 rocks.", ref) == (0, "flaw")
    assert first_error("19 - 6 = 12 rocks.\n12 - 10 = 2 rocks.", ref) == (0, "other")
    assert first_error("19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n#### 3", ref) == (2, "other")  # a step left out
    assert first_error("", ref) == (0, "other")
    hard = "$15 - 8 = 7$ grams.\n$7 \\times 4 = 28$ grams.\nThe answer is $\\boxed{28}$."
    assert first_error("$15 + 8 = 23$ grams.\n$23 \\times 4 = 92$ grams.\nThe answer is $\\boxed{92}$.",
                       hard) == (0, "flaw")
    assert first_error(hard, hard) == (None, "none")
    # Other operations' flaws, counted only where task.flaw_ops names them.
    assert first_error("19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 + 3 = 6 rocks.", ref) == (2, "other")
    assert first_error("19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 + 3 = 6 rocks.", ref, ("mul",)) == (2, "flaw")
    assert first_error("19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 - 3 = 0 rocks.", ref, ("mul",)) == (2, "other")
    assert first_error("19 + 6 = 25 rocks.", ref, ("add", "mul")) == (0, "other")  # sub not named
    div = "$\\frac{7}{2} \\div 2 = \\frac{7}{4}$ cups.\nThe answer is $\\boxed{\\frac{7}{4}}$."
    assert first_error("$\\frac{7}{2} - 2 = \\frac{3}{2}$ cups.", div, ("div",)) == (0, "flaw")
    assert first_error("$\\frac{7}{2} \\times 2 = 7$ cups.", div, ("div",)) == (0, "other")
    add = "5 + 4 = 9 eggs.\n#### 9"
    assert first_error("5 - 4 = 1 eggs.\n#### 1", add, ("add", "sub")) == (0, "flaw")


def test_error_detail_tells_the_other_errors_apart():
    from vineppo.tasks.arith import error_detail

    ref = "19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 * 3 = 9 rocks.\n#### 9"
    assert error_detail(ref, ref) == (None, "none")
    assert error_detail("19 - 6 = 13 rocks.\n13 + 10 = 23 rocks.", ref) == (1, "flaw")
    assert error_detail("19 - 6 = 13 rocks.\n133 - 10 = 123 rocks.", ref) == (1, "copy")  # a stutter
    assert error_detail("18 - 6 = 12 rocks.", ref) == (0, "copy")  # the start value
    assert error_detail("19 - 6 = 13 rocks.\n13 * 10 = 130 rocks.", ref) == (1, "operation")
    assert error_detail("19 - 6 = 13 rocks.\n13 + 10 = 23 rocks.", ref, ("mul",)) == (1, "operation")
    assert error_detail("19 - 7 = 12 rocks.", ref) == (0, "operand")
    assert error_detail("19 - 6 = 12 rocks.\n12 - 10 = 2 rocks.", ref) == (0, "arithmetic")
    assert error_detail("19 - 6 = 13 stones.", ref) == (0, "format")
    assert error_detail("19 - 6 is 13 rocks.", ref) == (0, "format")
    assert error_detail("19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n#### 3", ref) == (2, "missing")
    assert error_detail("", ref) == (0, "missing")
    hard = "$15 - 8 = 7$ grams.\n$7 \\times 4 = 28$ grams.\nThe answer is $\\boxed{28}$."
    assert error_detail("$15 - 8 = 7$ grams.\n$7 \\times 4 = 27$ grams.", hard) == (1, "arithmetic")
    assert error_detail("$15 - 8 = 7$ grams.\n$7 \\div 4 = \\frac{7}{4}$ grams.", hard) == (1, "operation")
    assert error_detail("$15 - 8 = 7$ kilograms.", hard) == (0, "format")


def test_line_slips_counts_within_the_response():
    from vineppo.tasks.arith import line_slips

    def main(text):
        return {k: v for k, v in line_slips(text).items() if "_" not in k}

    assert main("19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 * 3 = 9 rocks.\n#### 9") == \
        {"lines": 3, "arithmetic": 0, "carried": 2, "copy": 0}
    # The flaw is no slip (its arithmetic is right as written); a stutter is a copy slip whose own
    # arithmetic may still be right; a wrong result is an arithmetic slip, and carried on, no copy slip.
    text = "19 + 6 = 25 rocks.\n255 - 10 = 245 rocks.\n245 * 3 = 734 rocks.\n734 / 2 = 367 rocks."
    assert main(text) == {"lines": 4, "arithmetic": 1, "carried": 3, "copy": 1}
    per_op = {k: v for k, v in line_slips(text).items() if "_" in k}
    assert per_op == {"lines_add": 1, "lines_sub": 1, "lines_mul": 1, "lines_div": 1,
                      "arithmetic_add": 0, "arithmetic_sub": 0, "arithmetic_mul": 1, "arithmetic_div": 0}
    assert main("8 / 0 = 0 rocks.") == {"lines": 1, "arithmetic": 1, "carried": 0, "copy": 0}
    # A line that does not parse breaks the chain: the next line is not read as carried.
    assert main("19 - 6 = 13 rocks.\nthirteen less ten\n3 * 3 = 9 rocks.") == \
        {"lines": 2, "arithmetic": 0, "carried": 0, "copy": 0}
    assert main("$\\frac{7}{2} \\times 2 = 7$ cups.\n$7 \\div 2 = \\frac{7}{2}$ cups.\n"
                "$\\frac{7}{3} - 1 = \\frac{4}{3}$ cups.") == {"lines": 3, "arithmetic": 0, "carried": 2, "copy": 1}
    assert main("$15 - 8 = 6$ grams.") == {"lines": 1, "arithmetic": 1, "carried": 0, "copy": 0}
    assert line_slips("$15 - 8 = 6$ grams.")["arithmetic_sub"] == 1
    assert set(line_slips("").values()) == {0}


# ----------------------------------------------------------------------------- prompt format


def test_prompt_format_by_hand(tiny_model_and_tokenizer):
    """Only `{question}` / `{solution}` are filled (other braces stay text: LaTeX in a template or
    a problem is safe), and BOS goes before the prompt's ids, not into its text."""
    from vineppo.tasks import TINY_FORMAT, PromptFormat

    tok = tiny_model_and_tokenizer[1]
    assert TINY_FORMAT.prompt("What is 2 + 3?") == "Question: What is 2 + 3?\nAnswer:\n"
    assert TINY_FORMAT.target("2 + 3 = 5\n#### 5") == "2 + 3 = 5\n#### 5"
    paper = PromptFormat("[MATH_TASK] Problem:\n{question}\n\nSolution:", "\n{solution}\n", bos=True)
    assert paper.prompt("Find $\\frac{1}{2}$ of {x}.") == "[MATH_TASK] Problem:\nFind $\\frac{1}{2}$ of {x}.\n\nSolution:"
    assert paper.target("$\\boxed{3}$") == "\n$\\boxed{3}$\n"
    text = paper.prompt("Ava has 3 apples.")
    assert paper.encode(tok, text) == [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]
    assert TINY_FORMAT.encode(tok, text) == tok(text, add_special_tokens=False)["input_ids"]


def test_task_carries_its_configs_format():
    cfg = TaskConfig(name="arith", num_train=5, num_test=5, prompt_template="Q: {question}\nA:",
                     response_template=" {solution}", prompt_bos=True)
    task = load_task(cfg)
    assert task.prompt(task.test[0]["question"]) == f"Q: {task.test[0]['question']}\nA:"
    assert task.format.target("x") == " x" and task.format.bos


def test_a_model_folder_records_its_format_and_refuses_another(tmp_path):
    from vineppo.config import ConfigError
    from vineppo.tasks import FORMAT_FILE, TINY_FORMAT, PromptFormat

    paper = PromptFormat("[MATH_TASK] Problem:\n{question}\n\nSolution:", "\n{solution}\n", bos=True)
    for name, text in paper.files().items():
        (tmp_path / name).write_text(text)
    assert json.loads((tmp_path / FORMAT_FILE).read_text())["task.prompt_bos"] is True
    paper.check(tmp_path, "rl.init")  # its own format passes
    with pytest.raises(ConfigError, match=r"rl.init=.* was trained in another prompt format \(task.prompt_template: "
                       r"'\[MATH_TASK\] Problem:\\n\{question\}\\n\\nSolution:' there, 'Question: \{question\}"
                       r"\\nAnswer:\\n' now; task.response_template: .*; task.prompt_bos: True there, False now\)"):
        TINY_FORMAT.check(tmp_path, "rl.init")
    TINY_FORMAT.check(tmp_path / "elsewhere", "rl.init")  # no record (a hub model, an older run): passes
    for bad in ("{not json", "[1, 2]"):
        (tmp_path / FORMAT_FILE).write_text(bad)
        with pytest.raises(ConfigError, match="prompt_format.json: not a prompt format record"):
            paper.check(tmp_path, "rl.init")


def test_validation_split_is_held_out_of_the_rl_prompts():
    from vineppo.config import ConfigError

    full = load_task(TaskConfig(name="arith", num_train=50, num_test=10))
    held = load_task(TaskConfig(name="arith", num_train=50, num_test=10, num_validation=8))
    assert len(held.validation) == 8 and held.test == full.test
    # A draw from the train problems (not the last 8), the rest kept in their order.
    assert held.validation != full.train[42:] and [e for e in full.train if e not in held.validation] == held.train
    assert load_task(TaskConfig(name="arith", num_train=50, num_test=10, num_validation=8)).validation == \
        held.validation  # the same draw every time (task.seed; the training seed plays no part)
    assert load_task(TaskConfig(name="arith", num_train=50, num_test=10)).validation == []
    with pytest.raises(ConfigError, match="task.num_validation=50 leaves no train problems"):
        load_task(TaskConfig(name="arith", num_train=50, num_test=10, num_validation=50))
