"""Heaviside spike functions with surrogate gradients (`jax.custom_jvp`).

A spike function maps a membrane distance `x = v - threshold` to a spike: the forward value
is exactly the Heaviside step as a float of `x`'s dtype, `x > 0` (compare ">", Lava's CPU
model) or `x >= 0` (compare ">=", the training-side convention), with no round-off. The
derivative used for training is a *surrogate*: the derivative of a smooth stand-in of the
step, scaled by `slope` (steeper = closer to the step). Each surrogate below is stated with
its smooth function, and `jax.grad` of the spike function equals that derivative exactly.

  name            smooth(x)                          surrogate derivative d smooth / dx
  "fast_sigmoid"  x / (1 + slope |x|)                1 / (1 + slope |x|)^2
  "arctan"        1/2 + atan(pi/2 slope x) / pi      (slope / 2) / (1 + (pi/2 slope x)^2)
  "sigmoid"       1 / (1 + exp(-slope x))            slope sig(slope x) (1 - sig(slope x))

Normalisation: "arctan" and "sigmoid" are proper sigmoids (from 0 to 1, so the derivative
integrates to 1, and its peak is slope / 2 resp. slope / 4). "fast_sigmoid" keeps the
SuperSpike / snnTorch convention (derivative 1 at x = 0 for every slope): its smooth function
runs from -1/slope to 1/slope, i.e. the derivative integrates to 2 / slope, not 1.

`SURROGATES` maps each name to a `Surrogate` (smooth function, derivative, default slope);
modules take `surrogate="fast_sigmoid"` plus an optional `slope` and build the spike
function with `spike_fn(name, slope, compare)` (cached, so equal arguments give the same
function object and jitted callers do not retrace).
"""
import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.errors import NeurojaxError

COMPARES = (">", ">=")


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A smooth stand-in for the Heaviside step: `smooth(x, slope)` and its derivative `grad(x, slope)`."""

    name: str
    smooth: Callable[[Array, float], Array]
    grad: Callable[[Array, float], Array]
    default_slope: float


def _fast_sigmoid_smooth(x, slope):
    return x / (1.0 + slope * jnp.abs(x))


def _fast_sigmoid_grad(x, slope):
    return 1.0 / (1.0 + slope * jnp.abs(x)) ** 2


def _arctan_smooth(x, slope):
    return 0.5 + jnp.arctan(0.5 * math.pi * slope * x) / math.pi


def _arctan_grad(x, slope):
    return (0.5 * slope) / (1.0 + (0.5 * math.pi * slope * x) ** 2)


def _sigmoid_smooth(x, slope):
    return jax.nn.sigmoid(slope * x)


def _sigmoid_grad(x, slope):
    z = slope * x
    return slope * jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)  # = sig (1 - sig), accurate in both tails


SURROGATES: dict[str, Surrogate] = {
    "fast_sigmoid": Surrogate("fast_sigmoid", _fast_sigmoid_smooth, _fast_sigmoid_grad, 25.0),
    "arctan": Surrogate("arctan", _arctan_smooth, _arctan_grad, 2.0),
    "sigmoid": Surrogate("sigmoid", _sigmoid_smooth, _sigmoid_grad, 5.0),
}
"""Surrogates by name (the defaults follow snnTorch: fast_sigmoid 25, atan 2, sigmoid 5)."""


def get_surrogate(name: str) -> Surrogate:
    """The registered `Surrogate` called `name`; an unknown name raises NeurojaxError."""
    try:
        return SURROGATES[name]
    except (KeyError, TypeError):
        raise NeurojaxError(f"unknown surrogate {name!r}; known: {sorted(SURROGATES)}") from None


def check_compare(compare: str) -> str:
    if compare not in COMPARES:
        raise NeurojaxError(f"spike compare {compare!r} must be one of {COMPARES}")
    return compare


def resolve_slope(name: str, slope) -> float:
    """`slope` as a positive finite float (None: the surrogate's default)."""
    sur = get_surrogate(name)
    if slope is None:
        return sur.default_slope
    if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not math.isfinite(slope) or slope <= 0:
        raise NeurojaxError(f"surrogate slope must be a positive finite number, got {slope!r}")
    return float(slope)


def heaviside(x: Float[Array, "..."], compare: str = ">") -> Float[Array, "..."]:
    """The exact step `x > 0` (or `x >= 0`) as a float of x's dtype (no gradient defined)."""
    x = jnp.asarray(x)
    hit = x > 0 if check_compare(compare) == ">" else x >= 0
    return hit.astype(x.dtype)


@functools.cache
def _build(name: str, slope: float, compare: str) -> Callable:
    sur = SURROGATES[name]

    @jax.custom_jvp
    def spike(x):
        return heaviside(x, compare)

    @spike.defjvp
    def _jvp(primals, tangents):
        (x,), (x_dot,) = primals, tangents
        x = jnp.asarray(x)
        return heaviside(x, compare), sur.grad(x, slope).astype(x.dtype) * x_dot

    spike.__name__ = spike.__qualname__ = f"spike_{name}"
    spike.__doc__ = f"Heaviside (x {compare} 0) forward, d/dx {name}(slope={slope}) backward."
    return spike


def spike_fn(name: str = "fast_sigmoid", slope=None, compare: str = ">") -> Callable[[Array], Array]:
    """The spike function: forward `heaviside(x, compare)`, derivative `SURROGATES[name].grad(x, slope)`.

    Applies elementwise to float arrays; cached per (name, slope, compare).
    """
    s = resolve_slope(name, slope)
    return _build(name, s, check_compare(compare))


def fast_sigmoid(slope: float = 25.0, compare: str = ">") -> Callable[[Array], Array]:
    """Spike function with derivative `1 / (1 + slope |x|)^2` (smooth: `x / (1 + slope |x|)`)."""
    return spike_fn("fast_sigmoid", slope, compare)


def arctan(slope: float = 2.0, compare: str = ">") -> Callable[[Array], Array]:
    """Spike function with derivative `(slope/2) / (1 + (pi/2 slope x)^2)`, the derivative of
    `1/2 + atan(pi/2 slope x) / pi` (integrates to 1)."""
    return spike_fn("arctan", slope, compare)


def sigmoid(slope: float = 5.0, compare: str = ">") -> Callable[[Array], Array]:
    """Spike function with the logistic derivative `slope sig(slope x) (1 - sig(slope x))`."""
    return spike_fn("sigmoid", slope, compare)


__all__ = ["COMPARES", "SURROGATES", "Surrogate", "arctan", "check_compare", "fast_sigmoid", "get_surrogate", "heaviside",
           "resolve_slope", "sigmoid", "spike_fn"]
