"""Post-training calibration: observe the float model's activations at every quantization point.

The float model sows its activations into the `intermediates` collection; an observer
reduces each to one magnitude (`max|x|`, or a percentile of |x|) over the calibration
batches. Static scales are derived from these magnitudes in `convert`.
"""
from typing import Any, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.fixedpoint.config import IntQuantConfig
from neurojax.nn.mlgru import TAPS

MIN_CALIBRATION_TOKENS = 256


def tap_key(path: tuple) -> str:
    return "/".join(path)


def collect_taps(model: Any, params: Any, tokens: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Run the float model once; return `(logits, {tap path: activation})`."""
    (logits, _), extra = model.apply({"params": params}, tokens, mutable=[TAPS])
    flat = flax.traverse_util.flatten_dict(extra[TAPS])
    return logits, {tap_key(k): v[0] for k, v in flat.items()}


def calibrate(model: Any, params: Any, batches: Sequence[np.ndarray], qcfg: IntQuantConfig) -> dict[str, float]:
    """Observed magnitude of every tap over `batches` (each `[B, T]` or `[B, T+1]` token ids)."""
    batches = list(batches)
    tokens = sum(int(np.prod(np.shape(b))) for b in batches)
    if not batches or tokens < MIN_CALIBRATION_TOKENS:
        raise NeurojaxError(f"calibration needs at least {MIN_CALIBRATION_TOKENS} tokens, got {tokens} "
                            f"in {len(batches)} batch(es)")
    q = qcfg.percentile

    @jax.jit
    def observe(tokens):
        _, taps = collect_taps(model, params, tokens)
        if qcfg.observer == "minmax":
            return {k: jnp.max(jnp.abs(v)) for k, v in taps.items()}
        return {k: jnp.percentile(jnp.abs(v).reshape(-1), q) for k, v in taps.items()}

    amax: dict[str, float] = {}
    for b in batches:
        for k, v in jax.device_get(observe(jnp.asarray(b))).items():
            amax[k] = max(amax.get(k, 0.0), float(v))
    return amax
