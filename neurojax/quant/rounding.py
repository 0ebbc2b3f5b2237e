"""Named rounding modes for float-to-integer quantizers.

The MatMul-free reference rounds activations half away from zero (its kernel's
`round`) and weights half to even (`torch.round`); `jnp.round` is half to even, so
the two modes are spelled out and chosen by name, never implied.
"""
from typing import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.errors import NeurojaxError


def round_half_even(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """Round to nearest, ties to even (IEEE default): 0.5 -> 0, 1.5 -> 2, -2.5 -> -2."""
    return jnp.round(x)


def round_half_away(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """Round to nearest, ties away from zero: 0.5 -> 1, -0.5 -> -1, 2.5 -> 3.

    Written as `floor(|x|)` plus a carry where the (exact) fraction is >= 0.5; the
    shortcut `floor(|x| + 0.5)` is wrong in float32 for 0.49999997 and odd integers >= 2^23.
    """
    a = jnp.abs(x)
    f = jnp.floor(a)
    return jnp.sign(x) * (f + (a - f >= 0.5).astype(x.dtype))


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
        raise NeurojaxError(f"unknown rounding mode {mode!r}; known: {sorted(ROUNDING_MODES)}") from None
    return fn(x)
