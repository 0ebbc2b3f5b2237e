"""Next-token cross-entropy, shared by training and evaluation."""
from typing import Optional

import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int


def next_token_loss(
    logits: Float[Array, "B T V"], targets: Int[Array, "B T"], mask: Optional[Float[Array, "B T"]] = None
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Mean cross-entropy (nats) over unmasked positions, and the number of those positions."""
    nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    mask = jnp.ones_like(nll) if mask is None else mask.astype(nll.dtype)
    count = jnp.sum(mask)
    return jnp.sum(nll * mask) / jnp.maximum(count, 1.0), count
