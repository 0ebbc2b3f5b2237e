"""Symmetric int8 weights per group of input channels: SpikingBrain's W8ASpike weight format.

For a weight `[out, in]` (PyTorch layout), each row is cut into groups of `group` consecutive input
channels (128 in W8ASpike; a last, shorter group when `in` is not a multiple). Per group
`scale = absmax / 127` and `code = round_half_even(w / scale)` (torch.round, as upstream; never
clamped, and |code| <= 127 by construction); the de-quantized weight is `code * scale`. A group of
zeros (or one so small that absmax / 127 underflows float32) gets scale 1 and codes 0: no division by zero.
"""
import jax.numpy as jnp
from jaxtyping import Array, Float, Int8

from neurojax.errors import NeurojaxError
from neurojax.quant.rounding import round_half_even

INT8_GROUP = 128  # W8ASpike's group size (input channels per scale)
INT8_QMAX = 127


def _groups(w: Float[Array, "out n_in"], group: int) -> tuple[Float[Array, "out G group"], int]:
    """`w` padded with zeros to whole groups and reshaped `[out, groups, group]`; returns it and the pad."""
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise NeurojaxError(f"the int8 weight group size must be a positive integer, got {group!r}")
    if jnp.ndim(w) != 2:
        raise NeurojaxError(f"int8 group quantization expects a weight [out, in], got shape {jnp.shape(w)}")
    pad = (-w.shape[1]) % group
    padded = jnp.pad(w, ((0, 0), (0, pad))) if pad else w
    return padded.reshape(w.shape[0], -1, group), pad


def int8_group_quantize(w: Float[Array, "out n_in"], group: int = INT8_GROUP
                        ) -> tuple[Int8[Array, "out n_in"], Float[Array, "out G"]]:
    """int8 codes `[out, in]` and float32 scales `[out, ceil(in / group)]` of `w`."""
    g, pad = _groups(jnp.asarray(w, jnp.float32), group)
    scale = jnp.max(jnp.abs(g), axis=-1) / INT8_QMAX
    scale = jnp.where(scale > 0, scale, 1.0)  # all-zero group (or one that underflows): codes 0
    codes = round_half_even(g / scale[..., None]).astype(jnp.int8).reshape(w.shape[0], -1)
    return codes[:, : w.shape[1]], scale


def int8_group_dequantize(codes: Int8[Array, "out n_in"], scale: Float[Array, "out G"], group: int = INT8_GROUP
                          ) -> Float[Array, "out n_in"]:
    """`code * scale` per group: the float32 weight the int8 format stands for."""
    g, _ = _groups(codes.astype(jnp.float32), group)
    return (g * scale[..., None]).reshape(codes.shape[0], -1)[:, : codes.shape[1]]


def int8_group_fake_quant(w: Float[Array, "out n_in"], group: int = INT8_GROUP) -> Float[Array, "out n_in"]:
    """`w` rounded to the int8 group format and back to float32 (what an int8-weight model computes with)."""
    return int8_group_dequantize(*int8_group_quantize(w, group), group)
