"""Absmean ternary weight quantization (BitNet b1.58 / MatMul-free LM).

`s_w = 1 / max(mean|W|, 1e-5)` per tensor; codes `clip(round_half_even(W * s_w), -1, 1)`.
Codes are defined in float32 whatever the storage dtype (the spec: ternarizing a bf16
tensor in bf16 flips ~0.2% of codes), and the scale must travel with them: re-deriving
it from already-ternary weights destroys the model.
"""
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.quant.rounding import round_half_even
from neurojax.quant.ste import straight_through

SCALE_FLOOR = 1e-5


def absmean_scale(w: Float[Array, "..."]) -> Float[Array, ""]:
    """Per-tensor scale `1 / max(mean|w|, 1e-5)` in float32 (no gradient flows through it)."""
    w = jax.lax.stop_gradient(w.astype(jnp.float32))
    return 1.0 / jnp.maximum(jnp.mean(jnp.abs(w)), SCALE_FLOOR)


def _ternary_round(v):
    return jnp.clip(round_half_even(v), -1.0, 1.0)


_ternary_round_ste = straight_through(_ternary_round)


def ternary_codes(w: Float[Array, "..."]) -> tuple[Float[Array, "..."], Float[Array, ""]]:
    """Return `(codes, s_w)`: float32 codes in {-1, 0, 1} and the scale, `W ~= codes / s_w`.

    The codes carry a straight-through gradient: d codes / d W = s_w.
    """
    s_w = absmean_scale(w)
    return _ternary_round_ste(w.astype(jnp.float32) * s_w), s_w


@straight_through
def ternarize(w: Float[Array, "..."]) -> Float[Array, "..."]:
    """Fake-quantized weight `codes / s_w` (float32) with an exactly-identity gradient."""
    s_w = absmean_scale(w)
    return _ternary_round(w.astype(jnp.float32) * s_w) / s_w
