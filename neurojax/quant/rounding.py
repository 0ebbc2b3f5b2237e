"""Named rounding modes for float-to-integer quantizers.

The MatMul-free reference rounds activations half away from zero (its kernel's
`round`) and weights half to even (`torch.round`); `jnp.round` is half to even, so
the two modes are spelled out and chosen by name, never implied.
"""
from typing import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float


def round_half_even(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """Round to nearest, ties to even (IEEE default): 0.5 -> 0, 1.5 -> 2, -2.5 -> -2."""
    return jnp.round(x)


def round_half_away(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """Round to nearest, ties away from zero: 0.5 -> 1, -0.5 -> -1, 2.5 -> 3."""
    return jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)


ROUNDING_MODES: dict[str, Callable] = {
    "half_even": round_half_even,
    "half_away": round_half_away,
    "floor": jnp.floor,
    "toward_zero": jnp.trunc,
}


def round_with(mode: str, x: Float[Array, "..."]) -> Float[Array, "..."]:
    """Round `x` with the rounding mode named `mode` (a key of `ROUNDING_MODES`)."""
    try:
        fn = ROUNDING_MODES[mode]
    except KeyError:
        raise ValueError(f"unknown rounding mode {mode!r}; known: {sorted(ROUNDING_MODES)}") from None
    return fn(x)
