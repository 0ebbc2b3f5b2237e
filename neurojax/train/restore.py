"""Load a trained model (config + parameters) from a training workdir."""
import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import ml_collections

from neurojax.train.checkpoint import Checkpointer
from neurojax.train.model_factory import abstract_params, build_model
from neurojax.train.workdir import read_run_config


@dataclasses.dataclass
class TrainedModel:
    """A restored run: `model` is `MatMulFreeLM` or `HybridLM` (per `config.model`), built by
    `model_factory`; `model.config` is its `ModelConfig` / `HybridConfig`."""

    model: nn.Module
    params: Any
    config: ml_collections.ConfigDict
    step: int


def load_trained(workdir: str, step: Optional[int] = None) -> TrainedModel:
    """The model of `workdir` at `step` (default: latest checkpoint); clear errors if absent or corrupt."""
    cfg = ml_collections.ConfigDict(read_run_config(workdir))
    model, model_cfg = build_model(cfg)  # config.json without `family`: a MatMul-free run
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        params, _, meta = ckpt.restore(abstract_params(model_cfg), step=step)
    finally:
        ckpt.close()
    params = jax.device_put(params)
    return TrainedModel(model, params, cfg, int(meta["step"]))
