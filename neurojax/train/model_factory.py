"""The one place that turns a run config's `model` section into a model: MatMul-free or hybrid.

A run config's `model` section is either

- a `ModelConfig` (the MatMul-free LM, `neurojax.nn.MatMulFreeLM`): its fields and no `family`
  (what every run written before the hybrid existed has; `family="matmulfree"` is accepted too), or
- `family="hybrid"` plus the fields of a `HybridConfig` (the SpikingBrain-style hybrid,
  `neurojax.nn.HybridLM`).

`run_config(preset)` picks the section from the preset name (`"tiny"`, ... or `"hybrid_tiny"`, ...).
Both modules have the same training interface: `model.init(rng, tokens [B, T])` and
`model.apply(variables, tokens [B, T]) -> (logits [B, T, V], state)` with no mask, so the loop,
the evaluation and the restore code only go through `build_model` / `make_model` /
`abstract_params` here.
"""
from typing import Any, Callable, Mapping, Union

import flax.linen as nn
import jax

from neurojax.errors import NeurojaxError
from neurojax.nn.config import PRESETS, ModelConfig
from neurojax.nn.config import preset as matmulfree_preset
from neurojax.nn.hybrid import HybridLM, hybrid_init_params
from neurojax.nn.hybrid_config import HYBRID_PRESETS, HybridConfig, hybrid_preset
from neurojax.nn.lm import MatMulFreeLM
from neurojax.nn.params import abstract_params as matmulfree_abstract_params

FAMILY_FIELD = "family"
MATMULFREE = "matmulfree"
HYBRID = "hybrid"
FAMILIES = (MATMULFREE, HYBRID)

AnyModelConfig = Union[ModelConfig, HybridConfig]


def is_hybrid_preset(name: str) -> bool:
    """Whether `name` (case-insensitive) is one of `HYBRID_PRESETS`."""
    return isinstance(name, str) and name.lower() in {k.lower() for k in HYBRID_PRESETS}


def model_section(preset_name: str) -> dict:
    """The `model` section of a run config for a preset of either family.

    MatMul-free presets give the plain `ModelConfig` fields (no `family`, as before, so configs of
    existing runs compare equal on resume); hybrid presets give `family="hybrid"` + `HybridConfig`
    fields, `layer_pattern` as a tuple so that `--config.model.layer_pattern="('swa',)"` can override
    it (ml_collections cannot override lists; config.json stores it as a JSON list, which the loop
    compares in JSON form).
    """
    if is_hybrid_preset(preset_name):
        values = hybrid_preset(preset_name).to_dict()
        values["layer_pattern"] = tuple(values["layer_pattern"])
        return {FAMILY_FIELD: HYBRID, **values}
    lookup = {k.lower() for k in PRESETS}
    if not isinstance(preset_name, str) or preset_name.lower() not in lookup:
        raise NeurojaxError(f"unknown model preset {preset_name!r}; known: MatMul-free {list(PRESETS)}, "
                            f"hybrid {list(HYBRID_PRESETS)}")
    return matmulfree_preset(preset_name).to_dict()


def model_family(section: Mapping[str, Any]) -> str:
    """`"hybrid"` or `"matmulfree"` (the default when the section has no `family`)."""
    family = section.get(FAMILY_FIELD, MATMULFREE)
    if family not in FAMILIES:
        raise NeurojaxError(f"model.{FAMILY_FIELD} must be one of {list(FAMILIES)}, got {family!r}")
    return family


def model_config(section: Mapping[str, Any]) -> AnyModelConfig:
    """The validated `ModelConfig` or `HybridConfig` of a run config's `model` section (a dict)."""
    values = dict(section)
    family = model_family(values)
    values.pop(FAMILY_FIELD, None)
    if family == HYBRID:
        return HybridConfig.from_dict(values)
    return ModelConfig.from_dict(values)


def make_model(config: AnyModelConfig) -> nn.Module:
    """`HybridLM(config)` for a `HybridConfig`, `MatMulFreeLM(config)` for a `ModelConfig`."""
    if isinstance(config, HybridConfig):
        return HybridLM(config)
    if isinstance(config, ModelConfig):
        return MatMulFreeLM(config)
    raise NeurojaxError(f"not a model config: {type(config).__name__}")


def build_model(cfg: Any) -> tuple[nn.Module, AnyModelConfig]:
    """Validate the run config `cfg` (every section) and return `(module, model_config)`."""
    from neurojax.train.config import validate_run_config

    config = validate_run_config(cfg)
    return make_model(config), config


def abstract_params(config: AnyModelConfig) -> Any:
    """Shapes and dtypes of the model's parameters (`jax.eval_shape`: nothing is allocated)."""
    if isinstance(config, HybridConfig):
        return jax.eval_shape(lambda k: hybrid_init_params(HybridLM(config), k), jax.random.PRNGKey(0))
    return matmulfree_abstract_params(config)


def train_state_initializer(model: nn.Module, config: AnyModelConfig, optimizer: Any, seed: int,
                            seq_len: int) -> Callable[[], dict]:
    """`() -> fresh train state` (`step.init_train_state`), for the loop and for `jax.eval_shape`.

    The hybrid's initialisation is jitted: run eagerly, its GLA scan and attention dispatch op by
    op (seconds at every fresh run). The MatMul-free LM keeps its eager initialisation, so fresh
    runs of existing configs get bit-identical parameters to earlier versions.
    """
    from neurojax.train.step import init_train_state

    def init() -> dict:
        return init_train_state(model, optimizer, seed, seq_len)

    return jax.jit(init) if isinstance(config, HybridConfig) else init


def describe(config: AnyModelConfig) -> str:
    """A short label for logs and plot titles."""
    if isinstance(config, HybridConfig):
        return f"hybrid {'/'.join(config.layer_pattern)} (window {config.window})"
    return "full precision" if config.full_precision else "ternary"


def require_matmulfree(config: AnyModelConfig, what: str) -> ModelConfig:
    """`config` if it is a MatMul-free `ModelConfig`; a clear error naming `what` otherwise."""
    if not isinstance(config, ModelConfig):
        raise NeurojaxError(f"{what} supports the MatMul-free LM only; this run trains the {describe(config)} "
                            f"model (model.{FAMILY_FIELD}={HYBRID!r})")
    return config
