"""Method labels from recorded `rl` configs (vineppo.analysis.runs)."""

import hashlib

from vineppo.analysis.runs import method_labels


def test_vineppo_step_rules_are_methods_of_their_own():
    pattern = r"(?m)\n|^\d+(?= )"
    runs = {"a": ("vineppo", {"vine_k": 9}), "b": ("vineppo", {"vine_k": 9, "vine_steps": "auto"}),
            "c": ("vineppo", {"vine_k": 9, "vine_steps": "response"}),
            "d": ("vineppo", {"vine_k": 9, "vine_steps": f"regex:{pattern}"}),
            "e": ("ppo", {"vine_steps": "response"}),  # not VinePPO: the setting does nothing
            "f": ("vineppo", {"vine_k": 9, "vine_steps": "lines", "whiten_advantages": False})}
    digest = hashlib.sha1(pattern.encode()).hexdigest()[:6]
    assert method_labels(runs) == {"a": "vineppo", "b": "vineppo", "c": "vineppo_response",
                                   "d": f"vineppo_regex{digest}", "e": "ppo", "f": "vineppo_lines_nowhiten"}
    # With two K as well, the K comes first.
    runs["g"] = ("vineppo", {"vine_k": 3, "vine_steps": "response"})
    assert method_labels(runs)["g"] == "vineppo_k3_response"
