"""`xla`: the fastest dense formulation on XLA:CPU, exact.

XLA:CPU has no fast int32 GEMM (~3x slower than float32 on the 2-core EPYC). Where every
partial sum is provably an integer below 2**24 (max |event| x the largest column sum of
|fanout|), a float32 GEMM is exact; otherwise (checked at run time, `lax.cond`) the int32 dot
runs. Float32 operands take the float32 GEMM. Dense: it does the work of every synapse
whether its source fired or not.
"""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.kernels.event_matmul import reference

FLOAT_EXACT = 2 ** 24  # float32 represents every integer of smaller magnitude


def event_matmul(events: Int[Array, "T K"], fanout: Int[Array, "K N"]) -> Int[Array, "T N"]:
    if jnp.issubdtype(events.dtype, jnp.floating):  # float32 operands: the GEMM itself
        return events @ fanout
    ev = events.astype(jnp.int32)
    col = jnp.max(jnp.sum(jnp.abs(fanout.astype(jnp.float32)), axis=0), initial=0.0)
    bound = jnp.max(jnp.abs(ev.astype(jnp.float32)), initial=0.0) * col
    return jax.lax.cond(bound < FLOAT_EXACT,
                        lambda: (ev.astype(jnp.float32) @ fanout.astype(jnp.float32)).astype(jnp.int32),
                        lambda: reference.event_matmul(ev, fanout))
