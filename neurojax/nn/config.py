"""Model configuration and presets for the MatMul-free LM (spec: mmfree.md).

`ModelConfig` is the single description of an architecture: the Flax model, the
parameter counter, the checkpoint converters and the binaries all read it.
"""
import dataclasses
import math
from typing import Any, Optional

from neurojax.errors import NeurojaxError

# Every BitLinear applies RMSNorm with this eps in the reference's fused forward
# (the module is built with 1e-8, but 1e-6 is what runs, lm_head included).
BITLINEAR_NORM_EPS = 1e-6


def default_intermediate_size(d_model: int, hidden_ratio: float = 4) -> int:
    """GLU width `256 * ceil(int(d * hidden_ratio * 2/3) / 256)` (370M -> 2816)."""
    return 256 * math.ceil(int(d_model * hidden_ratio * 2 / 3) / 256)


def config_from_dict(cls: type, values: dict[str, Any], what: str) -> Any:
    """`cls(**values)` for a config dataclass, refusing unknown fields with an error naming them."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise NeurojaxError(f"unknown {what} config fields {unknown}; known: {sorted(known)}")
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a MatMul-free LM.

    `full_precision=True` keeps the architecture (every projection keeps its own
    RMSNorm) but neither ternarizes weights nor int8-quantizes activations: the
    baseline that isolates what quantization costs.
    """

    vocab_size: int
    d_model: int
    num_layers: int
    intermediate_size: Optional[int] = None  # None -> default_intermediate_size
    hidden_ratio: Optional[float] = 4  # None (as in some checkpoint configs) means 4
    num_heads: int = 1
    use_lower_bound: bool = True
    rms_norm_eps: float = 1e-6
    full_precision: bool = False
    token_mixer: str = "mlgru"
    channel_mixer: str = "glu"
    init_std: float = 0.02
    # SpikingBrain spike coding of every BitLinear input instead of absmax int8 (None: off):
    # counts round(y / V_th), V_th = mean|y| / spike_k, clipped to +-spike_clip if set.
    spike_k: Optional[float] = None
    spike_clip: Optional[int] = None
    # Registry choices (neurojax.nn.registry). None means the default, so the configs of runs
    # written before these fields existed compare equal on resume:
    linear: Optional[str] = None  # LINEARS name; None: "bitlinear"
    quantizer: Optional[str] = None  # QUANTIZERS name for BitLinear inputs; None: "spike" if spike_k else "absmax_int8"
    neuron: Optional[str] = None  # NEURONS name read by the "neuron" quantizer; None: "if"
    neuron_steps: Optional[int] = None  # time steps of the "neuron" quantizer's rate code; None: 8
    attention_window: Optional[int] = None  # keys seen by the "swa" token mixer; None: 64

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "num_layers", "num_heads"):
            if int(getattr(self, name)) <= 0:
                raise NeurojaxError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise NeurojaxError(
                f"model.d_model={self.d_model} is not divisible by model.num_heads={self.num_heads}")
        if self.intermediate_size is not None and self.intermediate_size <= 0:
            raise NeurojaxError(f"model.intermediate_size must be positive or None, got {self.intermediate_size}")
        if self.spike_k is not None and not self.spike_k > 0:
            raise NeurojaxError(f"model.spike_k must be > 0 (V_th = mean|x| / k) or None, got {self.spike_k}")
        if self.spike_clip is not None and (self.spike_k is None or int(self.spike_clip) < 1):
            raise NeurojaxError(f"model.spike_clip must be a positive count bound and needs model.spike_k, "
                                f"got spike_clip={self.spike_clip}, spike_k={self.spike_k}")
        if self.rms_norm_eps < 0:
            raise NeurojaxError(f"model.rms_norm_eps must be >= 0, got {self.rms_norm_eps}")
        for name in ("neuron_steps", "attention_window"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise NeurojaxError(f"model.{name} must be a positive int or None, got {v!r}")
        self._check_linear_choice()

    def _check_linear_choice(self) -> None:
        """Refuse combinations of the built-in linear layers and quantizers that would be ignored."""
        linear, quantizer = self.linear_name, self.quantizer_name
        if linear == "spike" and self.spike_k is None:
            raise NeurojaxError("model.linear='spike' spike-codes every projection input: set model.spike_k")
        if linear != "bitlinear" and self.full_precision:
            raise NeurojaxError(f"model.full_precision applies to model.linear='bitlinear' only, got "
                                f"linear={linear!r} (which is already full precision)")
        if linear == "full_precision" and self.spike_k is not None:
            raise NeurojaxError("model.spike_k with model.linear='full_precision': use model.linear='spike'")
        if linear != "bitlinear" and self.quantizer is not None:
            raise NeurojaxError(f"model.quantizer={self.quantizer!r} applies to model.linear='bitlinear' only, "
                                f"got linear={linear!r}")
        if quantizer == "spike" and self.spike_k is None:
            raise NeurojaxError("model.quantizer='spike' needs model.spike_k (V_th = mean|x| / spike_k)")
        if self.spike_k is not None and quantizer == "absmax_int8":
            raise NeurojaxError("model.spike_k is set but model.quantizer='absmax_int8' ignores it")
        if self.spike_clip is not None and quantizer not in ("spike", None) and linear == "bitlinear":
            raise NeurojaxError(f"model.spike_clip bounds the 'spike' quantizer's counts, not {quantizer!r}")
        if (self.neuron is not None or self.neuron_steps is not None) and quantizer != "neuron":
            raise NeurojaxError(f"model.neuron / model.neuron_steps are read by model.quantizer='neuron' only, "
                                f"got quantizer={quantizer!r}")

    @property
    def linear_name(self) -> str:
        """The resolved `linear` choice."""
        return "bitlinear" if self.linear is None else self.linear

    @property
    def quantizer_name(self) -> str:
        """The resolved BitLinear input quantizer (`spike_k` alone selects "spike", as before)."""
        if self.quantizer is not None:
            return self.quantizer
        return "spike" if self.spike_k is not None else "absmax_int8"

    @property
    def ternary(self) -> bool:
        """Whether the projections are ternary BitLinears (what packing and the integer model need)."""
        return self.linear_name == "bitlinear" and not self.full_precision

    @property
    def builtin_integer_path(self) -> bool:
        """Whether this architecture is the one the integer model / emulator implement:
        MLGRU + GLU over ternary BitLinears with absmax int8 inputs."""
        return (self.token_mixer, self.channel_mixer, self.linear_name, self.quantizer_name) == (
            "mlgru", "glu", "bitlinear", "absmax_int8") and not self.full_precision

    @property
    def ffn_size(self) -> int:
        """The resolved GLU intermediate size."""
        if self.intermediate_size is not None:
            return int(self.intermediate_size)
        return default_intermediate_size(self.d_model, 4 if self.hidden_ratio is None else self.hidden_ratio)

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        return config_from_dict(cls, values, "model")


# Published checkpoints (ridger/MMfreeLM-*) and small CPU presets. Parameter counts
# are checked in tests with jax.eval_shape.
PRESETS: dict[str, ModelConfig] = {
    "370M": ModelConfig(vocab_size=32000, d_model=1024, num_layers=24),
    "1.3B": ModelConfig(vocab_size=32000, d_model=2048, num_layers=24),
    "2.7B": ModelConfig(vocab_size=32000, d_model=2560, num_layers=32),
    # Byte-level vocabulary (256 bytes + PAD/BOS/EOS); trains in minutes on 2 CPU cores.
    "tiny": ModelConfig(vocab_size=259, d_model=256, num_layers=4, intermediate_size=512),
    # For unit tests: compiles and runs in well under a second.
    "micro": ModelConfig(vocab_size=259, d_model=32, num_layers=2, intermediate_size=64),
}


def preset(name: str, **overrides) -> ModelConfig:
    """The preset called `name` (case-insensitive), with optional field overrides."""
    lookup = {k.lower(): v for k, v in PRESETS.items()}
    if name.lower() not in lookup:
        raise NeurojaxError(f"unknown model preset {name!r}; known: {list(PRESETS)}")
    return lookup[name.lower()].replace(**overrides) if overrides else lookup[name.lower()]
