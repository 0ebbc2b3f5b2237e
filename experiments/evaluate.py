"""Validation loss, perplexity and bits per byte of a trained model.

    python -m experiments.evaluate --workdir=workdir/tiny
    python -m experiments.evaluate --workdir=workdir/tiny --data=my_texts/ --max_batches=0   # all of it
"""
import json

from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.eval import evaluate_lm
from neurojax.train import load_trained
from neurojax.train.data_setup import load_run_data

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding the checkpoint.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_DATA = flags.DEFINE_string("data", None, "Text files/directories to evaluate on (their validation split); "
                            "default: the run's own data.")
_MAX_BATCHES = flags.DEFINE_integer("max_batches", 64, "Validation batches to score (0 = all).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the metrics as JSON to this file.")


def main(argv):
    if not _WORKDIR.value:
        raise NeurojaxError("--workdir is required")
    if _MAX_BATCHES.value < 0:
        raise NeurojaxError(f"--max_batches must be >= 0, got {_MAX_BATCHES.value}")
    trained = load_trained(_WORKDIR.value, _STEP.value)
    cfg = trained.config
    if _DATA.value:
        cfg.data.source = _DATA.value
    data = load_run_data(cfg, eval_batches=_MAX_BATCHES.value)
    windows = data.validation
    _cli.say(f"evaluating step {trained.step} on {len(windows)} batches of {data.name} validation data")
    result = evaluate_lm(trained.model, {"params": trained.params}, windows, data.byte_lengths)
    result.update(step=trained.step, data=data.name)
    _cli.say(f"loss {result['loss']:.4f} nats/token  perplexity {result['perplexity']:.3f}  "
             f"bits/byte {result['bits_per_byte']:.4f}  ({result['tokens']:,} tokens)")
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    _cli.run(main)
