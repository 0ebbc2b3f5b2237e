"""Configuration and presets of the SpikingBrain-style hybrid LM (spec: spikingbrain.md).

The model alternates gated linear attention ("gla") and sliding-window softmax
attention ("swa") layers, both with grouped-query heads, on a Qwen2-style
pre-norm residual stack (RMSNorm, SwiGLU, RoPE in the softmax layers).
`layer_pattern` is cycled over the layers: the default `("gla", "swa")` puts GLA
on even layers (0, 2, ...) and SWA on odd ones, as the spec states.
"""
import dataclasses
from typing import Any, Optional

from neurojax.errors import NeurojaxError
from neurojax.nn.config import config_from_dict
from neurojax.nn.linear import check_spike_fields
from neurojax.nn.rope import RopeScaling, normalize_rope_scaling

LAYER_KINDS = ("gla", "swa")


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """Architecture of a hybrid GLA / sliding-window-attention LM.

    - `window`: a query at absolute position t attends to the keys at positions
      `t - window < s <= t`, i.e. itself and the `window - 1` previous tokens
      (exactly `min(t + 1, window)` keys).
    - GLA decay: `g = logsigmoid(W_up (W_down x) + b) / decay_normalizer`, with
      `W_down: d_model -> decay_rank` (no bias) and `W_up: decay_rank ->
      num_kv_heads * head_dim` (bias): one decay per kv head and key channel.
    - `gla_norm_eps`: eps of the per-head RMSNorm on the GLA output (1e-5 is the
      default of the `fla` RMSNorm the upstream layer uses); `rms_norm_eps` is
      used by every other norm.
    - `qkv_bias`: bias on the q/k/v projections of both layer kinds (Qwen2.5, the
      model SpikingBrain-7B was converted from, has them); o_proj and the MLP have none.
    """

    vocab_size: int
    d_model: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    window: int
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-6
    decay_rank: int = 16
    decay_normalizer: float = 16.0
    gla_norm_eps: float = 1e-5
    qkv_bias: bool = True
    layer_pattern: tuple[str, ...] = ("gla", "swa")
    init_std: float = 0.02
    tie_embeddings: bool = False
    # The sequence budget: the longest prompt + generation the model is run on (None: no
    # bound). A window larger than it would be a cache that can never fill: refused.
    max_seq_len: Optional[int] = None
    # HF `rope_scaling` of the SWA layers' RoPE (see neurojax.nn.rope), e.g. kept from a converted teacher.
    rope_scaling: RopeScaling = None
    # SpikingBrain spike coding of the projection inputs (q/k/v/decay/o, MLP gate/up; None: off).
    spike_k: Optional[float] = None
    spike_clip: Optional[int] = None

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim",
                     "intermediate_size", "window", "decay_rank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise NeurojaxError(f"hybrid.{name} must be a positive integer, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise NeurojaxError(
                f"hybrid.num_heads={self.num_heads} is not divisible by hybrid.num_kv_heads={self.num_kv_heads}")
        if self.head_dim % 2:
            raise NeurojaxError(f"hybrid.head_dim must be even (RoPE rotates pairs), got {self.head_dim}")
        for name in ("rope_theta", "decay_normalizer"):
            if not getattr(self, name) > 0:
                raise NeurojaxError(f"hybrid.{name} must be > 0, got {getattr(self, name)}")
        for name in ("rms_norm_eps", "gla_norm_eps", "init_std"):
            if not getattr(self, name) >= 0:
                raise NeurojaxError(f"hybrid.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_seq_len is not None:
            if isinstance(self.max_seq_len, bool) or not isinstance(self.max_seq_len, int) or self.max_seq_len <= 0:
                raise NeurojaxError(f"hybrid.max_seq_len must be None or a positive integer, got {self.max_seq_len!r}")
            if self.window > self.max_seq_len:
                raise NeurojaxError(f"hybrid.window={self.window} is larger than the sequence budget "
                                    f"hybrid.max_seq_len={self.max_seq_len}; use window <= max_seq_len")
        object.__setattr__(self, "rope_scaling", normalize_rope_scaling(self.rope_scaling, "hybrid.rope_scaling"))
        check_spike_fields(self.spike_k, self.spike_clip, "hybrid")
        pattern = self.layer_pattern
        if isinstance(pattern, str) or not isinstance(pattern, (tuple, list)) or not pattern:
            raise NeurojaxError(f"hybrid.layer_pattern must be a non-empty tuple of {LAYER_KINDS}, got {pattern!r}")
        bad = [k for k in pattern if k not in LAYER_KINDS]
        if bad:
            raise NeurojaxError(f"hybrid.layer_pattern has unknown layer kinds {bad}; known: {list(LAYER_KINDS)}")
        object.__setattr__(self, "layer_pattern", tuple(pattern))

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """Kind of every layer: `layer_pattern` cycled (default: even "gla", odd "swa")."""
        p = self.layer_pattern
        return tuple(p[i % len(p)] for i in range(self.num_layers))

    @property
    def num_groups(self) -> int:
        """Query heads per kv head (the GQA group size)."""
        return self.num_heads // self.num_kv_heads

    def replace(self, **changes) -> "HybridConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layer_pattern"] = list(self.layer_pattern)
        d["rope_scaling"] = None if self.rope_scaling is None else dict(self.rope_scaling)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "HybridConfig":
        return config_from_dict(cls, values, "hybrid")


HYBRID_PRESETS: dict[str, HybridConfig] = {
    # The SpikingBrain-7B layout (Qwen2.5-7B dimensions). Parameter count: see tests/nn/test_hybrid.py.
    "spikingbrain_7B": HybridConfig(
        vocab_size=152064, d_model=3584, num_layers=28, num_heads=28, num_kv_heads=4, head_dim=128,
        intermediate_size=18944, window=4096, rope_theta=1e6, rms_norm_eps=1e-6, decay_rank=16),
    # Byte-level vocabulary (256 bytes + PAD/BOS/EOS); small enough to train on CPU.
    "hybrid_tiny": HybridConfig(
        vocab_size=259, d_model=256, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=64,
        intermediate_size=768, window=64, rope_theta=1e4, decay_rank=16),
    # For unit tests: one layer of each kind, compiles in about a second.
    "hybrid_micro": HybridConfig(
        vocab_size=259, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
        intermediate_size=64, window=4, rope_theta=1e4, decay_rank=4),
}


def hybrid_preset(name: str, **overrides) -> HybridConfig:
    """The hybrid preset called `name` (case-insensitive), with optional field overrides."""
    lookup = {k.lower(): v for k, v in HYBRID_PRESETS.items()}
    if name.lower() not in lookup:
        raise NeurojaxError(f"unknown hybrid preset {name!r}; known: {list(HYBRID_PRESETS)}")
    return lookup[name.lower()].replace(**overrides) if overrides else lookup[name.lower()]
