"""Training: run config, optimizer, jitted step, orbax checkpoints, the resumable loop."""
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.config import run_config, validate_run_config
from neurojax.train.loop import train
from neurojax.train.optim import lr_schedule, make_optimizer
from neurojax.train.restore import TrainedModel, load_trained
from neurojax.train.step import init_train_state, make_train_step

__all__ = [
    "Checkpointer", "TrainedModel", "init_train_state", "load_trained", "lr_schedule", "make_optimizer",
    "make_train_step", "run_config", "train", "validate_run_config",
]
