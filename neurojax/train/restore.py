"""Load a trained model (config + parameters) from a training workdir."""
import dataclasses
from typing import Any, Optional

import jax
import ml_collections

from neurojax.nn import MatMulFreeLM
from neurojax.nn.params import abstract_params
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.config import validate_run_config
from neurojax.train.workdir import read_run_config


@dataclasses.dataclass
class TrainedModel:
    model: MatMulFreeLM
    params: Any
    config: ml_collections.ConfigDict
    step: int


def load_trained(workdir: str, step: Optional[int] = None) -> TrainedModel:
    """The model of `workdir` at `step` (default: latest checkpoint); clear errors if absent or corrupt."""
    cfg = ml_collections.ConfigDict(read_run_config(workdir))
    model_cfg = validate_run_config(cfg)
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        params, _, meta = ckpt.restore(abstract_params(model_cfg), step=step)
    finally:
        ckpt.close()
    params = jax.device_put(params)
    return TrainedModel(MatMulFreeLM(model_cfg), params, cfg, int(meta["step"]))
