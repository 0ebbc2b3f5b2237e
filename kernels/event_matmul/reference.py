"""The definitions: `events @ fanout` as an int32 dot (wrapping on overflow, like int32 hardware)
or a float32 dot, and the integer product with a fan-out held sparse (CSR)."""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int


def event_matmul(events: Int[Array, "T K"], fanout: Int[Array, "K N"]) -> Int[Array, "T N"]:
    if jnp.issubdtype(events.dtype, jnp.floating):
        return jnp.dot(events, fanout, precision=jax.lax.Precision.HIGHEST)
    return jnp.dot(events.astype(jnp.int32), fanout.astype(jnp.int32), preferred_element_type=jnp.int32)


def event_matmul_t(events: Int[Array, "R K"], rows: Int[Array, "R N"], acc: Int[Array, "K N"]) -> Int[Array, "K N"]:
    """`acc + events^T @ rows`: for each event (r, s), row r of `rows` times the payload into row s."""
    return acc + event_matmul(events.T, rows)


def event_matmul_csr(events: Int[Array, "T K"], indptr: Int[Array, "K1"], indices: Int[Array, "P"],
                     values: Int[Array, "P"], n: int) -> Int[Array, "T N"]:
    """`out[t, indices[p]] += events[t, s] * values[p]` for the entries p of source s (entries
    at positions from `indptr[-1]` on are padding: ignored)."""
    p = jnp.arange(indices.shape[0])
    source = jnp.clip(jnp.searchsorted(indptr, p, side="right") - 1, 0, events.shape[1] - 1)  # entry -> its source
    value = jnp.where(p < indptr[-1], values.astype(jnp.int32), 0)
    contrib = events.astype(jnp.int32)[:, source] * value
    return jax.ops.segment_sum(contrib.T, indices, num_segments=n).T
