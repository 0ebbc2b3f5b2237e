"""Pallas kernel for `h_t = a_t h_{t-1} + b_t`: one program per (batch row, feature block).

Each program holds its `[block_d]` slice of the state in registers and walks time with a
`lax.fori_loop`, so it is the sequential reference order exactly (left to right, one
multiply-add per step; `reverse` walks t backwards, for the backward pass). The grid is
`(B, d_pad / block_d)`; the batch dimension of every block is squeezed, so the kernel only
loads and stores `[block_d]` vectors (a power of two, as Triton needs) and has no
data-dependent Python control flow. The wrapper pads `d` to a block multiple and slices back.

On CPU it runs in interpret mode (`interpret_pallas()`): correct, 2-4x slower than the
reference there, for tests. On GPU it asks for Triton explicitly (this JAX's default GPU
Pallas backend is Mosaic GPU, for which `pl.pallas_call` is deprecated); the tests check
that it lowers to a Triton call for CUDA, but it has not been compiled or run on a GPU
(or a TPU) here.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pl_triton
from jaxtyping import Array, Float

from neurojax.kernels.dispatch import interpret_pallas
from neurojax.kernels.linear_recurrence.vjp import with_reverse_vjp

DEFAULT_BLOCK_D = 128
# One feature per thread at the default block (4 warps x 32 = 128 lanes).
TRITON_PARAMS = pl_triton.CompilerParams(num_warps=4)


def _compiler_params():
    """Triton on GPU; the platform's own default (or interpret mode) elsewhere."""
    return TRITON_PARAMS if jax.default_backend() == "gpu" else None


def _kernel(a_ref, b_ref, h0_ref, hs_ref, last_ref, *, reverse: bool):
    # a_ref, b_ref, hs_ref: [T, block_d]; h0_ref, last_ref: [block_d]
    T = a_ref.shape[0]

    def step(i, h):
        t = T - 1 - i if reverse else i
        h = a_ref[t, :] * h + b_ref[t, :]
        hs_ref[t, :] = h
        return h

    last_ref[:] = jax.lax.fori_loop(0, T, step, h0_ref[:])


def block_size(d: int, block_d: int = DEFAULT_BLOCK_D) -> int:
    """The feature block: a power of two, at most `block_d`, no larger than needed for `d`."""
    if block_d < 1 or block_d & (block_d - 1):
        raise ValueError(f"block_d must be a power of two, got {block_d}")
    return min(block_d, pl.next_power_of_2(d))


def pallas_forward(
    a: Float[Array, "B T d"],
    b: Float[Array, "B T d"],
    h0: Float[Array, "B d"],
    *,
    block_d: int = DEFAULT_BLOCK_D,
    reverse: bool = False,
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """Same contract as `reference.scan_forward` (`reverse` included); `block_d` a power of two."""
    B, T, d = a.shape
    bd = block_size(d, block_d)
    nd = pl.cdiv(d, bd)
    pad = nd * bd - d
    if pad:  # padded lanes are independent of the real ones and sliced off below
        a = jnp.pad(a, ((0, 0), (0, 0), (0, pad)))
        b = jnp.pad(b, ((0, 0), (0, 0), (0, pad)))
        h0 = jnp.pad(h0, ((0, 0), (0, pad)))
    seq = pl.BlockSpec((None, T, bd), lambda i, j: (i, 0, j))
    vec = pl.BlockSpec((None, bd), lambda i, j: (i, j))
    hs, last = pl.pallas_call(
        functools.partial(_kernel, reverse=reverse),
        out_shape=(jax.ShapeDtypeStruct(b.shape, b.dtype), jax.ShapeDtypeStruct(h0.shape, h0.dtype)),
        grid=(B, nd),
        in_specs=[seq, seq, vec],
        out_specs=(seq, vec),
        interpret=interpret_pallas(),
        compiler_params=_compiler_params(),
        name="linear_recurrence",
    )(a, b, h0)
    if pad:
        hs, last = hs[..., :d], last[..., :d]
    return hs, last


linear_recurrence = with_reverse_vjp(pallas_forward)
