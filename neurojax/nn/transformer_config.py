"""Configuration and presets of the Transformer++ baseline (LLaMA-style: RoPE, SwiGLU, RMSNorm, no biases).

The field names are the ones the MatMul-free paper's "Transformer++" comparison and LLaMA-family
checkpoints need; a checkpoint importer maps `config.json` onto them:

| field | LLaMA `config.json` |
|---|---|
| `d_model` | `hidden_size` |
| `num_layers` | `num_hidden_layers` |
| `num_heads` / `num_kv_heads` | `num_attention_heads` / `num_key_value_heads` (grouped-query attention) |
| `head_dim` (None: `d_model // num_heads`) | `head_dim` |
| `intermediate_size` | `intermediate_size` |
| `rope_theta`, `rms_norm_eps` | `rope_theta`, `rms_norm_eps` |
| `tie_embeddings` | `tie_word_embeddings` |
| `max_seq_len` | `max_position_embeddings` (here also the default KV-cache length and a hard bound) |
| `qkv_bias` | `model_type` `qwen2` (biases on q/k/v); false for `llama` |
| `rope_scaling` | `rope_scaling` (`linear`, `llama3`; see `neurojax.nn.rope`) |
"""
import dataclasses
from typing import Any, Optional

from neurojax.errors import NeurojaxError
from neurojax.nn.config import config_from_dict
from neurojax.nn.linear import check_spike_fields
from neurojax.nn.rope import RopeScaling, normalize_rope_scaling


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value > 0


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a LLaMA-style decoder-only Transformer (the paper's Transformer++ baseline).

    Query head h reads kv head `h // (num_heads // num_kv_heads)` (HF `repeat_kv`); RoPE uses the
    rotate-half layout with angle `p * rope_theta^(-2i / head_dim)` on channels i and
    i + head_dim/2 (HF LLaMA; `rope_scaling` as in `neurojax.nn.rope`). Everything runs in float32.
    """

    vocab_size: int
    d_model: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_seq_len: int = 2048
    head_dim: Optional[int] = None
    init_std: float = 0.02
    # Bias on the q/k/v projections (Qwen2 has them; LLaMA does not).
    qkv_bias: bool = False
    # HF `rope_scaling` (None, or a supported type: see neurojax.nn.rope).
    rope_scaling: RopeScaling = None
    # SpikingBrain spike coding of the projection inputs (q/k/v/o, MLP gate/up; None: off).
    spike_k: Optional[float] = None
    spike_clip: Optional[int] = None

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_seq_len"):
            value = getattr(self, name)
            if not _positive_int(value):
                raise NeurojaxError(f"transformer.{name} must be a positive integer, got {value!r}")
        if self.head_dim is None:
            if self.d_model % self.num_heads:
                raise NeurojaxError(f"transformer.d_model={self.d_model} is not divisible by transformer.num_heads="
                                    f"{self.num_heads}; set transformer.head_dim explicitly or change num_heads")
        elif not _positive_int(self.head_dim):
            raise NeurojaxError(f"transformer.head_dim must be None or a positive integer, got {self.head_dim!r}")
        if self.num_heads % self.num_kv_heads:
            raise NeurojaxError(f"transformer.num_heads={self.num_heads} is not divisible by transformer.num_kv_heads="
                                f"{self.num_kv_heads} (grouped-query attention shares each kv head by a whole group)")
        if self.attention_head_dim % 2:
            raise NeurojaxError(f"the attention head size must be even (RoPE rotates pairs), got "
                                f"{self.attention_head_dim}")
        for name in ("tie_embeddings", "qkv_bias"):
            if not isinstance(getattr(self, name), bool):
                raise NeurojaxError(f"transformer.{name} must be True or False, got {getattr(self, name)!r}")
        object.__setattr__(self, "rope_scaling", normalize_rope_scaling(self.rope_scaling, "transformer.rope_scaling"))
        check_spike_fields(self.spike_k, self.spike_clip, "transformer")
        for name, low in (("rope_theta", "> 0"), ("rms_norm_eps", ">= 0"), ("init_std", ">= 0")):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
                value > 0 if low == "> 0" else value >= 0)
            if not ok:
                raise NeurojaxError(f"transformer.{name} must be a number {low}, got {value!r}")

    @property
    def attention_head_dim(self) -> int:
        """Channels per attention head: `head_dim`, or `d_model // num_heads` when it is None."""
        return self.head_dim if self.head_dim is not None else self.d_model // self.num_heads

    @property
    def num_groups(self) -> int:
        """Query heads per kv head (the GQA group size)."""
        return self.num_heads // self.num_kv_heads

    def replace(self, **changes) -> "TransformerConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["rope_scaling"] = None if self.rope_scaling is None else dict(self.rope_scaling)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TransformerConfig":
        return config_from_dict(cls, values, "transformer")


TRANSFORMER_PRESETS: dict[str, TransformerConfig] = {
    # The MatMul-free "tiny" preset's sizes (d 256, 4 layers, FFN 512, byte vocabulary, untied):
    # q/k/v/o match MLGRU's i/f/g/o projections and SwiGLU's gate/up/down match the GLU, so the two
    # differ in parameters only by the MatMul-free LM's per-projection norms and lower bounds.
    "transformer_tiny": TransformerConfig(
        vocab_size=259, d_model=256, num_layers=4, num_heads=4, num_kv_heads=4, intermediate_size=512, rope_theta=1e4,
        rms_norm_eps=1e-6, max_seq_len=2048),
    # The MatMul-free "micro" preset's sizes, for unit tests.
    "transformer_micro": TransformerConfig(
        vocab_size=259, d_model=32, num_layers=2, num_heads=4, num_kv_heads=4, intermediate_size=64, rope_theta=1e4,
        rms_norm_eps=1e-6, max_seq_len=512),
    # The MatMul-free 370M preset's sizes (not a published checkpoint: the paper's Transformer++ config
    # is not given in the spec notes; 16 heads of 64 channels is the LLaMA-family choice at d 1024).
    "transformer_370M": TransformerConfig(
        vocab_size=32000, d_model=1024, num_layers=24, num_heads=16, num_kv_heads=16, intermediate_size=2816, rope_theta=1e4,
        rms_norm_eps=1e-6, max_seq_len=2048),
    # HuggingFaceTB/SmolLM2-135M (LLaMA architecture; config.json: hidden 576, 30 layers, 9 heads,
    # 3 kv heads, intermediate 1536, rope_theta 1e5, rms_norm_eps 1e-5, tied, max positions 8192).
    "smollm2_135M": TransformerConfig(
        vocab_size=49152, d_model=576, num_layers=30, num_heads=9, num_kv_heads=3, intermediate_size=1536, rope_theta=1e5,
        rms_norm_eps=1e-5, tie_embeddings=True, max_seq_len=8192, init_std=0.041666666666666664),
}


def transformer_preset(name: str, **overrides) -> TransformerConfig:
    """The Transformer++ preset called `name` (case-insensitive), with optional field overrides."""
    lookup = {k.lower(): v for k, v in TRANSFORMER_PRESETS.items()}
    if not isinstance(name, str) or name.lower() not in lookup:
        raise NeurojaxError(f"unknown transformer preset {name!r}; known: {list(TRANSFORMER_PRESETS)}")
    return lookup[name.lower()].replace(**overrides) if overrides else lookup[name.lower()]
