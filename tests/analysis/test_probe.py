"""vineppo.analysis.probe: fixed inputs cut before each number of a reference solution."""

import pytest

from vineppo.analysis.probe import Probe, first_value, probe_errors, probes
from vineppo.inference import Completion
from vineppo.tasks import PROMPT

EX = {"question": "Ann has 25 beads. She loses 10. It triples.",
      "solution": "25 - 10 = 15 beads.\n15 * 3 = 45 beads.\n#### 45"}


def test_probes_cut_before_each_result_and_carried_value():
    base = PROMPT.format(question=EX["question"])
    assert probes([EX]) == [
        Probe(base + "25 - 10 =", "15", "arithmetic", "sub"),
        Probe(base + "25 - 10 = 15 beads.\n", "15", "copy"),
        Probe(base + "25 - 10 = 15 beads.\n15 * 3 =", "45", "arithmetic", "mul"),
    ]
    boxed = {"question": "q", "solution": "$7 \\div 2 = \\frac{7}{2}$ cups.\n$\\frac{7}{2} + 1 = \\frac{9}{2}$ cups.\n"
                                          "The answer is $\\boxed{\\frac{9}{2}}$."}
    got = probes([boxed])
    assert [(p.target, p.kind, p.op) for p in got] == [
        ("\\frac{7}{2}", "arithmetic", "div"), ("\\frac{7}{2}", "copy", None), ("\\frac{9}{2}", "arithmetic", "add")]
    assert got[2].prompt.endswith("cups.\n$\\frac{7}{2} + 1 =")


def test_first_value():
    assert first_value(" 15 beads.") == "15"
    assert first_value("15 * 3 = 45") == "15"
    assert first_value("$\\frac{7}{2} + 1 = 4$") == "\\frac{7}{2}"
    assert first_value(" \\frac{9}{2}$ cups.") == "\\frac{9}{2}"
    assert first_value(" 45.") == "45"
    assert first_value("") == ""


class Scripted:
    """An engine that writes a fixed continuation per prompt."""

    def __init__(self, texts):
        self.texts = texts

    def generate(self, prompts, params):
        assert params.temperature == 0.0 and params.n == 1
        return [[Completion(self.texts[p], [], [], "stop")] for p in prompts]


def test_probe_errors_count_per_kind_and_operation():
    items = probes([EX])
    right = Scripted({items[0].prompt: " 15 beads.", items[1].prompt: "15 * 3", items[2].prompt: " 45 beads."})
    assert probe_errors(right, items) == {"probe_arithmetic": 0.0, "probe_arithmetic_mul": 0.0,
                                          "probe_arithmetic_sub": 0.0, "probe_copy": 0.0}
    stutter = Scripted({items[0].prompt: " 16 beads.", items[1].prompt: "155 * 3", items[2].prompt: " 45 beads."})
    assert probe_errors(stutter, items) == pytest.approx({"probe_arithmetic": 0.5, "probe_arithmetic_mul": 0.0,
                                                          "probe_arithmetic_sub": 1.0, "probe_copy": 1.0})
