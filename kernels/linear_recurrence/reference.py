"""Reference: a sequential `lax.scan` over time, the definition every fast path must match."""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def linear_recurrence(
    a: Float[Array, "B T d"], b: Float[Array, "B T d"], h0: Float[Array, "B d"]
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """Return all states `h [B, T, d]` and the last one, with `h_t = a_t * h_{t-1} + b_t`."""

    def step(h, ab):
        a_t, b_t = ab
        h = a_t * h + b_t
        return h, h

    h_last, hs = jax.lax.scan(step, h0, (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
    return jnp.swapaxes(hs, 0, 1), h_last
