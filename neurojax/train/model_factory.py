"""The one place that turns a run config's `model` section into a model: MatMul-free, hybrid or Transformer++.

A run config's `model` section is either

- a `ModelConfig` (the MatMul-free LM, `neurojax.nn.MatMulFreeLM`): its fields and no `family`
  (what every run written before the hybrid existed has; `family="matmulfree"` is accepted too), or
- `family="hybrid"` plus the fields of a `HybridConfig` (the SpikingBrain-style hybrid,
  `neurojax.nn.HybridLM`), or
- `family="transformer"` plus the fields of a `TransformerConfig` (the LLaMA-style Transformer++
  baseline, `neurojax.nn.TransformerLM`).

`run_config(preset)` picks the section from the preset name (`"tiny"`, ..., `"hybrid_tiny"`, ... or
`"transformer_tiny"`, ...). The modules have the same training interface: `model.init(rng, tokens [B, T])` and
`model.apply(variables, tokens [B, T]) -> (logits [B, T, V], state)` with no mask, so the loop,
the evaluation and the restore code only go through `build_model` / `make_model` /
`abstract_params` here.
"""
from typing import Any, Callable, Mapping, Union

import flax.linen as nn
import jax
import ml_collections

from neurojax.errors import NeurojaxError
from neurojax.nn.config import PRESETS, ModelConfig
from neurojax.nn.config import preset as matmulfree_preset
from neurojax.nn.hybrid import HybridLM, hybrid_init_params
from neurojax.nn.hybrid_config import HYBRID_PRESETS, HybridConfig, hybrid_preset
from neurojax.nn.lm import MatMulFreeLM
from neurojax.nn.params import abstract_params as matmulfree_abstract_params
from neurojax.nn.transformer import TransformerLM, transformer_abstract_params
from neurojax.nn.transformer_config import TRANSFORMER_PRESETS, TransformerConfig, transformer_preset

FAMILY_FIELD = "family"
MATMULFREE = "matmulfree"
HYBRID = "hybrid"
TRANSFORMER = "transformer"
FAMILIES = (MATMULFREE, HYBRID, TRANSFORMER)

AnyModelConfig = Union[ModelConfig, HybridConfig, TransformerConfig]


def is_hybrid_preset(name: str) -> bool:
    """Whether `name` (case-insensitive) is one of `HYBRID_PRESETS`."""
    return isinstance(name, str) and name.lower() in {k.lower() for k in HYBRID_PRESETS}


def is_transformer_preset(name: str) -> bool:
    """Whether `name` (case-insensitive) is one of `TRANSFORMER_PRESETS`."""
    return isinstance(name, str) and name.lower() in {k.lower() for k in TRANSFORMER_PRESETS}


def model_section(preset_name: str) -> dict:
    """The `model` section of a run config for a preset of either family.

    MatMul-free presets give the plain `ModelConfig` fields (no `family`, as before, so configs of
    existing runs compare equal on resume); hybrid presets give `family="hybrid"` + `HybridConfig`
    fields, `layer_pattern` as a tuple so that `--config.model.layer_pattern="('swa',)"` can override
    it (ml_collections cannot override lists; config.json stores it as a JSON list, which the loop
    compares in JSON form). Transformer++ presets give `family="transformer"` + `TransformerConfig`
    fields, `head_dim=None` as an int-typed `ml_collections.FieldReference` so that
    `--config.model.head_dim=64` can set it. Every optional field that is None (`head_dim`, `spike_k`,
    `linear`, ...) is such a typed reference (`OPTIONAL_FIELD_TYPES`): ml_collections makes no override
    flag for a plain None. config.json stores the plain value, so configs compare as before.
    """
    if is_hybrid_preset(preset_name):
        values = hybrid_preset(preset_name).to_dict()
        values["layer_pattern"] = tuple(values["layer_pattern"])
        return _overridable({FAMILY_FIELD: HYBRID, **values})
    if is_transformer_preset(preset_name):
        return _overridable({FAMILY_FIELD: TRANSFORMER, **transformer_preset(preset_name).to_dict()})
    lookup = {k.lower() for k in PRESETS}
    if not isinstance(preset_name, str) or preset_name.lower() not in lookup:
        raise NeurojaxError(f"unknown model preset {preset_name!r}; known: MatMul-free {list(PRESETS)}, "
                            f"hybrid {list(HYBRID_PRESETS)}, transformer {list(TRANSFORMER_PRESETS)}")
    return _overridable(matmulfree_preset(preset_name).to_dict())


# Types of the model fields whose default is None, for their command-line override flags.
OPTIONAL_FIELD_TYPES = {"head_dim": int, "max_seq_len": int, "intermediate_size": int, "hidden_ratio": float,
                        "spike_k": float, "spike_clip": int, "linear": str, "quantizer": str, "neuron": str,
                        "neuron_steps": int, "attention_window": int}


def _overridable(values: dict) -> dict:
    """`values` with each None field of `OPTIONAL_FIELD_TYPES` as a typed `FieldReference(None)`."""
    return {k: ml_collections.FieldReference(None, field_type=OPTIONAL_FIELD_TYPES[k])
            if v is None and k in OPTIONAL_FIELD_TYPES else v for k, v in values.items()}


def model_family(section: Mapping[str, Any]) -> str:
    """`"hybrid"`, `"transformer"` or `"matmulfree"` (the default when the section has no `family`)."""
    family = section.get(FAMILY_FIELD, MATMULFREE)
    if family not in FAMILIES:
        raise NeurojaxError(f"model.{FAMILY_FIELD} must be one of {list(FAMILIES)}, got {family!r}")
    return family


def model_config(section: Mapping[str, Any]) -> AnyModelConfig:
    """The validated `ModelConfig`, `HybridConfig` or `TransformerConfig` of a run config's `model` section."""
    values = {k: v.get() if isinstance(v, ml_collections.FieldReference) else v for k, v in section.items()}
    family = model_family(values)
    values.pop(FAMILY_FIELD, None)
    if family == HYBRID:
        return HybridConfig.from_dict(values)
    if family == TRANSFORMER:
        return TransformerConfig.from_dict(values)
    return ModelConfig.from_dict(values)


def make_model(config: AnyModelConfig) -> nn.Module:
    """`HybridLM` for a `HybridConfig`, `TransformerLM` for a `TransformerConfig`, `MatMulFreeLM` for a `ModelConfig`."""
    if isinstance(config, HybridConfig):
        return HybridLM(config)
    if isinstance(config, TransformerConfig):
        return TransformerLM(config)
    if isinstance(config, ModelConfig):
        return MatMulFreeLM(config)
    raise NeurojaxError(f"not a model config: {type(config).__name__}")


def build_model(cfg: Any) -> tuple[nn.Module, AnyModelConfig]:
    """Validate the run config `cfg` (every section) and return `(module, model_config)`."""
    from neurojax.train.config import validate_run_config

    config = validate_run_config(cfg)
    if isinstance(config, TransformerConfig) and int(cfg.train.seq_len) > config.max_seq_len:
        raise NeurojaxError(f"train.seq_len={cfg.train.seq_len} exceeds the model's sequence budget "
                            f"model.max_seq_len={config.max_seq_len}; raise model.max_seq_len or lower train.seq_len")
    return make_model(config), config


def abstract_params(config: AnyModelConfig) -> Any:
    """Shapes and dtypes of the model's parameters (`jax.eval_shape`: nothing is allocated)."""
    if isinstance(config, HybridConfig):
        return jax.eval_shape(lambda k: hybrid_init_params(HybridLM(config), k), jax.random.PRNGKey(0))
    if isinstance(config, TransformerConfig):
        return transformer_abstract_params(config)
    return matmulfree_abstract_params(config)


def train_state_initializer(model: nn.Module, config: AnyModelConfig, optimizer: Any, seed: int,
                            seq_len: int, params: Any = None) -> Callable[[], dict]:
    """`() -> fresh train state` (`step.init_train_state`), for the loop and for `jax.eval_shape`.

    The hybrid's and the Transformer++'s initialisations are jitted: run eagerly, their layers
    dispatch op by op (seconds at every fresh run). The MatMul-free LM keeps its eager initialisation, so fresh
    runs of existing configs get bit-identical parameters to earlier versions. With `params` (e.g. a
    converted model's), the state starts from them instead of a random initialisation.
    """
    from neurojax.train.step import init_train_state

    def init() -> dict:
        return init_train_state(model, optimizer, seed, seq_len, params)

    return jax.jit(init) if isinstance(config, (HybridConfig, TransformerConfig)) else init


def describe(config: AnyModelConfig) -> str:
    """A short label for logs and plot titles."""
    if isinstance(config, HybridConfig):
        return f"hybrid {'/'.join(config.layer_pattern)} (window {config.window})"
    if isinstance(config, TransformerConfig):
        return f"Transformer++ ({config.num_heads} heads, {config.num_kv_heads} kv heads)"
    label = ("full precision" if config.full_precision else "ternary" if config.ternary
             else f"{config.linear_name} linear layers")
    mixers = (config.token_mixer, config.channel_mixer)
    return label if mixers == ("mlgru", "glu") else f"{label}, {'/'.join(mixers)}"


def require_matmulfree(config: AnyModelConfig, what: str) -> ModelConfig:
    """`config` if it is a MatMul-free `ModelConfig`; a clear error naming `what` otherwise."""
    if not isinstance(config, ModelConfig):
        raise NeurojaxError(f"{what} supports the MatMul-free LM only; this run trains the {describe(config)} "
                            f"model (model.{FAMILY_FIELD}={family_of(config)!r})")
    return config


def family_of(config: AnyModelConfig) -> str:
    """The `family` value of a model config's run-config section."""
    if isinstance(config, HybridConfig):
        return HYBRID
    if isinstance(config, TransformerConfig):
        return TRANSFORMER
    return MATMULFREE


def require_generatable(config: AnyModelConfig, what: str) -> AnyModelConfig:
    """`config` if its model decodes with `neurojax.inference.generate` (MatMul-free: recurrent state;
    Transformer++: KV cache); a clear error naming `what` otherwise."""
    if not isinstance(config, (ModelConfig, TransformerConfig)):
        raise NeurojaxError(f"{what} supports the MatMul-free LM and the Transformer++ only; this run trains the "
                            f"{describe(config)} model (model.{FAMILY_FIELD}={family_of(config)!r})")
    return config
