"""Rotary position embeddings (rotate-half layout, as HF LLaMA / Qwen2) and their `rope_scaling` variants.

`rope_scaling` is held in model configs as a sorted tuple of `(key, value)` pairs (hashable, so a
config stays a static jit argument) and accepted as a dict (a `config.json`'s `rope_scaling`).
Supported `rope_type`s (HF names): `"default"` (none), `"linear"` (positions divided by `factor`)
and `"llama3"` (Llama 3.1's wavelength-dependent frequency scaling: `factor`, `low_freq_factor`,
`high_freq_factor`, `original_max_position_embeddings`). Others (`dynamic`, `yarn`, `longrope`,
...) change attention in ways this model does not implement and are refused by name.
"""
import math
from typing import Any, Optional

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
_REQUIRED = {"default": (), "linear": ("factor",),
             "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}

RopeScaling = Optional[tuple[tuple[str, Any], ...]]


def normalize_rope_scaling(value: Any, where: str = "rope_scaling") -> RopeScaling:
    """`None` or a sorted `((key, value), ...)` tuple from a dict / pair sequence; unsupported types raise."""
    if value is None:
        return None
    try:
        items = dict(value.items() if hasattr(value, "items") else (tuple(p) for p in value))
    except (TypeError, ValueError):
        raise NeurojaxError(f"{where} must be null or a mapping like {{'rope_type': 'linear', 'factor': 2.0}}, "
                            f"got {value!r}") from None
    kind = items.get("rope_type", items.get("type"))
    if kind not in SUPPORTED_ROPE_TYPES:
        raise NeurojaxError(f"{where}.rope_type={kind!r} is not supported; supported: {list(SUPPORTED_ROPE_TYPES)}")
    items = {k: v for k, v in items.items() if k != "type"}
    items["rope_type"] = kind
    for key in _REQUIRED[kind]:
        v = items.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise NeurojaxError(f"{where}.{key} must be a positive number for rope_type {kind!r}, got {v!r}")
    if kind == "default":
        return None
    return tuple(sorted(items.items()))


def rope_inv_freq(head_dim: int, theta: float, scaling: RopeScaling = None) -> Float[Array, "D/2"]:
    """Inverse frequencies `theta^(-2i/D)`, rescaled as `scaling` says (HF's `_compute_*_parameters`)."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    if scaling is None:
        return inv_freq
    s = dict(scaling)
    if s["rope_type"] == "linear":
        return inv_freq / s["factor"]
    # llama3: long wavelengths divided by `factor`, short ones kept, a smooth blend between.
    factor, low, high = float(s["factor"]), float(s["low_freq_factor"]), float(s["high_freq_factor"])
    old_len = float(s["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = jnp.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return jnp.where(medium, blended, scaled)


def rope_cos_sin(positions: Int[Array, "T"], head_dim: int, theta: float,
                 scaling: RopeScaling = None) -> tuple[Float[Array, "T D"], Float[Array, "T D"]]:
    """Rotary tables in the rotate-half layout: angle `p * inv_freq[i]` on channels i and i + D/2."""
    ang = positions.astype(jnp.float32)[:, None] * rope_inv_freq(head_dim, theta, scaling)[None, :]
    ang = jnp.concatenate([ang, ang], axis=-1)
    return jnp.cos(ang), jnp.sin(ang)


def apply_rope(x: Float[Array, "B T H D"], cos: Float[Array, "T D"], sin: Float[Array, "T D"]) -> Float[Array, "B T H D"]:
    """`x * cos + rotate_half(x) * sin`, rotate_half(x) = [-x2, x1]."""
    x1, x2 = jnp.split(x, 2, axis=-1)
    rot = jnp.concatenate([-x2, x1], axis=-1)
    return x * cos[None, :, None, :] + rot * sin[None, :, None, :]
