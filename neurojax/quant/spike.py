"""SpikingBrain's adaptive-threshold spike counts: the float -> integer quantizer of activations.

Per token over the last (channel) axis, `V_th = clip(mean(|x|) / k, 1e-5, 1e4)` (`k = 3` by
default) and, in the default `mode="round"`, `s = round_half_even(x / V_th)` with no clipping
unless `clip` is given; the de-quantised activation is `s * V_th` (spec `spikingbrain.md`).
The two integrate-and-fire modes and their conventions are described in
`neurojax.spiking.coding`, which expands counts into spike trains. This is a quantizer like
`absmax_int8` (a pure array function), so BitLinear can spike-code its inputs without the
`nn` layer importing `spiking`.
"""
import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from neurojax.errors import NeurojaxError
from neurojax.quant.rounding import round_half_even
from neurojax.quant.ste import straight_through

V_TH_MIN = 1e-5  # the spec's clip range for the adaptive threshold
V_TH_MAX = 1e4
DEFAULT_K = 3.0
MODES = ("round", "integrate_fire", "integrate_fire_signed")
IF_MAX_STEPS = 2**24  # integrate-fire loop cap when no `clip` (time window) is given
# float32 counts are saturated here before the int32 cast (largest float32 below 2^31).
_COUNT_SAT = 2147483520.0


# ----------------------------------------------------------------------------- float -> counts

def _check_k(k) -> None:
    if isinstance(k, jax.core.Tracer):
        return  # a traced k cannot be checked; the caller vouches for it
    try:
        kv = float(np.asarray(k))
    except (TypeError, ValueError):
        raise NeurojaxError(f"k must be a positive number, got {k!r}") from None
    if not (math.isfinite(kv) and kv > 0):
        raise NeurojaxError(f"k must be a positive finite number (V_th = mean|x| / k), got {k!r}")


def _check_x(x) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise NeurojaxError(
            f"spike coding needs a channel (last) axis of length >= 1 to average over, got shape {x.shape}"
        )
    return x


def _check_clip(clip) -> None:
    if clip is None:
        return
    if isinstance(clip, bool) or not isinstance(clip, (int, np.integer)) or clip < 1:
        raise NeurojaxError(f"clip must be None or a positive integer count bound, got {clip!r}")


def adaptive_threshold(x: Float[Array, "... d"], k: float = DEFAULT_K) -> Float[Array, "... 1"]:
    """Per-token threshold `clip(mean(|x|) / k, 1e-5, 1e4)` over the last axis, float32 `[..., 1]`.

    The mean is taken in `x`'s dtype (integer input is first cast to float32), then cast to
    float32 and divided by `k`. No gradient flows through it (it is a per-token constant).
    Computed by the same jitted function as `spike_counts` uses, so the two agree bit for bit
    (XLA evaluates `mean` as `sum * (1/D)`, which can differ from an IEEE `sum / D` by an ulp).
    """
    _check_k(k)
    x = _check_x(x)
    return _adaptive_threshold(x, k)


@jax.jit
def _adaptive_threshold(x, k):
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    x = jax.lax.stop_gradient(x)
    mean = jnp.mean(jnp.abs(x), axis=-1, keepdims=True).astype(jnp.float32)
    return jnp.clip(mean / jnp.asarray(k, jnp.float32), V_TH_MIN, V_TH_MAX)


def _to_int32(v):
    return jnp.clip(v, -_COUNT_SAT, _COUNT_SAT).astype(jnp.int32)


@partial(jax.jit, static_argnames=("limit",))
def _integrate_fire_counts(v0, v_th, limit):
    """Number of spikes of IF neurons with initial membrane `v0`, threshold `v_th`, at most `limit` steps."""

    def cond(state):
        t, v, _ = state
        return (t < limit) & jnp.any(v >= v_th)

    def body(state):
        t, v, n = state
        s = v >= v_th
        return t + 1, jnp.where(s, v - v_th, v), n + s.astype(jnp.int32)

    _, _, n = jax.lax.while_loop(cond, body, (jnp.int32(0), v0, jnp.zeros(v0.shape, jnp.int32)))
    return n


@partial(jax.jit, static_argnames=("clip", "mode"))
def _spike_counts(x, k, clip, mode):
    v_th = _adaptive_threshold(x, k)
    xf = jax.lax.stop_gradient(x).astype(jnp.float32)
    if mode == "round":
        return _to_int32(_round_clip(xf / v_th, clip)), v_th
    limit = IF_MAX_STEPS if clip is None else int(clip)
    if mode == "integrate_fire":
        return _integrate_fire_counts(xf, v_th, limit), v_th
    # integrate_fire_signed: ON neuron sees x, OFF neuron sees -x (one loop over both)
    both = _integrate_fire_counts(jnp.stack([xf, -xf]), v_th[None], limit)
    return both[0] - both[1], v_th


def spike_counts(
    x: Float[Array, "... d"], k: float = DEFAULT_K, clip: int | None = None, mode: str = "round"
) -> tuple[Int[Array, "... d"], Float[Array, "... 1"]]:
    """Integer spike counts and the per-token threshold: `(counts int32, v_th float32 [..., 1])`.

    `mode` (see module docstring): `"round"` (default, SpikingBrain/W8ASpike:
    `round_half_even(x / V_th)`, signed, no clipping unless `clip`), `"integrate_fire"` (literal
    multi-step form: non-negative, floor-like, 0 for negative inputs) or `"integrate_fire_signed"`
    (ON/OFF pair: `on - off`, truncation toward zero). `clip` bounds counts to `[-clip, clip]`
    (in the integrate-fire modes it is the step window). Jittable with `clip` and `mode` static.
    """
    _check_k(k)
    _check_clip(clip)
    if mode not in MODES:
        raise NeurojaxError(f"unknown spike-count mode {mode!r}; known: {list(MODES)}")
    x = _check_x(x)
    return _spike_counts(x, k, None if clip is None else int(clip), mode)


def spike_coded(
    x: Float[Array, "... d"], k: float = DEFAULT_K, clip: int | None = None, mode: str = "round"
) -> Float[Array, "... d"]:
    """De-quantised spike-coded activation `counts * v_th` in `x`'s dtype, straight-through.

    Forward: exactly `spike_counts(x, k, clip, mode)` -> `counts * v_th` (float32, then cast to
    `x.dtype`). Backward: the identity w.r.t. `x` (`v_th` is treated as a constant and the
    rounding / clipping / firing is skipped), so models can be trained with coded activations.
    """
    _check_k(k)
    _check_clip(clip)
    if mode not in MODES:
        raise NeurojaxError(f"unknown spike-count mode {mode!r}; known: {list(MODES)}")
    x = _check_x(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    clip = None if clip is None else int(clip)

    def quantize(v):
        counts, v_th = _spike_counts(v, k, clip, mode)
        return (counts.astype(jnp.float32) * v_th).astype(v.dtype)

    return straight_through(quantize)(x)


def _round_clip(v, clip):
    r = round_half_even(v)
    return r if clip is None else jnp.clip(r, -clip, clip)


def spike_count_ste(
    x: Float[Array, "... d"], k: float = DEFAULT_K, clip: int | None = None
) -> tuple[Float[Array, "... d"], Float[Array, "... 1"]]:
    """`(q, v_th)`: round-mode spike counts as integer-valued float32 and the per-token threshold.

    The BitLinear form of `spike_counts(x, k, clip)` (same values, `x ~= q * v_th`), with a
    straight-through gradient `dq/dx = 1 / v_th` (`v_th` a constant), the way `absmax_int8`
    returns `(q, s_x)` with `dq/dx = s_x`.
    """
    _check_k(k)
    _check_clip(clip)
    x = _check_x(x)
    v_th = _adaptive_threshold(x, k)
    clip = None if clip is None else int(clip)
    q = straight_through(lambda v: _round_clip(v, clip))(x.astype(jnp.float32) / v_th)
    return q, v_th
