"""The integer-only forward pass of the MatMul-free LM (int32 throughout; no float op).

`int_forward(spec, params, tokens, state, mask)` mirrors `neurojax.nn.MatMulFreeLM`:
embedding lookup (integers in the residual scale) -> blocks (integer BitLinears, LUT
sigmoid/SiLU, the MLGRU recurrence with a 24-bit state quantized at every step, residual
adds with saturation) -> integer logits in one static scale. Whole-sequence and
token-by-token runs execute the same integer operations in the same order, so they are
equal exactly. Saturations are counted and returned, never silent.
"""
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from neurojax.fixedpoint.convert import IntModel, IntModelSpec
from neurojax.fixedpoint.ops import (
    apply_scale,
    bitlinear_input,
    int_bitlinear,
    mul_gate,
    mul_shift,
    mul_shift_small,
    norm_token,
    project,
    sigmoid_q,
    silu_q,
)
from neurojax.kernels.ternary_matmul import PackedTernary, pack
from neurojax.quant.fixed import fit
from neurojax.quant.intmath import sigmoid_lut

IntState = tuple  # one int32 [B, d] state per layer


def initial_int_state(spec: IntModelSpec, batch_size: int) -> IntState:
    return tuple(jnp.zeros((batch_size, spec.model.d_model), jnp.int32) for _ in range(spec.model.num_layers))


def _codes(p: dict):
    """Packed codes where `device_params` added them, else the int8 `[out, in]` codes."""
    return p.get("packed", p["codes"])


def _bl(p: dict, x, qc, out_bits: int, pre_norm=None):
    return int_bitlinear(x, pre_norm, p["norm"], _codes(p), p["mult"], p["shift"], qc.act_bits, out_bits)


def _proj(p: dict, prepared, qc, out_bits: int):
    return project(prepared, p["norm"], _codes(p), p["mult"], p["shift"], qc.act_bits, out_bits)


def _recurrence(f: Int[Array, "B T d"], c: Int[Array, "B T d"], h0: Int[Array, "B d"], bits: int, frac: int):
    """`h_t = sat(round(f_t * h_{t-1} / 2**frac) + c_t)`, the state quantized at every step."""

    def step(carry, fc):
        h, overflow = carry
        f_t, c_t = fc
        h, n = fit(mul_shift(h, f_t, frac, "half_away") + c_t, bits, "saturate")
        return (h, overflow + n), h

    (h_last, overflow), hs = jax.lax.scan(step, (h0, jnp.int32(0)), (jnp.swapaxes(f, 0, 1), jnp.swapaxes(c, 0, 1)))
    return jnp.swapaxes(hs, 0, 1), h_last, overflow


def _block(spec: IntModelSpec, p: dict, x, h0, mask, lut):
    qc = spec.quant
    one = 2 ** qc.gate_frac
    k = p["k"]
    counts = {}
    prepared = bitlinear_input(x, p["attn_norm"])  # shared by i, f and g
    i, counts["i"] = _proj(p["i"], prepared, qc, qc.mid_bits)
    f_pre, counts["f"] = _proj(p["f"], prepared, qc, qc.mid_bits)
    g, counts["g"] = _proj(p["g"], prepared, qc, qc.mid_bits)
    f = sigmoid_q(f_pre, (jnp.int32(2 ** 14), jnp.int32(14)), lut)  # f_proj outputs in the LUT's scale
    # Forget-gate floor; `lb` is 0 where no bound applies (layer 0), which leaves f unchanged exactly.
    # Operands below are <= 16-bit times Q0.15, so products fit int32 (mul_shift_small is exact).
    f = p["lb"] + mul_shift_small(one - p["lb"], f, qc.gate_frac)
    silu_i = silu_q(i, tuple(k["i_lut"]), lut, qc.gate_frac, qc.mid_bits)
    c = mul_gate(silu_i, one - f, qc.gate_frac, qc.mid_bits)
    c, counts["c"] = apply_scale(c, *k["c_to_h"], qc.state_bits)
    if mask is not None:
        c = c * mask[..., None]
    h, h_last, counts["h"] = _recurrence(f, c, h0, qc.state_bits, qc.gate_frac)
    silu_h = silu_q(h, tuple(k["h_lut"]), lut, qc.gate_frac, qc.state_bits)
    o = norm_token(norm_token(g * p["g_norm"]) * norm_token(silu_h))
    attn, counts["attn_out"] = _bl(p["o"], o, qc, qc.residual_bits)
    x_r, counts["resid_in"] = apply_scale(x, *k["in_to_r"], qc.residual_bits)
    r, counts["resid_mid"] = fit(x_r + attn, qc.residual_bits, "saturate")
    gu, counts["gate_up"] = _bl(p["gate"], r, qc, qc.mid_bits, p["mlp_norm"])
    gate, up = jnp.split(gu, 2, axis=-1)
    m = norm_token(silu_q(gate, tuple(k["gate_lut"]), lut, qc.gate_frac, qc.mid_bits)) * norm_token(up)
    down, counts["mlp_out"] = _bl(p["down"], m, qc, qc.residual_bits)
    r_out, counts["resid_carry"] = apply_scale(r, *k["r_to_out"], qc.residual_bits)
    out, counts["resid_out"] = fit(r_out + down, qc.residual_bits, "saturate")
    taps = {"attn/i": i, "attn/f": f_pre, "attn/g": g, "attn/h": h, "resid_mid": r, "mlp/gate_up": gu,
            "resid_out": out}
    return out, h_last, counts, taps


@functools.partial(jax.jit, static_argnames=("spec", "with_taps"))
def int_forward(
    spec: IntModelSpec,
    params: dict,
    tokens: Int[Array, "B T"],
    state: Optional[IntState] = None,
    mask: Optional[Int[Array, "B T"]] = None,
    with_taps: bool = False,
) -> tuple[Int[Array, "B T V"], IntState, dict]:
    """Integer logits `[B, T, V]` (scale `IntModel.scales["logits"]`), new state, and diagnostics.

    Diagnostics: `{"overflow": {point: count}}` and, with `with_taps`, `{"taps": {point: int32}}`.
    """
    qc = spec.quant
    lut = sigmoid_lut(qc.lut_in_frac, qc.gate_frac)
    if state is None:
        state = initial_int_state(spec, tokens.shape[0])
    if mask is not None:
        mask = mask.astype(jnp.int32)
    x = jnp.take(params["embed"], tokens, axis=0)
    overflow, taps = {}, {"embed": x}

    def layer(x, p_and_h0):
        p, h0 = p_and_h0
        x, h_last, counts, layer_taps = _block(spec, p, x, h0, mask, lut)
        return x, (h_last, counts, layer_taps if with_taps else {})

    # One compiled block scanned over stacked layer parameters (compile time independent of depth).
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *params["layers"])
    x, (h_last, counts, layer_taps) = jax.lax.scan(layer, x, (stacked, jnp.stack(state)))
    new_state = [h_last[l] for l in range(spec.model.num_layers)]
    for l in range(spec.model.num_layers):
        overflow.update({f"layers_{l}/{k}": v[l] for k, v in counts.items()})
        taps.update({f"layers_{l}/{k}": v[l] for k, v in layer_taps.items()})
    logits, overflow["logits"] = _bl(params["head"], x, qc, qc.logit_bits, params["final_norm"])
    taps["logits"] = logits
    diagnostics = {"overflow": overflow}
    if with_taps:
        diagnostics["taps"] = taps
    return logits, tuple(new_state), diagnostics


def int_decode_step(model: IntModel, tokens: Int[Array, "B"], state: IntState, mask=None):
    """One token for every sequence: integer next-token logits `[B, V]` and the new state."""
    logits, state, diag = int_forward(model.spec, model.params, tokens[:, None], state,
                                      None if mask is None else mask[:, None])
    return logits[:, 0], state, diag


def total_overflow(diagnostics: dict) -> int:
    return int(sum(int(v) for v in jax.device_get(diagnostics["overflow"]).values()))


def device_params(model: IntModel, packed: bool = True) -> Any:
    """The integer model's parameters as device arrays (what `int_forward` takes).

    With `packed`, every BitLinear also gets its codes as 2-bit `PackedTernary` under
    `"packed"`, which `int_forward` then multiplies with the `ternary_matmul` kernel (the
    same integers; 16x less weight memory than int8 codes are read per token).
    """
    params = jax.tree_util.tree_map(jnp.asarray, model.params)
    if not packed:
        return params

    def add_packed(node):
        if isinstance(node, dict):
            node = {k: add_packed(v) for k, v in node.items()}
            codes = node.get("codes")
            if codes is not None and getattr(codes, "ndim", 0) == 2:
                node["packed"] = PackedTernary(pack(codes).data)
            return node
        if isinstance(node, (list, tuple)):
            return type(node)(add_packed(v) for v in node)
        return node

    return add_packed(params)
