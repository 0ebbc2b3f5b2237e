"""Reference: unpack to int8 codes, then an int8 x int8 -> int32 dot. The definition."""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.kernels.ternary_matmul.pack import PackedTernary, unpack


def ternary_matmul(x: Int[Array, "M K"], packed: PackedTernary) -> Int[Array, "M N"]:
    """`x @ codes.T` accumulated exactly in int32, for int8 `x` and packed ternary codes."""
    w = unpack(packed, x.shape[-1])                                   # [N, K] int8
    return jax.lax.dot_general(x.astype(jnp.int8), w, (((1,), (1,)), ((), ())),
                               preferred_element_type=jnp.int32)
