"""Next-token cross-entropy (shared by training and evaluation) and the distillation KL."""
from typing import Optional

import jax
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


def distillation_loss(
    student_logits: Float[Array, "B T V"], teacher_logits: Float[Array, "B T V"], temperature: float = 1.0,
    mask: Optional[Float[Array, "B T"]] = None,
) -> Float[Array, ""]:
    """`T^2 * mean_t KL(softmax(teacher / T) || softmax(student / T))` over unmasked positions (Hinton et al.).

    The `T^2` keeps the gradient's scale independent of the temperature. The teacher is a constant
    (its gradient is stopped).
    """
    t = jax.lax.stop_gradient(teacher_logits.astype(jnp.float32)) / temperature
    s = student_logits.astype(jnp.float32) / temperature
    log_p, log_q = jax.nn.log_softmax(t, axis=-1), jax.nn.log_softmax(s, axis=-1)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    mask = jnp.ones_like(kl) if mask is None else mask.astype(kl.dtype)
    return temperature**2 * jnp.sum(kl * mask) / jnp.maximum(jnp.sum(mask), 1.0)
