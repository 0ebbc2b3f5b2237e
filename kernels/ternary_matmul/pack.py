"""The packed ternary weight format: 2 bits per weight, 4 weights per byte, plus a scale.

A BitLinear weight `codes [N_out, K_in]` (values in {-1, 0, +1}, the PyTorch layout)
packs into `data uint8 [K4, N_out]` with `K4 = 64 * ceil(K_in / 256)`:

    bits 2j..2j+1 of data[i, n] = code(codes[n, j * K4 + i])   for j = 0..3

so each byte row `i` holds the weights of inputs `i`, `i + K4`, `i + 2 K4`, `i + 3 K4`
(four *planes* of the input dimension, not four neighbours). A code is the weight in
2-bit two's complement: 00 = 0, 01 = +1, 11 = -1 (10 is never written). Decoding a
plane is one sign extension, a zero byte is four zero weights (so padding rows, and
inputs past `K_in`, contribute nothing), and the planar order means no kernel has to
interleave: `x @ W = sum_j x[:, plane j] @ decode_j(data)`. `K4` is a multiple of 64 so
that the decode path can sum blocks of 64 byte rows (256 weights per output) in int16;
see `xla.py`. Output-major columns (`N` last) make
the decode-time reduction run along contiguous memory.

`PackedTernary(data, scale)` is a pytree: `scale` is the float32 per-tensor weight
scale `s_w` (`W ~= codes / s_w`), carried with the data so a packed tensor is
self-describing, or None where the caller keeps its own (integer) rescale; the int32
matmul itself never reads it.
"""
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, UInt8

from neurojax.errors import NeurojaxError

PLANES = 4          # weights per byte
ROW_GROUP = 64      # byte rows per int16 partial sum (see module docstring)


class PackedTernary(NamedTuple):
    """`data uint8 [K4, N]` (layout in the module docstring) and the float32 scale `s_w` or None."""

    data: UInt8[Array, "K4 N"]
    scale: Optional[Float[Array, ""]] = None


def packed_rows(k: int) -> int:
    """Byte rows `K4` for `k` inputs: 4 planes of `K4` inputs each, `K4` a multiple of 64."""
    if k < 1:
        raise NeurojaxError(f"a ternary weight needs at least one input, got K={k}")
    return ROW_GROUP * -(-k // (PLANES * ROW_GROUP))


def pack(codes: Int[Array, "N K"], scale: Optional[float] = None) -> PackedTernary:
    """Pack ternary `codes [N_out, K_in]` (any integer dtype, values in {-1, 0, 1}).

    Runs under `jit` (no value check there); called eagerly, values outside {-1, 0, 1}
    raise a `NeurojaxError` instead of being silently mangled.
    """
    codes = jnp.asarray(codes)
    if codes.ndim != 2:
        raise NeurojaxError(f"pack expects codes [N_out, K_in], got shape {codes.shape}")
    if not jnp.issubdtype(codes.dtype, jnp.integer):
        raise NeurojaxError(f"pack expects integer ternary codes, got dtype {codes.dtype}")
    concrete = _concrete(codes)
    if concrete is not None and ((concrete < -1) | (concrete > 1)).any():
        n, k = np.argwhere((concrete < -1) | (concrete > 1))[0]
        raise NeurojaxError(f"pack expects values in {{-1, 0, 1}}; codes[{n}, {k}] = {int(concrete[n, k])}")
    n_out, k = codes.shape
    k4 = packed_rows(k)
    w = jnp.pad(codes.astype(jnp.int8).T, ((0, PLANES * k4 - k), (0, 0)))        # [4*K4, N]
    two_bit = (w & 3).astype(jnp.uint8).reshape(PLANES, k4, n_out)
    data = two_bit[0] | (two_bit[1] << 2) | (two_bit[2] << 4) | (two_bit[3] << 6)
    return PackedTernary(data.astype(jnp.uint8), None if scale is None else jnp.asarray(scale, jnp.float32))


def _concrete(x):
    """`x` as a NumPy array, or None under `jit` (a tracer has no values to check)."""
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def decode_plane(data: UInt8[Array, "K4 N"], j: int, dtype=jnp.int8) -> Int[Array, "K4 N"]:
    """Weights of inputs `j*K4 .. (j+1)*K4 - 1` as `dtype`: a 2-bit sign extension."""
    return ((data << (6 - 2 * j)).astype(jnp.int8) >> 6).astype(dtype)


def unpack(packed: PackedTernary, k: int) -> Int[Array, "N K"]:
    """The int8 codes `[N_out, K_in]` back (inverse of `pack` for the given `K_in`)."""
    data = packed.data
    if data.shape[0] != packed_rows(k):
        raise NeurojaxError(f"packed data has {data.shape[0]} byte rows; K_in={k} needs {packed_rows(k)}")
    w = jnp.concatenate([decode_plane(data, j) for j in range(PLANES)], axis=0)  # [4*K4, N]
    return w[:k].T


def planes_of(x: Int[Array, "M K"], k4: int) -> Int[Array, "M 4 K4"]:
    """Inputs zero-padded to `4*K4` and split into the four planes the byte rows hold."""
    return jnp.pad(x, ((0, 0), (0, PLANES * k4 - x.shape[-1]))).reshape(x.shape[0], PLANES, k4)


def weight_bytes(packed: PackedTernary) -> int:
    """Bytes of weight memory: the packed data plus the 4-byte scale."""
    return int(packed.data.size) + 4
