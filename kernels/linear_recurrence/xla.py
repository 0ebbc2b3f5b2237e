"""Parallel prefix form: `jax.lax.associative_scan` over the affine maps `h -> a h + b`.

O(T log T) work but log-depth; the composition order differs from the sequential
scan, so results agree with the reference to float round-off, not bit for bit.
"""
import jax
from jaxtyping import Array, Float


def _compose(left, right):
    a_l, b_l = left
    a_r, b_r = right
    return a_r * a_l, a_r * b_l + b_r


def linear_recurrence(
    a: Float[Array, "B T d"], b: Float[Array, "B T d"], h0: Float[Array, "B d"]
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """Same contract as `reference.linear_recurrence`."""
    # Fold h0 into the first step: h_1 = a_1 h0 + b_1.
    b = b.at[:, 0].add(a[:, 0] * h0)
    _, hs = jax.lax.associative_scan(_compose, (a, b), axis=1)
    return hs, hs[:, -1]
