"""Plain-XLA fast paths for `h_t = a_t h_{t-1} + b_t`: parallel prefix and two-level chunked.

Both regroup the products and sums, so they agree with the sequential reference to float
round-off, not bit for bit. Each has the shared reverse-recurrence VJP (`vjp.py`).
"""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.kernels.linear_recurrence.vjp import with_reverse_vjp

# Steps per chunk. On CPU, 16, 32 and 64 timed within noise of each other (`api.py`); the
# GPU default would want it tuned there (C + T/C sequential steps, B*T/C*d wide).
DEFAULT_CHUNK = 64


def _compose(left, right):
    a_l, b_l = left
    a_r, b_r = right
    return a_r * a_l, a_r * b_l + b_r


def associative_forward(
    a: Float[Array, "B T d"], b: Float[Array, "B T d"], h0: Float[Array, "B d"], *, reverse: bool = False
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """`jax.lax.associative_scan` over the affine maps `h -> a h + b`: O(T log T) work, log depth.

    `reverse`: from t = T down to 1, returning `(h, h_1)` (the backward pass, see `vjp.py`).
    """
    first = -1 if reverse else 0
    # Fold h0 into the first step taken: h_1 = a_1 h0 + b_1.
    b = b.at[:, first].add(a[:, first] * h0)
    _, hs = jax.lax.associative_scan(_compose, (a, b), axis=1, reverse=reverse)
    return hs, hs[:, -1 - first]


def chunked_forward(
    a: Float[Array, "B T d"],
    b: Float[Array, "B T d"],
    h0: Float[Array, "B d"],
    *,
    chunk: int = DEFAULT_CHUNK,
    reverse: bool = False,
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """Two-level scan: `chunk` sequential steps inside every chunk at once, then one step per chunk.

    1. In all N = ceil(T / chunk) chunks together, scan from a zero state: the local states
       `loc_t` and the running gate products `cum_t = a_s ... a_t` since the chunk start.
    2. Scan over chunks: `carry_{n+1} = cum_end(n) carry_n + loc_end(n)` from `h0`.
    3. Fix-up: `h_t = loc_t + cum_t * carry_n` for t in chunk n.
    T is padded to a chunk multiple with the identity step (a = 1, b = 0) and sliced back.
    `reverse`: the same from t = T down to 1 (indices walked backwards, padding in front),
    returning `(h, h_1)` (the backward pass, see `vjp.py`).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    B, T, d = a.shape
    C = min(chunk, T)
    N = -(-T // C)
    pad = N * C - T
    if pad:  # identity steps, taken after the real ones
        where = ((0, 0), (pad, 0) if reverse else (0, pad), (0, 0))
        a, b = jnp.pad(a, where, constant_values=1), jnp.pad(b, where)
    # [B, N, C, d] (a free reshape); the loops read and write slices in place, no transposes.
    a4, b4 = a.reshape(B, N, C, d), b.reshape(B, N, C, d)

    def local_step(j, carry):  # step j of every chunk at once
        h, p, loc, cum = carry
        i = C - 1 - j if reverse else j
        a_i = a4[:, :, i]
        h, p = a_i * h + b4[:, :, i], a_i * p
        return h, p, loc.at[:, :, i].set(h), cum.at[:, :, i].set(p)

    zero = jnp.zeros_like(a4[:, :, 0])
    init = (zero, jnp.ones_like(zero), jnp.zeros_like(a4), jnp.zeros_like(a4))
    loc_end, cum_end, loc, cum = jax.lax.fori_loop(0, C, local_step, init)

    def carry_step(k, carry):  # one step per chunk: the state entering chunk n
        h, h_in = carry
        n = N - 1 - k if reverse else k
        return cum_end[:, n] * h + loc_end[:, n], h_in.at[:, n].set(h)

    _, h_in = jax.lax.fori_loop(0, N, carry_step, (h0, jnp.zeros_like(zero)))
    hs = (loc + cum * h_in[:, :, None]).reshape(B, N * C, d)
    hs = hs[:, pad:] if reverse else hs[:, :T]
    return hs, hs[:, 0] if reverse else hs[:, -1]


associative = with_reverse_vjp(associative_forward)
chunked = with_reverse_vjp(chunked_forward)
linear_recurrence = associative  # the name this module exported first
