"""Where a run starts from and whom it learns from: the `init` and `distill` sections of a run config.

Continual training (e.g. of a converted model, `neurojax.train.convert`) starts from another workdir's
parameters instead of a random initialisation, optionally with its own learning rate for the
parameters that checkpoint marks as new, and may add a distillation term against a teacher workdir's
model. Both read workdirs only once, when the run is created; a resumed run reads its own checkpoint.
"""
import dataclasses
from typing import Any, Optional

import flax
import jax

from neurojax.errors import NeurojaxError
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.model_factory import AnyModelConfig, abstract_params, describe
from neurojax.train.restore import load_trained
from neurojax.train.sharding import param_shardings
from neurojax.train.step import Distillation
from neurojax.train.workdir import OPTIONAL_SECTIONS

NEW_PARAMS_META = "new_params"  # checkpoint meta: "/"-joined paths of parameters a conversion added


@dataclasses.dataclass
class Start:
    """The initial parameters (None: random from the seed), per-parameter lr multipliers, a log note."""

    params: Any = None
    lr_multipliers: Any = None
    note: str = ""


def _section(cfg: Any, name: str) -> dict:
    return {**OPTIONAL_SECTIONS[name], **(cfg[name].to_dict() if name in cfg else {})}


def load_start(cfg: Any, model_cfg: AnyModelConfig) -> Start:
    """The run's starting point from `cfg.init` (parameters restored from `init.params_from`, if set)."""
    init = _section(cfg, "init")
    source = init["params_from"]
    if not source:
        return Start()
    abstract = abstract_params(model_cfg)
    ckpt = Checkpointer(source, read_only=True)
    try:
        meta = ckpt.restore_meta()
        try:
            params, _, _ = ckpt.restore(abstract)
        except Exception as e:  # orbax reports shape mismatches in its own words
            raise NeurojaxError(f"init.params_from={source!r}: its parameters do not fit this run's model "
                                f"({describe(model_cfg)}): {str(e).splitlines()[0][:300]}") from None
    finally:
        ckpt.close()
    multipliers = None
    scale = float(init["new_params_lr_scale"])
    new = set(meta.get(NEW_PARAMS_META, []))
    if scale != 1.0 and new:
        multipliers = flax.traverse_util.unflatten_dict({
            path: (scale if "/".join(path) in new else 1.0)
            for path in flax.traverse_util.flatten_dict(abstract)})
    note = f", parameters from {source} (step {meta['step']})"
    if multipliers is not None:
        note += f", learning rate x{scale:g} on its {len(new)} new parameters"
    return Start(jax.device_put(params), multipliers, note)


def load_teacher(cfg: Any, model_cfg: AnyModelConfig, mesh: Any = None) -> Optional[Distillation]:
    """The distillation teacher of `cfg.distill` (None when `distill.kl_weight` is 0)."""
    distill = _section(cfg, "distill")
    if not float(distill["kl_weight"]) > 0:
        return None
    teacher = load_trained(distill["teacher"])
    vocab = teacher.model.config.vocab_size
    if vocab != model_cfg.vocab_size:
        raise NeurojaxError(f"distill.teacher={distill['teacher']!r} has a vocabulary of {vocab} tokens, the student "
                            f"(model.vocab_size) {model_cfg.vocab_size}: the KL needs the same vocabulary")
    sharding = None
    if mesh is not None and mesh.size > 1:
        sharding = param_shardings(teacher.params, mesh)
        teacher.params = jax.device_put(teacher.params, sharding)
    return Distillation(teacher.model, teacher.params, float(distill["kl_weight"]), float(distill["temperature"]),
                        sharding)
