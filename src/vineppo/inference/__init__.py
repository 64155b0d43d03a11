"""Inference engines: one interface (`Engine.generate`) for rollouts, evaluation and MC values."""

from vineppo.inference.base import Completion, Engine, SamplingParams
from vineppo.inference.hf import HFEngine

__all__ = ["Completion", "Engine", "HFEngine", "SamplingParams"]
