"""Flax linen modules of the MatMul-free LM, its presets and its mixer registries; the hybrid and Transformer++ LMs."""
from neurojax.nn.bitlinear import QUANTIZED, BitLinear
from neurojax.nn.config import PRESETS, ModelConfig, default_intermediate_size, preset
from neurojax.nn.glu import GLU
from neurojax.nn.hybrid import (
    HybridLM,
    hybrid_count_params,
    hybrid_decode_step,
    hybrid_init_params,
    hybrid_initial_state,
)
from neurojax.nn.hybrid_config import HYBRID_PRESETS, HybridConfig, hybrid_preset
from neurojax.nn.lm import Block, MatMulFreeLM, decode_step, init_params, initial_state
from neurojax.nn.loss import next_token_loss
from neurojax.nn.mlgru import MLGRU, lower_bounds
from neurojax.nn.norm import RMSNorm, rms_norm
from neurojax.nn.params import count_params, inference_variables, weight_memory_bits
from neurojax.nn.registry import CHANNEL_MIXERS, TOKEN_MIXERS, Registry
from neurojax.nn.transformer import (
    TransformerLM,
    TransformerState,
    transformer_count_params,
    transformer_decode_step,
    transformer_init_params,
    transformer_initial_state,
)
from neurojax.nn.transformer_config import TRANSFORMER_PRESETS, TransformerConfig, transformer_preset

__all__ = [
    "BitLinear", "Block", "CHANNEL_MIXERS", "GLU", "HYBRID_PRESETS", "HybridConfig", "HybridLM", "MLGRU", "MatMulFreeLM", "ModelConfig", "PRESETS",
    "QUANTIZED", "RMSNorm", "Registry", "TOKEN_MIXERS", "count_params", "decode_step",
    "default_intermediate_size", "hybrid_count_params", "hybrid_decode_step", "hybrid_init_params",
    "hybrid_initial_state", "hybrid_preset", "inference_variables", "init_params", "initial_state", "lower_bounds",
    "next_token_loss",
    "preset", "rms_norm", "weight_memory_bits",
    "TRANSFORMER_PRESETS", "TransformerConfig", "TransformerLM", "TransformerState", "transformer_count_params",
    "transformer_decode_step", "transformer_init_params", "transformer_initial_state", "transformer_preset",
]

# Registries of swappable parts (neurojax.nn.registry) and the built-ins beyond MLGRU / GLU.
from neurojax.nn.linear_layers import make_linear  # noqa: E402
from neurojax.nn.mixers import (  # noqa: E402
    LinearAttentionMixer,
    SlidingWindowMixer,
    SoftmaxAttentionMixer,
    SwiGLUMixer,
)
from neurojax.nn.quantizers import resolve_quantizer  # noqa: E402
from neurojax.nn.registry import LINEARS, NEURONS, QUANTIZERS  # noqa: E402

__all__ += ["LINEARS", "LinearAttentionMixer", "NEURONS", "QUANTIZERS", "SlidingWindowMixer", "SoftmaxAttentionMixer",
            "SwiGLUMixer", "make_linear", "resolve_quantizer"]
