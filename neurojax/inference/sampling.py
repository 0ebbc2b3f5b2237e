"""Next-token selection from logits `[B, V]`: greedy, temperature, top-k and nucleus (top-p).

Every function is pure and jittable. The sampling knobs (`temperature`, `top_k`,
`top_p`) are Python numbers read at trace time, so each setting compiles its own
program and a disabled filter costs nothing.
"""
import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError

# Slack when comparing cumulative probability with `top_p`: float32 round-off in the
# softmax and cumsum must not decide whether a set that reaches `top_p` exactly counts.
TOP_P_TOLERANCE = 1e-6


def _check(temperature: float, top_k: int, top_p: float) -> None:
    """Raise `NeurojaxError` for out-of-range sampling settings."""
    if not temperature >= 0:  # also rejects NaN
        raise NeurojaxError(f"sampling.temperature must be >= 0 (0 means greedy), got {temperature}")
    if int(top_k) != top_k or top_k < 0:
        raise NeurojaxError(f"sampling.top_k must be a non-negative integer (0 means off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise NeurojaxError(f"sampling.top_p must be in (0, 1] (1.0 means off), got {top_p}")


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to pick each next token: `temperature` 0 is greedy, `top_k` 0 and `top_p` 1.0 are off.

    Frozen (hashable) so it can be a static argument of a jitted decoder.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def validate(self) -> "SamplingConfig":
        """Raise `NeurojaxError` if any field is out of range; returns `self` for chaining."""
        _check(self.temperature, self.top_k, self.top_p)
        return self

    @property
    def is_greedy(self) -> bool:
        """True when the configuration always picks the argmax."""
        return self.temperature == 0 or self.top_k == 1


def greedy(logits: Float[Array, "B V"]) -> Int[Array, "B"]:
    """The highest-scoring token of every row (lowest index on ties), as int32."""
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _top_k_mask(logits: Float[Array, "B V"], k: int) -> jax.Array:
    """Boolean `[B, V]` marking exactly the `k` largest logits of every row."""
    _, idx = jax.lax.top_k(logits, k)
    rows = jnp.arange(logits.shape[0])[:, None]
    return jnp.zeros(logits.shape, bool).at[rows, idx].set(True)


def _top_p_mask(logits: Float[Array, "B V"], p: float) -> jax.Array:
    """Boolean `[B, V]` marking the nucleus: the fewest most-probable tokens whose mass reaches `p`.

    A token (in descending-probability order) is kept when the mass strictly before
    it is still below `p` (up to `TOP_P_TOLERANCE`), so the top token is always kept.
    """
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = mass_before < p - TOP_P_TOLERANCE
    keep_sorted = keep_sorted.at[:, 0].set(True)
    rows = jnp.arange(logits.shape[0])[:, None]
    return jnp.zeros(logits.shape, bool).at[rows, order].set(keep_sorted)


def filter_logits(
    logits: Float[Array, "B V"], temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> Float[Array, "B V"]:
    """Temperature-scaled float32 logits with everything outside top-k / the nucleus set to -inf.

    Top-k is applied first, then top-p on the renormalised survivors; `temperature`
    must be > 0 here (greedy is handled by `sample`).
    """
    _check(temperature, top_k, top_p)
    if temperature == 0:
        raise NeurojaxError("filter_logits needs temperature > 0; use greedy() for temperature 0")
    x = logits.astype(jnp.float32) / jnp.float32(temperature)
    vocab = x.shape[-1]
    if 0 < top_k < vocab:
        x = jnp.where(_top_k_mask(x, int(top_k)), x, -jnp.inf)
    if top_p < 1.0:
        x = jnp.where(_top_p_mask(x, float(top_p)) & (x > -jnp.inf), x, -jnp.inf)
    return x


def sample(
    logits: Float[Array, "B V"], rng: jax.Array, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> Int[Array, "B"]:
    """Draw one token per row (int32) after temperature, top-k and top-p filtering.

    `temperature == 0` (or `top_k == 1`) is exactly `greedy`; otherwise the filtered
    logits go to `jax.random.categorical`, so a given `rng` always gives the same draw.
    """
    _check(temperature, top_k, top_p)
    if temperature == 0 or top_k == 1:
        return greedy(logits)
    x = filter_logits(logits, temperature, top_k, top_p)
    return jax.random.categorical(rng, x, axis=-1).astype(jnp.int32)


def sample_with(config: SamplingConfig, logits: Float[Array, "B V"], rng: jax.Array) -> Int[Array, "B"]:
    """`sample` with the settings of a `SamplingConfig`."""
    return sample(logits, rng, config.temperature, config.top_k, config.top_p)
