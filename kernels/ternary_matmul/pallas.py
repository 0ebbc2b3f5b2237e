"""Pallas kernel: grid over (row blocks, column blocks, byte-row blocks), int32 accumulator.

Each step loads a `[BM, 4, BK4]` block of inputs and a `[BK4, BN]` block of packed bytes,
sign-extends the four planes in registers and adds four int8 x int8 -> int32 dots into
the output block, which stays resident across the innermost (reduction) grid axis. The
wrapper pads rows and columns to the block sizes (zero bytes are zero weights) and
slices back. On CPU it runs in interpret mode (tests); the block shapes are powers of two
so that it can lower through Triton on GPU, which this project has not validated yet.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jaxtyping import Array, Int

from neurojax.kernels.dispatch import interpret_pallas
from neurojax.kernels.ternary_matmul.pack import PLANES, PackedTernary, decode_plane, planes_of

BLOCK_M = 16
BLOCK_N = 128
BLOCK_K4 = 32


def _kernel(x_ref, w_ref, o_ref):
    @pl.when(pl.program_id(2) == 0)
    def _():
        o_ref[...] = jnp.zeros_like(o_ref)

    data = w_ref[...]
    acc = o_ref[...]
    for j in range(PLANES):
        acc += jax.lax.dot_general(x_ref[:, j, :], decode_plane(data, j), (((1,), (0,)), ((), ())),
                                   preferred_element_type=jnp.int32)
    o_ref[...] = acc


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


@functools.partial(jax.jit, static_argnames=("block_m", "block_n", "block_k4"))
def ternary_matmul(x: Int[Array, "M K"], packed: PackedTernary, block_m: int = BLOCK_M,
                   block_n: int = BLOCK_N, block_k4: int = BLOCK_K4) -> Int[Array, "M N"]:
    """Same contract as `reference.ternary_matmul`."""
    data = packed.data
    k4, n = data.shape
    m = x.shape[0]
    mp, np_, k4p = _round_up(m, block_m), _round_up(n, block_n), _round_up(k4, block_k4)
    xs = planes_of(x.astype(jnp.int8), k4)                                     # [M, 4, K4]
    xs = jnp.pad(xs, ((0, mp - m), (0, 0), (0, k4p - k4)))
    data = jnp.pad(data, ((0, k4p - k4), (0, np_ - n)))
    out = pl.pallas_call(
        _kernel,
        out_shape=jax.ShapeDtypeStruct((mp, np_), jnp.int32),
        grid=(mp // block_m, np_ // block_n, k4p // block_k4),
        in_specs=[pl.BlockSpec((block_m, PLANES, block_k4), lambda i, j, k: (i, 0, k)),
                  pl.BlockSpec((block_k4, block_n), lambda i, j, k: (k, j))],
        out_specs=pl.BlockSpec((block_m, block_n), lambda i, j, k: (i, j)),
        interpret=interpret_pallas(),
    )(xs, data)
    return out[:m, :n]
