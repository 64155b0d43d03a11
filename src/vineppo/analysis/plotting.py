"""One look for every figure: seaborn's whitegrid theme, headless backend, PNG and PDF side by side."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen needed) with the shared seaborn theme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt


def save(fig, out: Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.pdf under `out` and close the figure."""
    import matplotlib.pyplot as plt

    paths = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths


METHOD_ORDER = ["sft", "restem", "dpo_plus", "ppo", "vineppo", "grpo", "rloo"]


def method_palette() -> dict[str, tuple[float, float, float]]:
    """One colour per method, the same in every figure."""
    import seaborn as sns

    return dict(zip(METHOD_ORDER, sns.color_palette("tab10", len(METHOD_ORDER)), strict=True))
