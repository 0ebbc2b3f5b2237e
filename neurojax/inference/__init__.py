"""Inference: next-token sampling and autoregressive generation with the recurrent state carried."""
from neurojax.inference.decode import generate
from neurojax.inference.sampling import SamplingConfig, filter_logits, greedy, sample, sample_with

__all__ = ["SamplingConfig", "filter_logits", "generate", "greedy", "sample", "sample_with"]
