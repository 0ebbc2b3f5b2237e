"""Pallas kernel: one program per block of rows, the whole (padded) feature axis in the block.

The wrapper flattens leading dims to rows, pads the rows to a multiple of the row block
and the feature axis to a power of two (zero columns add nothing to `sum x^2` or `max|y|`;
the mean divides by the true `d`), and slices back. Each program loads `[block_rows, D]`
of `x` and `[1, D]` of the weight, and computes the reference's formula in the reference's
float op order (only the order of the row sums may differ). All block sizes are powers
of two, as Triton needs. On CPU it runs in interpret mode (`interpret_pallas()`): correct
and slow, for tests. It is written to lower through Triton on GPU but has not been run on
one here.
"""
import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jaxtyping import Array, Float, Int8

from neurojax.kernels.dispatch import interpret_pallas
from neurojax.quant import ACT_QMAX, ACT_QMIN, absmax_scale, round_half_away

# Elements of x per program: 16 Ki float32 (64 KiB), the range a Triton row-norm program
# keeps in registers; fewer rows per block as d grows, never fewer than one.
MAX_BLOCK_ELEMS = 1 << 14


def block_rows_for(n_rows: int, d_pad: int, max_elems: int = MAX_BLOCK_ELEMS) -> int:
    """Rows per program: a power of two, `max_elems // d_pad` at most, no more than `n_rows` needs."""
    return max(1, min(pl.next_power_of_2(max(n_rows, 1)), max_elems // d_pad))


def _kernel(x_ref, w_ref, q_ref, s_ref, *, d: int, eps: float):
    # x_ref, q_ref: [R, D]; w_ref: [1, D]; s_ref: [R, 1]
    x = x_ref[...].astype(jnp.float32)
    inv = jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) / d + eps)
    y = x * inv * w_ref[...].astype(jnp.float32)
    s = absmax_scale(y)
    q_ref[...] = jnp.clip(round_half_away(y * s), ACT_QMIN, ACT_QMAX).astype(jnp.int8)
    s_ref[...] = s


def rmsnorm_quant(
    x: Float[Array, "... d"], weight: Float[Array, "d"], eps: float, *, block_rows: Optional[int] = None
) -> tuple[Int8[Array, "... d"], Float[Array, "... 1"]]:
    """Same contract as `reference.rmsnorm_quant`; `eps` must be a Python number (static).

    `block_rows` (a power of two) overrides `block_rows_for`.
    """
    *lead, d = x.shape
    rows = x.reshape(-1, d)
    n = rows.shape[0]
    if n == 0:
        return jnp.zeros(x.shape, jnp.int8), jnp.zeros((*lead, 1), jnp.float32)
    d_pad = pl.next_power_of_2(d)
    br = block_rows_for(n, d_pad) if block_rows is None else block_rows
    if br < 1 or br & (br - 1):
        raise ValueError(f"block_rows must be a power of two, got {br}")
    n_pad = pl.cdiv(n, br) * br
    rows = jnp.pad(rows, ((0, n_pad - n), (0, d_pad - d)))  # zero rows: s = floor scale, q = 0
    w = jnp.pad(weight, (0, d_pad - d)).reshape(1, d_pad)
    q, s = pl.pallas_call(
        functools.partial(_kernel, d=d, eps=float(eps)),
        out_shape=(jax.ShapeDtypeStruct((n_pad, d_pad), jnp.int8),
                   jax.ShapeDtypeStruct((n_pad, 1), jnp.float32)),
        grid=(n_pad // br,),
        in_specs=[pl.BlockSpec((br, d_pad), lambda i: (i, 0)),
                  pl.BlockSpec((1, d_pad), lambda i: (0, 0))],
        out_specs=(pl.BlockSpec((br, d_pad), lambda i: (i, 0)),
                   pl.BlockSpec((br, 1), lambda i: (i, 0))),
        interpret=interpret_pallas(),
    )(rows, w)
    return q[:n, :d].reshape(x.shape), s[:n].reshape(*lead, 1)
