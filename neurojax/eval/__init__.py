"""Evaluation: language-model metrics (loss, perplexity, bits per byte)."""
from neurojax.eval.lm_metrics import evaluate_lm

__all__ = ["evaluate_lm"]
