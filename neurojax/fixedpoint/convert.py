"""Conversion of a trained float MatMul-free LM into the integer-only model.

Every weight becomes an integer (ternary codes as int8, norm weights as `norm_weight_bits`
integers, forget-gate lower bounds in Q0.15, the embedding in the residual stream's scale)
and every scale becomes an integer multiplier and shift. Nothing float is left for the
forward pass: `IntModel.scales` (reals) only serve to read results back.
"""
import dataclasses
import math
from typing import Any

import jax
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.fixedpoint.config import IntQuantConfig
from neurojax.nn.config import ModelConfig
from neurojax.nn.mlgru import lower_bounds
from neurojax.quant import absmean_scale, ternary_codes
from neurojax.quant.fixed import multiplier_shift

TINY = 1e-30


# Fields of IntQuantConfig that only steer conversion (calibration, scale choice, weight widths):
# integer models that differ only in these run the same compiled forward program.
CONVERSION_ONLY = ("observer", "percentile", "power_of_two", "headroom", "norm_weight_bits")


@dataclasses.dataclass(frozen=True, eq=False)
class IntModelSpec:
    """The static (hashable) description of an integer model: architecture and quantization config.

    Equality and hashing ignore `CONVERSION_ONLY` fields, so jit caches are shared across them.
    """

    model: ModelConfig
    quant: IntQuantConfig

    def _key(self):
        q = dataclasses.asdict(self.quant)
        return self.model, tuple(sorted((k, v) for k, v in q.items() if k not in CONVERSION_ONLY))

    def __eq__(self, other):
        return isinstance(other, IntModelSpec) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


@dataclasses.dataclass
class IntModel:
    spec: IntModelSpec
    params: dict  # pytree of int8 / int32 arrays
    scales: dict  # tap name -> real scale of its integer values (reading results back only)


def static_scale(amax: float, bits: int, qcfg: IntQuantConfig) -> float:
    """Real value of one integer step so that `amax` maps to the largest `bits`-bit integer."""
    scale = max(amax * qcfg.headroom, TINY) / (2 ** (bits - 1) - 1)
    return 2.0 ** math.ceil(math.log2(scale)) if qcfg.power_of_two else scale


def rescale_constant(real: float) -> np.ndarray:
    """`[M, S]` with `real ~= M * 2**-S` (M < 2**15), as int32 for the integer forward."""
    mult, shift = multiplier_shift(float(real), 15)
    return np.array([mult, shift], np.int32)


def _int_weights(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor integers for a (norm) weight vector; returns (ints, scale)."""
    w = np.asarray(w, np.float64)
    scale = max(float(np.max(np.abs(w))), TINY) / (2 ** (bits - 1) - 1)
    return np.round(w / scale).astype(np.int32), scale


def _bitlinear(p: dict, qcfg: IntQuantConfig, s_out: float) -> dict:
    w = np.asarray(p["weight"], np.float32)
    codes, _ = ternary_codes(w)
    s_w = float(absmean_scale(w))
    norm, s_b = _int_weights(p["norm"]["weight"], qcfg.norm_weight_bits)
    qmax = 2 ** (qcfg.act_bits - 1) - 1
    d_in = w.shape[1]
    c = s_b * math.sqrt(d_in) / (qmax * s_w * s_out)
    mult, shift = rescale_constant(c)
    return {"norm": norm, "codes": np.asarray(codes, np.int8), "mult": np.int32(mult), "shift": np.int32(shift)}


def _amax(amax: dict, key: str) -> float:
    if key not in amax:
        raise NeurojaxError(f"calibration has no observation for {key!r}: was it taken on this architecture?")
    return amax[key]


def check_convertible(model_cfg: ModelConfig) -> None:
    """Refuse (NeurojaxError) an architecture the integer model does not implement: it is MLGRU + GLU
    over ternary BitLinears with absmax int8 inputs, and nothing else registered (notebook mixers,
    other linear layers or quantizers) has an integer form."""
    if model_cfg.full_precision:
        raise NeurojaxError("only ternary models convert to the integer model (this one is full_precision)")
    if model_cfg.token_mixer != "mlgru" or model_cfg.channel_mixer != "glu":
        raise NeurojaxError(f"the integer model implements mlgru + glu, not "
                            f"{model_cfg.token_mixer} + {model_cfg.channel_mixer}")
    if model_cfg.linear_name != "bitlinear" or model_cfg.quantizer_name != "absmax_int8":
        raise NeurojaxError(f"the integer model implements ternary BitLinears with absmax int8 inputs, not "
                            f"linear={model_cfg.linear_name!r} with quantizer={model_cfg.quantizer_name!r}")


def convert(model_cfg: ModelConfig, params: Any, amax: dict, qcfg: IntQuantConfig) -> IntModel:
    """Build the integer model of `params` (a trained float MatMul-free LM) from calibration `amax`."""
    check_convertible(model_cfg)
    params = jax.device_get(params)
    _check_shapes(model_cfg, params)
    lut_scale = 2.0 ** -qcfg.lut_in_frac
    rb, mb = qcfg.residual_bits, qcfg.mid_bits
    scales = {"embed": static_scale(_amax(amax, "embed"), rb, qcfg)}
    lbs = (np.array(lower_bounds(params["lower_bounds"])) if model_cfg.use_lower_bound
           else np.zeros((model_cfg.num_layers, model_cfg.d_model)))
    lbs[0] = 0.0  # layer 0 has no floor (the float model skips it)
    layers = []
    s_in = scales["embed"]
    for l in range(model_cfg.num_layers):
        p = params[f"layers_{l}"]
        pre = f"layers_{l}"
        s = {name: static_scale(_amax(amax, f"{pre}/{tap}"), bits, qcfg) for name, tap, bits in (
            ("i", "attn/i", mb), ("g", "attn/g", mb), ("h", "attn/h", qcfg.state_bits),
            ("r", "resid_mid", rb), ("gu", "mlp/gate_up", mb), ("out", "resid_out", rb))}
        for name, tap in (("i", "attn/i"), ("g", "attn/g"), ("h", "attn/h"), ("r", "resid_mid"),
                          ("gu", "mlp/gate_up"), ("out", "resid_out")):
            scales[f"{pre}/{tap}"] = s[name]
        scales[f"{pre}/attn/f"] = lut_scale
        attn, mlp = p["attn"], p["mlp"]
        layers.append({
            "attn_norm": _int_weights(p["attn_norm"]["weight"], qcfg.norm_weight_bits)[0],
            "i": _bitlinear(attn["i_proj"], qcfg, s["i"]),
            "f": _bitlinear(attn["f_proj"], qcfg, lut_scale),
            "g": _bitlinear(attn["g_proj"], qcfg, s["g"]),
            "o": _bitlinear(attn["o_proj"], qcfg, s["r"]),
            "g_norm": _int_weights(attn["g_norm"]["weight"], qcfg.norm_weight_bits)[0],
            "lb": np.round(lbs[l] * 2 ** qcfg.gate_frac).astype(np.int32),
            "mlp_norm": _int_weights(p["mlp_norm"]["weight"], qcfg.norm_weight_bits)[0],
            "gate": _bitlinear(mlp["gate_proj"], qcfg, s["gu"]),
            "down": _bitlinear(mlp["down_proj"], qcfg, s["out"]),
            "k": {
                "in_to_r": rescale_constant(s_in / s["r"]),
                "r_to_out": rescale_constant(s["r"] / s["out"]),
                "c_to_h": rescale_constant(s["i"] / s["h"]),
                "i_lut": rescale_constant(s["i"] / lut_scale),
                "h_lut": rescale_constant(s["h"] / lut_scale),
                "gate_lut": rescale_constant(s["gu"] / lut_scale),
            },
        })
        s_in = s["out"]
    scales["logits"] = static_scale(_amax(amax, "logits"), qcfg.logit_bits, qcfg)
    emb = np.asarray(params["embeddings"]["embedding"], np.float64) / scales["embed"]
    limit = 2 ** (rb - 1) - 1
    int_params = {
        "embed": np.clip(np.round(emb), -limit - 1, limit).astype(np.int32),
        "layers": layers,
        "final_norm": _int_weights(params["norm"]["weight"], qcfg.norm_weight_bits)[0],
        "head": _bitlinear(params["lm_head"], qcfg, scales["logits"]),
    }
    int_params = jax.tree_util.tree_map(np.asarray, int_params)
    return IntModel(IntModelSpec(model_cfg, qcfg), int_params, scales)


def _check_shapes(cfg: ModelConfig, params: Any) -> None:
    """A checkpoint of another architecture fails here with the first mismatching tensor named."""
    want = {
        "embeddings/embedding": (cfg.vocab_size, cfg.d_model),
        "lm_head/weight": (cfg.vocab_size, cfg.d_model),
        "layers_0/attn/i_proj/weight": (cfg.d_model, cfg.d_model),
        "layers_0/mlp/gate_proj/weight": (2 * cfg.ffn_size, cfg.d_model),
        f"layers_{cfg.num_layers - 1}/mlp/down_proj/weight": (cfg.d_model, cfg.ffn_size),
    }
    for path, shape in want.items():
        node = params
        for part in path.split("/"):
            if not isinstance(node, dict) or part not in node:
                raise NeurojaxError(f"checkpoint has no {path!r}: it is not a {cfg.num_layers}-layer "
                                    f"MatMul-free LM of this config")
            node = node[part]
        if tuple(np.shape(node)) != shape:
            raise NeurojaxError(f"checkpoint tensor {path!r} has shape {tuple(np.shape(node))}, the config "
                                f"expects {shape}: a checkpoint of another architecture")
