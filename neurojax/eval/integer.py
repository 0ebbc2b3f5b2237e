"""Quantize a trained run to the integer model and score it against the float model."""
from typing import Optional

from neurojax.fixedpoint import IntModel, IntQuantConfig, calibrate, convert
from neurojax.fixedpoint.compare import compare
from neurojax.train.data_setup import RunData, load_run_data
from neurojax.train.model_factory import require_matmulfree
from neurojax.train.restore import TrainedModel

CALIBRATION_SEED = 10_007  # training-split batches that the run's own iterator (seed 0..) did not draw first


def calibration_batches(data: RunData, trained: TrainedModel, num_batches: int) -> list:
    """`num_batches` `[B, T]` token batches from the training split (never the validation split)."""
    t = trained.config.train
    it = data.iterator(t.batch_size, t.seq_len, CALIBRATION_SEED)
    return [next(it)[:, :-1] for _ in range(num_batches)]


def quantize_trained(trained: TrainedModel, qcfg: IntQuantConfig, calib_batches: int = 4,
                     data: Optional[RunData] = None) -> IntModel:
    """Calibrate on the run's training data and convert its parameters to the integer model."""
    require_matmulfree(trained.model.config, "quantization to the integer model")
    data = data or load_run_data(trained.config)
    amax = calibrate(trained.model, trained.params, calibration_batches(data, trained, calib_batches), qcfg)
    return convert(trained.model.config, trained.params, amax, qcfg)


def score_integer(trained: TrainedModel, int_model: IntModel, eval_batches: int,
                  data: Optional[RunData] = None) -> dict:
    """Float vs integer on `eval_batches` validation batches (see `fixedpoint.compare`)."""
    data = data or load_run_data(trained.config, eval_batches=eval_batches)
    return compare(trained.model, trained.params, int_model, data.validation[:eval_batches], data.byte_lengths)
