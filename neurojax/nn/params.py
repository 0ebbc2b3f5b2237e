"""Parameter bookkeeping: counts without allocation, inference variables, weight memory."""
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.nn.bitlinear import QUANTIZED
from neurojax.nn.config import ModelConfig

TERNARY_BITS_PACKED = 2  # 4 codes per byte, as stored by a packed export / kernel


def model_init_params(model: Any, rng: jax.Array, seq_len: int = 1) -> dict:
    """Initialise any neurojax LM's parameters (the `params` collection) on a `[1, seq_len]` batch."""
    return model.init(rng, jnp.zeros((1, seq_len), jnp.int32))["params"]


def model_abstract_params(model: Any) -> Any:
    """Shapes and dtypes of any neurojax LM's parameters, from `jax.eval_shape` (nothing is allocated)."""
    return jax.eval_shape(lambda k: model_init_params(model, k), jax.random.PRNGKey(0))


def leaf_count(params: Any) -> int:
    """Number of scalars in a params pytree (arrays or `ShapeDtypeStruct`s)."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def one_token_step(model: Any, variables: Any, tokens: Any, state: Any, owner: str) -> tuple:
    """Advance every sequence by one token: `tokens [B]` -> (next-token logits `[B, V]`, new state)."""
    if jnp.ndim(tokens) != 1:
        raise NeurojaxError(f"{owner} takes tokens of shape [batch], got {jnp.shape(tokens)}")
    logits, state = model.apply(variables, tokens[:, None], state)
    return logits[:, 0], state


def abstract_params(config: ModelConfig) -> Any:
    """Shapes and dtypes of the MatMul-free LM's parameters (nothing is allocated)."""
    from neurojax.nn.lm import MatMulFreeLM

    return model_abstract_params(MatMulFreeLM(config))


def count_params(config_or_params: Any) -> int:
    """Number of scalar parameters of a config (no allocation) or of a params pytree."""
    return leaf_count(abstract_params(config_or_params) if isinstance(config_or_params, ModelConfig)
                      else config_or_params)


def _is_projection_weight(path: tuple, leaf: Any) -> bool:
    return path[-1] == "weight" and len(leaf.shape) == 2


def weight_memory_bits(config: ModelConfig, float_bits: int = 32) -> dict[str, int]:
    """Bits needed to store the model's weights for inference.

    Ternary projection weights count `TERNARY_BITS_PACKED` bits each plus one
    float scale per tensor; everything else (embedding, norms, lower bounds, and
    every projection when `config.full_precision` or a non-ternary `config.linear`) counts `float_bits`.
    Returns `{"projection": ..., "other": ..., "total": ...}`.
    """
    flat = flax.traverse_util.flatten_dict(abstract_params(config))
    proj = other = 0
    for path, leaf in flat.items():
        n = int(np.prod(leaf.shape))
        if _is_projection_weight(path, leaf):
            proj += n * TERNARY_BITS_PACKED + float_bits if config.ternary else n * float_bits
        else:
            other += n * float_bits
    return {"projection": proj, "other": other, "total": proj + other}


def inference_variables(model: Any, params: Any) -> dict:
    """Precompute every BitLinear's packed ternary codes and scale once, for decoding.

    Returns `{"params": params without latent projection weights, "quantized": packed}`;
    `model.apply` on it computes the same integer products as on `{"params": params}`
    (logits equal to float round-off) without re-ternarizing each step, holding 2 bits instead of 32 per weight
    (`packed` uint8 `[K4, out]`, see `neurojax.kernels.ternary_matmul.pack`).
    Models without ternary projections (`ModelConfig.ternary` false) are returned unchanged.
    """
    if not model.config.ternary:  # full precision, or a linear layer other than "bitlinear"
        return {"params": params}
    # Jitted, so the scales come from the same compiled reductions as a jitted latent forward.
    collect = jax.jit(lambda p: model.apply({"params": p}, jnp.zeros((1, 1), jnp.int32), mutable=[QUANTIZED])[1])
    quantized = collect(params)[QUANTIZED]
    qflat = flax.traverse_util.flatten_dict(quantized)
    owners = {path[:-1] for path in qflat}
    pflat = {p: v for p, v in flax.traverse_util.flatten_dict(params).items()
             if not (p[-1] == "weight" and p[:-1] in owners)}
    return {"params": flax.traverse_util.unflatten_dict(pflat), QUANTIZED: quantized}
