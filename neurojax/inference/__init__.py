"""Inference: next-token sampling and autoregressive generation with the recurrent state carried."""
from neurojax.inference.decode import generate, generate_program_memory
from neurojax.inference.sampling import SamplingConfig, filter_logits, greedy, sample, sample_with

__all__ = ["SamplingConfig", "filter_logits", "generate", "generate_program_memory", "greedy", "sample", "sample_with"]
