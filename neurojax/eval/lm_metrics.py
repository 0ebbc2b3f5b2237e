"""Validation loss, perplexity and bits per byte of a language model over token windows."""
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from neurojax.nn.loss import next_token_loss


def _make_batch_sums(model: Any):
    @jax.jit
    def batch_sums(variables, batch: Int[Array, "B T1"], byte_lengths: Float[Array, "V"]):
        logits, _ = model.apply(variables, batch[:, :-1])
        loss, count = next_token_loss(logits, batch[:, 1:])
        return loss * count, count, jnp.sum(byte_lengths[batch[:, 1:]])

    return batch_sums


def evaluate_lm(model: Any, variables: Any, windows: Sequence[np.ndarray], byte_lengths: np.ndarray) -> dict:
    """Mean next-token loss over `windows` (each `[B, T+1]`), its perplexity, and bits per byte.

    `byte_lengths[v]` is how many bytes of text token `v` stands for (1 for a byte,
    0 for specials); bits per byte = total loss in bits / total bytes predicted.
    """
    batch_sums = _make_batch_sums(model)
    lengths = jnp.asarray(byte_lengths, jnp.float32)
    nll = tokens = nbytes = 0.0
    for w in windows:
        s, c, b = jax.device_get(batch_sums(variables, jnp.asarray(w), lengths))
        nll, tokens, nbytes = nll + float(s), tokens + float(c), nbytes + float(b)
    loss = nll / max(tokens, 1.0)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_byte": nll / math.log(2) / max(nbytes, 1.0),
        "tokens": int(tokens),
        "bytes": int(nbytes),
    }
