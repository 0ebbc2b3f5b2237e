"""Gated linear attention (GLA) with data-dependent decay and grouped kv heads (SpikingBrain-7B style).

Per token t, kv head j, query head h in j's group (`h // G == j`, G = num_heads / num_kv_heads,
the same order as `repeat_kv` / `jnp.repeat(kv, G, axis=heads)`):

    q_t = relu(W_q x_t + b_q)                    [H, dk]
    k_t = relu(W_k x_t + b_k),  v_t = W_v x_t + b_v    [H_kv, dk], [H_kv, dv]
    g_t = logsigmoid(W_up W_down x_t + b_up) / 16      [H_kv, dk]   (log decay, < 0)
    S_t[j] = diag(exp(g_t[j])) S_{t-1}[j] + k_t[j]^T v_t[j]         [dk, dv]
    o_t[h] = dk^-1/2 * q_t[h] S_t[h // G]                            [dv]
    out_t = W_o concat_h(rms_norm(o_t[h]; w_norm))                   (no output gate)

Because k, v and the decay are per kv head, the state of the G query heads of a group would be
identical: it is kept once per kv head, `S [B, H_kv, dk, dv]` (exactly what repeating k/v/g to
H heads computes, at 1/G of the memory). The `dk^-1/2` query scale is the default of `fla`'s GLA
kernels. No RoPE here: the decay carries position. The sequence form scans the recurrence over
time (`lax.scan`); one decode step is the same step function applied once.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.nn.hybrid_config import HybridConfig
from neurojax.nn.linear import Linear
from neurojax.nn.mlgru import TAPS
from neurojax.nn.norm import RMSNorm


def gla_step(
    state: Float[Array, "B K dk dv"],
    q: Float[Array, "B K G dk"],
    k: Float[Array, "B K dk"],
    v: Float[Array, "B K dv"],
    g: Float[Array, "B K dk"],
    scale: float,
) -> tuple[Float[Array, "B K dk dv"], Float[Array, "B K G dv"]]:
    """One step: `S = exp(g)[:, None] * S + k^T v`; `o = scale * q S` (for each query head of the group)."""
    state = jnp.exp(g)[..., :, None] * state + k[..., :, None] * v[..., None, :]
    out = scale * jnp.einsum("bjgk,bjkv->bjgv", q, state)
    return state, out


def gla_recurrence(
    q: Float[Array, "B T K G dk"],
    k: Float[Array, "B T K dk"],
    v: Float[Array, "B T K dv"],
    g: Float[Array, "B T K dk"],
    state: Float[Array, "B K dk dv"],
    scale: float,
) -> tuple[Float[Array, "B T K G dv"], Float[Array, "B K dk dv"]]:
    """The GLA recurrence over a sequence (float32 `lax.scan`); returns outputs and the final state."""
    tm = lambda a: jnp.moveaxis(a.astype(jnp.float32), 1, 0)  # noqa: E731  (time-major)

    def body(s, xs):
        return gla_step(s, *xs, scale)

    final, out = jax.lax.scan(body, state.astype(jnp.float32), (tm(q), tm(k), tm(v), tm(g)))
    return jnp.moveaxis(out, 0, 1), final


class GatedLinearAttention(nn.Module):
    """GLA token mixer; see the module docstring for the equations and parameter names."""

    config: HybridConfig

    @staticmethod
    def initial_state(config: HybridConfig, batch_size: int) -> Float[Array, "B K dk dv"]:
        """Zero state `[B, num_kv_heads, head_dim, head_dim]` (independent of sequence length)."""
        return jnp.zeros((batch_size, config.num_kv_heads, config.head_dim, config.head_dim), jnp.float32)

    @nn.compact
    def __call__(
        self, x: Float[Array, "B T d"], state: Float[Array, "B K dk dv"]
    ) -> tuple[Float[Array, "B T d"], Float[Array, "B K dk dv"]]:
        cfg = self.config
        b, t, _ = x.shape
        kh, g_, dh = cfg.num_kv_heads, cfg.num_groups, cfg.head_dim
        dense = lambda n, name, bias: Linear(n, cfg.init_std, bias, cfg.spike_k, cfg.spike_clip, name=name)  # noqa: E731
        self.sow(TAPS, "in", x)
        q = jax.nn.relu(dense(cfg.num_heads * dh, "q_proj", cfg.qkv_bias)(x)).reshape(b, t, kh, g_, dh)
        k = jax.nn.relu(dense(kh * dh, "k_proj", cfg.qkv_bias)(x)).reshape(b, t, kh, dh)
        v = dense(kh * dh, "v_proj", cfg.qkv_bias)(x).reshape(b, t, kh, dh)
        # The low-rank decay's inner projection reads a rank-r latent, not an activation: never coded.
        gk = Linear(kh * dh, cfg.init_std, True, name="gk_proj_1")(dense(cfg.decay_rank, "gk_proj_0", False)(x))
        g = (jax.nn.log_sigmoid(gk) / cfg.decay_normalizer).reshape(b, t, kh, dh)
        o, state = gla_recurrence(q, k, v, g, state, dh ** -0.5)
        o = RMSNorm(cfg.gla_norm_eps, name="g_norm")(o.reshape(b, t, cfg.num_heads, dh))
        o = o.reshape(b, t, cfg.num_heads * dh)
        self.sow(TAPS, "o_in", o)
        return dense(cfg.d_model, "o_proj", False)(o), state
