"""Convert a Transformer++ (LLaMA / Qwen2) into a SpikingBrain-style hybrid (spec: spikingbrain.md).

SpikingBrain-7B is Qwen2.5-7B converted, not trained from scratch. Here a trained `TransformerLM`
becomes a `HybridLM` with the same width, heads, MLP and vocabulary:

- embeddings, every RMSNorm, every MLP and the head are kept (copied bit for bit);
- each attention layer becomes, per the layout (`parse_layout`; default "alternate": SpikingBrain-7B's
  even layers GLA, odd layers SWA),
  (a) **gated linear attention** reusing the layer's q/k/v/o weights (and biases) under a ReLU feature
      map, with three new parameter groups: the low-rank decay (`gk_proj_0`, `gk_proj_1`) and the
      per-head output norm (`g_norm`); or
  (b) **sliding-window attention** reusing the same weights with a window of `window` tokens, which is
      exactly the teacher's attention on contexts of up to `window` tokens.

How the new GLA parameters start close to the teacher on short contexts (measured per layer by
`calibrate`, reported by the conversion table):
- decay: `gk_proj_1.weight = 0`, so the decay starts data-independent, `exp(g) = 2^(-1/h)`: the state
  forgets half its content every `h` tokens; `gk_proj_1.bias = logit(2^(-N/h))` (`N` the decay
  normalizer) gives exactly that, and `gk_proj_0` is random (N(0, init_std)) so the gate's gradient
  is non-zero from the first step and it becomes data-dependent as it trains;
- the half-life `h` of each layer is chosen from `half_lives` and the `g_norm` weight is fitted, by
  least squares per channel, so the layer's output matches the teacher attention's output (before
  `o_proj`) on calibration batches: the ReLU linear attention cannot reproduce softmax weights, but the
  per-head RMSNorm removes its unnormalised scale and the fitted gain restores the teacher's.
Without calibration data the decay uses `half_lives[len // 2]` and `g_norm` starts at ones.
"""
import dataclasses
import math
from typing import Any, Callable, Optional, Sequence

import flax
import jax
import jax.numpy as jnp
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.nn.hybrid import hybrid_abstract_params
from neurojax.nn.hybrid_config import LAYER_KINDS, HybridConfig
from neurojax.nn.linear_attention import GatedLinearAttention
from neurojax.nn.mlgru import TAPS
from neurojax.nn.transformer import TransformerLM
from neurojax.nn.transformer_config import TransformerConfig

ALTERNATE = "alternate"  # SpikingBrain-7B: GLA on even layers (0, 2, ...), SWA on odd ones
NEW_PARAMS = ("gk_proj_0", "gk_proj_1", "g_norm")  # what a GLA layer adds to the teacher's attention


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    """How to convert: per-layer layout, SWA window, GLA decay shape and calibration, optional spike coding."""

    layout: str = ALTERNATE
    window: int = 64
    decay_rank: int = 16
    decay_normalizer: float = 16.0
    # Candidate state half-lives (tokens) searched per GLA layer; small ones matter: a small teacher's
    # attention is mostly local (the tiny preset's layers pick 1-2 tokens).
    half_lives: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 32.0, 128.0, 512.0)
    gla_norm_eps: float = 1e-5
    spike_k: Optional[float] = None

    def __post_init__(self):
        for name in ("window", "decay_rank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise NeurojaxError(f"convert.{name} must be a positive integer, got {value!r}")
        lives = tuple(self.half_lives) if isinstance(self.half_lives, (tuple, list)) else None
        if not lives or any(isinstance(h, bool) or not isinstance(h, (int, float)) or not h > 0 for h in lives):
            raise NeurojaxError(f"convert.half_lives must be a non-empty list of positive token counts, "
                                f"got {self.half_lives!r}")
        object.__setattr__(self, "half_lives", tuple(float(h) for h in lives))
        if not self.decay_normalizer > 0:
            raise NeurojaxError(f"convert.decay_normalizer must be > 0, got {self.decay_normalizer!r}")
        if not isinstance(self.layout, str):
            raise NeurojaxError(f"convert.layout must be a string ('{ALTERNATE}' or e.g. 'gla,swa,gla,swa'), "
                                f"got {self.layout!r}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["half_lives"] = list(self.half_lives)
        return d


def parse_layout(layout: str, num_layers: int) -> tuple[str, ...]:
    """Layer kinds from `"alternate"` (even GLA, odd SWA) or a comma-separated list of exactly `num_layers`
    kinds (`"gla,swa,swa,gla"`)."""
    if not isinstance(layout, str) or not layout.strip():
        raise NeurojaxError(f"convert.layout must be '{ALTERNATE}' or a comma-separated list of {list(LAYER_KINDS)}, "
                            f"got {layout!r}")
    if layout.strip().lower() == ALTERNATE:
        return tuple(LAYER_KINDS[l % 2] for l in range(num_layers))
    kinds = tuple(k.strip().lower() for k in layout.split(","))
    bad = sorted({k for k in kinds if k not in LAYER_KINDS})
    if bad:
        raise NeurojaxError(f"convert.layout {layout!r} has unknown layer kinds {bad}; known: {list(LAYER_KINDS)} "
                            f"(or '{ALTERNATE}')")
    if len(kinds) != num_layers:
        raise NeurojaxError(f"convert.layout {layout!r} names {len(kinds)} layers, the teacher has {num_layers}")
    return kinds


def student_config(teacher: TransformerConfig, conv: ConversionConfig) -> HybridConfig:
    """The hybrid a teacher converts into: the teacher's shapes, the layout's mixers, the conversion's window."""
    if not isinstance(teacher, TransformerConfig):
        raise NeurojaxError(f"the teacher must be a Transformer++ (TransformerConfig), got {type(teacher).__name__}")
    kinds = parse_layout(conv.layout, teacher.num_layers)
    if teacher.num_heads % teacher.num_kv_heads:  # TransformerConfig refuses it too; a guard for hand-made configs
        raise NeurojaxError(f"teacher num_heads={teacher.num_heads} is not a multiple of num_kv_heads="
                            f"{teacher.num_kv_heads}: GLA / SWA share kv heads by whole groups")
    if conv.decay_rank > teacher.d_model:
        raise NeurojaxError(f"convert.decay_rank={conv.decay_rank} exceeds the teacher's d_model={teacher.d_model}")
    return HybridConfig(
        vocab_size=teacher.vocab_size, d_model=teacher.d_model, num_layers=teacher.num_layers,
        num_heads=teacher.num_heads, num_kv_heads=teacher.num_kv_heads, head_dim=teacher.attention_head_dim,
        intermediate_size=teacher.intermediate_size, window=conv.window, rope_theta=teacher.rope_theta,
        rms_norm_eps=teacher.rms_norm_eps, decay_rank=conv.decay_rank, decay_normalizer=conv.decay_normalizer,
        gla_norm_eps=conv.gla_norm_eps, qkv_bias=teacher.qkv_bias, layer_pattern=kinds, init_std=teacher.init_std,
        tie_embeddings=teacher.tie_embeddings, rope_scaling=teacher.rope_scaling, spike_k=conv.spike_k)


def decay_bias(half_life: float, normalizer: float) -> float:
    """`b` with `exp(logsigmoid(b) / normalizer) = 2^(-1 / half_life)`: the state halves every `half_life` tokens."""
    p = 2.0 ** (-normalizer / half_life)  # sigmoid(b)
    return math.log(p) - math.log1p(-p)


def _flat(tree: Any) -> dict:
    return flax.traverse_util.flatten_dict(tree)


def reused_paths(student: HybridConfig) -> list[tuple[str, ...]]:
    """Every student parameter copied from the teacher (everything but the GLA layers' `NEW_PARAMS`)."""
    return [p for p in _flat(hybrid_abstract_params(student)) if not (len(p) > 2 and p[2] in NEW_PARAMS)]


def new_param_paths(student: HybridConfig) -> list[tuple[str, ...]]:
    """The parameters a conversion adds (decay projections and output norms of the GLA layers)."""
    return [p for p in _flat(hybrid_abstract_params(student)) if len(p) > 2 and p[2] in NEW_PARAMS]


@dataclasses.dataclass
class LayerCalibration:
    """One GLA layer's calibration: the chosen half-life and the relative error of its output vs the teacher's."""

    layer: int
    half_life: float
    rel_error: float  # ||gla - teacher||^2 / ||teacher||^2 on the calibration batches, fitted g_norm
    rel_error_default: float  # the same with the hybrid's own random initialisation of the new parameters


def _gla_params(layer: dict, cfg: HybridConfig, half_life: float, down: jax.Array) -> dict:
    kv = cfg.num_kv_heads * cfg.head_dim
    p = {k: layer[k] for k in ("q_proj", "k_proj", "v_proj", "o_proj")}
    p["gk_proj_0"] = {"weight": down}
    p["gk_proj_1"] = {"weight": jnp.zeros((kv, cfg.decay_rank), jnp.float32),
                      "bias": jnp.full((kv,), decay_bias(half_life, cfg.decay_normalizer), jnp.float32)}
    p["g_norm"] = {"weight": jnp.ones((cfg.head_dim,), jnp.float32)}
    return p


def _normalized_output(cfg: HybridConfig, params: dict, x: jax.Array) -> jax.Array:
    """The GLA's per-head RMS-normalised output `[B, T, H, dh]` (g_norm weight 1) for inputs `x [B, T, d]`."""
    mixer = GatedLinearAttention(cfg.replace(spike_k=None, spike_clip=None))
    state = GatedLinearAttention.initial_state(cfg, x.shape[0])
    _, taps = mixer.apply({"params": params}, x, state, mutable=[TAPS])
    o = taps[TAPS]["o_in"][0]
    return o.reshape(*o.shape[:2], cfg.num_heads, cfg.head_dim)


def _fit_gain(u: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-channel least-squares gain `w` minimising ||u w - target||^2 (channels on the last axis)."""
    u = u.reshape(-1, u.shape[-1]).astype(np.float64)
    t = target.reshape(-1, target.shape[-1]).astype(np.float64)
    w = (u * t).sum(0) / np.maximum((u * u).sum(0), 1e-30)
    return w, float(((u * w - t) ** 2).sum() / max((t * t).sum(), 1e-30))


def teacher_taps(teacher_cfg: TransformerConfig, teacher_params: Any, batches: Sequence[np.ndarray]) -> list[dict]:
    """Per batch: each layer's attention input (`in`, after the norm) and output before `o_proj` (`o_in`)."""
    model = TransformerLM(teacher_cfg)
    run = jax.jit(lambda p, t: model.apply({"params": p}, t, mutable=[TAPS])[1][TAPS])
    out = []
    for tokens in batches:
        taps = run(teacher_params, jnp.asarray(tokens, jnp.int32))
        out.append({l: (taps[f"layers_{l}"]["self_attn"]["in"][0], taps[f"layers_{l}"]["self_attn"]["o_in"][0])
                    for l in range(teacher_cfg.num_layers)})
    return out


def convert_params(teacher_cfg: TransformerConfig, teacher_params: Any, student: HybridConfig, rng: jax.Array,
                   calibration: Optional[Sequence[np.ndarray]] = None, half_lives: Optional[Sequence[float]] = None,
                   log: Callable[[str], None] = lambda s: None) -> tuple[dict, list[LayerCalibration]]:
    """The student's parameters from the teacher's, and the per-GLA-layer calibration report.

    `calibration`: token batches `[B, T]` (short contexts) on which each GLA layer's half-life and output
    gain are fitted to the teacher's attention output; None keeps the middle half-life and unit gains.
    Every reused tensor is the teacher's array itself (no arithmetic), so it is bit-identical.
    """
    lives = tuple(half_lives or ConversionConfig().half_lives)
    flat_t = _flat(teacher_params)
    abstract = _flat(hybrid_abstract_params(student))
    out = {}
    for path in reused_paths(student):
        if path not in flat_t:
            raise NeurojaxError(f"the teacher has no parameter {'/'.join(path)} that the student reuses; is it a "
                                f"Transformer++ of the same shape?")
        if tuple(flat_t[path].shape) != tuple(abstract[path].shape):
            raise NeurojaxError(f"teacher parameter {'/'.join(path)} has shape {tuple(flat_t[path].shape)}, the "
                                f"student needs {tuple(abstract[path].shape)}")
        out[path] = flat_t[path]
    taps = teacher_taps(teacher_cfg, teacher_params, calibration) if calibration else None
    report = []
    gla_layers = [l for l, kind in enumerate(student.layer_kinds) if kind == "gla"]
    keys = jax.random.split(rng, max(1, len(gla_layers)))
    for key, l in zip(keys, gla_layers):
        layer = {name: {k: flat_t[(f"layers_{l}", "self_attn", name, k)] for k in ("weight", "bias")
                        if (f"layers_{l}", "self_attn", name, k) in flat_t}
                 for name in ("q_proj", "k_proj", "v_proj", "o_proj")}
        down = student.init_std * jax.random.normal(key, (student.decay_rank, student.d_model), jnp.float32)
        best = (lives[len(lives) // 2], np.ones(student.head_dim, np.float32), float("nan"))
        default_err = float("nan")
        if taps is not None:
            x = jnp.concatenate([t[l][0] for t in taps])
            target = np.asarray(jnp.concatenate([t[l][1] for t in taps]))
            target = target.reshape(*target.shape[:2], student.num_heads, student.head_dim)
            best = None
            for h in lives:
                u = np.asarray(_normalized_output(student, _gla_params(layer, student, h, down), x))
                gain, err = _fit_gain(u, target)
                if best is None or err < best[2]:
                    best = (h, gain.astype(np.float32), err)
            default_err = _default_init_error(student, layer, x, target, key)
            log(f"[convert] layer {l} (gla): half-life {best[0]:g} tokens, relative error {best[2]:.4f} "
                f"(random init of the new parameters: {default_err:.4f})")
        params = _gla_params(layer, student, best[0], down)
        params["g_norm"]["weight"] = jnp.asarray(best[1])
        for name in NEW_PARAMS:
            for k, v in params[name].items():
                out[(f"layers_{l}", "self_attn", name, k)] = v
        report.append(LayerCalibration(l, best[0], best[2], default_err))
    missing = set(abstract) - set(out)
    if missing:
        raise AssertionError(f"conversion left parameters unset: {sorted(missing)[:3]}")  # a bug, not bad input
    return flax.traverse_util.unflatten_dict(out), report


def _default_init_error(student: HybridConfig, layer: dict, x: jax.Array, target: np.ndarray, key: jax.Array) -> float:
    """The relative output error of the GLA with the hybrid's own random init of the new parameters (no fit)."""
    mixer = GatedLinearAttention(student.replace(spike_k=None, spike_clip=None))
    fresh = mixer.init(key, x[:1, :1], GatedLinearAttention.initial_state(student, 1))["params"]
    params = {**{k: fresh[k] for k in NEW_PARAMS}, **layer}
    mixer_out = np.asarray(_normalized_output(student, params, x))
    t = target.astype(np.float64)
    return float(((mixer_out - t) ** 2).sum() / max((t * t).sum(), 1e-30))
