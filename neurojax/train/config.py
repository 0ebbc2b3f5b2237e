"""The run config: one `ml_collections.ConfigDict` with `model`, `data` and `train` sections.

`experiments/configs/*.py` build on `run_config`; binaries override fields with
`--config.<section>.<field>=value`. `validate_run_config` turns every bad value
into one clear `NeurojaxError` before anything is written.

The `mesh` section lays the run out on devices (`neurojax.train.sharding`); it is not stored
with the run, so a run resumes on any mesh.

The `model` section describes a MatMul-free LM (`ModelConfig` fields) or, with
`family="hybrid"`, the SpikingBrain-style hybrid (`HybridConfig` fields); see
`neurojax.train.model_factory`, the one place that builds either.
"""
import os

import jax
import ml_collections

from neurojax.errors import NeurojaxError
from neurojax.train.model_factory import AnyModelConfig, model_config, model_section
from neurojax.train.sharding import mesh_section, mesh_shape
from neurojax.train.workdir import CONFIG_FILE, OPTIONAL_SECTIONS


def run_config(model_preset: str = "tiny") -> ml_collections.ConfigDict:
    """Defaults for training `model_preset` (MatMul-free, e.g. "tiny", or hybrid, e.g. "hybrid_tiny")
    on the embedded Python-stdlib corpus."""
    cfg = ml_collections.ConfigDict()
    cfg.model = ml_collections.ConfigDict(model_section(model_preset))
    cfg.data = ml_collections.ConfigDict({
        # "stdlib" (embedded corpus), "synthetic" (fast tests), or comma-separated files / dirs.
        "source": "stdlib",
        "validation_fraction": 0.05,
        # "" (bytes) or a tokenizer.json / tokenizer.model (or a directory holding one) that re-encodes the corpus;
        # imported subword models record their own (`<workdir>/hf`).
        "tokenizer": "",
    })
    cfg.train = ml_collections.ConfigDict({
        "num_steps": 600,
        "batch_size": 16,
        "seq_len": 128,
        "learning_rate": 3e-3,
        "warmup_steps": 60,
        "weight_decay": 0.01,
        "b1": 0.9,
        "b2": 0.95,
        "grad_clip": 1.0,
        "seed": 0,
        "log_every": 20,
        "eval_every": 200,
        "eval_batches": 8,
        "checkpoint_every": 200,
        "keep_checkpoints": 2,
    })
    # how the run is laid out on devices (neurojax.train.sharding); not part of the run's identity
    cfg.mesh = ml_collections.ConfigDict(mesh_section())
    return cfg


def add_continual_sections(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the `init` and `distill` sections (with their defaults, i.e. off) to `cfg`, in place.

    - `init.params_from`: a workdir whose latest parameters start the run instead of a random
      initialisation (shapes must match the model); `init.new_params_lr_scale` multiplies the
      learning rate of the parameters that checkpoint marks as new (`meta["new_params"]`, written by
      a conversion), e.g. to let freshly added gates move faster than reused weights.
    - `distill.teacher`: a workdir whose model's logits the student matches with
      `distill.kl_weight * T^2 * KL(teacher_T || student_T)` added to the LM loss (`T` =
      `distill.temperature`; `neurojax.nn.loss.distillation_loss`).
    """
    for name, defaults in OPTIONAL_SECTIONS.items():
        if name not in cfg:
            cfg[name] = ml_collections.ConfigDict(dict(defaults))
    return cfg


def _check_optional_sections(cfg: ml_collections.ConfigDict) -> None:
    init = {**OPTIONAL_SECTIONS["init"], **(cfg.init.to_dict() if "init" in cfg else {})}
    distill = {**OPTIONAL_SECTIONS["distill"], **(cfg.distill.to_dict() if "distill" in cfg else {})}
    for section, values in (("init", init), ("distill", distill)):
        unknown = sorted(set(values) - set(OPTIONAL_SECTIONS[section]))
        if unknown:
            raise NeurojaxError(f"unknown {section} fields {unknown}; known: {sorted(OPTIONAL_SECTIONS[section])}")
    for section, key in (("init", "params_from"), ("distill", "teacher")):
        path = (init if section == "init" else distill)[key]
        if not isinstance(path, str):
            raise NeurojaxError(f"{section}.{key} must be a workdir path or '', got {path!r}")
        if path and not os.path.isfile(os.path.join(path, CONFIG_FILE)):
            raise NeurojaxError(f"{section}.{key}={path!r} is not a neurojax workdir (no {CONFIG_FILE})")
    if not float(init["new_params_lr_scale"]) >= 0:
        raise NeurojaxError(f"init.new_params_lr_scale must be >= 0, got {init['new_params_lr_scale']}")
    if not float(distill["kl_weight"]) >= 0:
        raise NeurojaxError(f"distill.kl_weight must be >= 0, got {distill['kl_weight']}")
    if not float(distill["temperature"]) > 0:
        raise NeurojaxError(f"distill.temperature must be > 0, got {distill['temperature']}")
    if float(distill["kl_weight"]) > 0 and not distill["teacher"]:
        raise NeurojaxError("distill.kl_weight > 0 needs distill.teacher (the workdir of the teacher model)")


_POSITIVE = ("num_steps", "batch_size", "seq_len", "log_every", "eval_batches", "checkpoint_every",
             "keep_checkpoints")


def validate_run_config(cfg: ml_collections.ConfigDict) -> AnyModelConfig:
    """Check every section; return the model config (`ModelConfig` or `HybridConfig`).
    Raises NeurojaxError naming the bad field."""
    for section in ("model", "data", "train"):
        if section not in cfg:
            raise NeurojaxError(f"config has no {section!r} section")
    model = model_config(cfg.model.to_dict())
    t = cfg.train
    for name in _POSITIVE:
        if int(t[name]) <= 0:
            raise NeurojaxError(f"train.{name} must be positive, got {t[name]}")
    if int(t.eval_every) < 0:
        raise NeurojaxError(f"train.eval_every must be >= 0 (0 = only at the end), got {t.eval_every}")
    if not 0 <= int(t.warmup_steps) < int(t.num_steps):
        raise NeurojaxError(f"train.warmup_steps={t.warmup_steps} must be in [0, train.num_steps={t.num_steps})")
    if not 0.0 < float(cfg.data.validation_fraction) < 1.0:
        raise NeurojaxError(f"data.validation_fraction must be in (0, 1), got {cfg.data.validation_fraction}")
    if not 0.0 <= t.b1 < 1.0 or not 0.0 <= t.b2 < 1.0:
        raise NeurojaxError(f"train.b1 and train.b2 must be in [0, 1), got {t.b1}, {t.b2}")
    if t.weight_decay < 0:
        raise NeurojaxError(f"train.weight_decay must be >= 0, got {t.weight_decay}")
    if "mesh" in cfg:
        mesh_shape(cfg.mesh.to_dict(), jax.device_count())
    _check_optional_sections(cfg)
    return model
