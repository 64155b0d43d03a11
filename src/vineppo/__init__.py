"""VinePPO reproduced: RL fine-tuning of LLMs for reasoning with Monte Carlo value estimates."""

__version__ = "0.1.0"
