"""Convert a trained MatMul-free LM to the integer-only model, score it, and save it.

    python -m experiments.quantize --workdir=workdir/tiny
    python -m experiments.quantize --workdir=workdir/tiny --act_bits=6 --power_of_two
    python -m experiments.generate --workdir=workdir/tiny --integer --prompt="def "   # then use it

Calibrates static scales on training batches, converts, and prints float vs integer
bits per byte, top-1 next-token agreement, saturation counts and per-point SQNR. The
integer model is written to `<workdir>/integer/` (`int_model.npz` + `int_model.json`).
"""
import os

from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.eval.integer import quantize_trained, score_integer
from neurojax.fixedpoint import IntQuantConfig
from neurojax.fixedpoint.io import save_int_model
from neurojax.train import load_trained

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir of a ternary MatMul-free LM.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: latest).")
_OUT = flags.DEFINE_string("output_dir", None, "Where to save the integer model (default: <workdir>/integer).")
_ACT_BITS = flags.DEFINE_integer("act_bits", 8, "Width of BitLinear input codes.")
_STATE_BITS = flags.DEFINE_integer("state_bits", 24, "Width of the recurrent state.")
_RESIDUAL_BITS = flags.DEFINE_integer("residual_bits", 24, "Width of the residual stream.")
_POW2 = flags.DEFINE_bool("power_of_two", False, "Round static scales to powers of two.")
_OBSERVER = flags.DEFINE_enum("observer", "minmax", ["minmax", "percentile"], "Calibration observer.")
_PERCENTILE = flags.DEFINE_float("percentile", 99.99, "Percentile of |x| for --observer=percentile.")
_CALIB = flags.DEFINE_integer("calib_batches", 4, "Training batches used for calibration.")
_EVAL = flags.DEFINE_integer("eval_batches", 8, "Validation batches scored.")


def main(argv):
    if not _WORKDIR.value:
        raise NeurojaxError("--workdir is required")
    if _CALIB.value < 1 or _EVAL.value < 1:
        raise NeurojaxError("--calib_batches and --eval_batches must be positive")
    qcfg = IntQuantConfig(act_bits=_ACT_BITS.value, state_bits=_STATE_BITS.value,
                          residual_bits=_RESIDUAL_BITS.value, power_of_two=_POW2.value,
                          observer=_OBSERVER.value, percentile=_PERCENTILE.value)
    trained = load_trained(_WORKDIR.value, _STEP.value)
    _cli.say(f"calibrating on {_CALIB.value} training batches, converting step {trained.step}")
    int_model = quantize_trained(trained, qcfg, _CALIB.value)
    out = save_int_model(int_model, _OUT.value or os.path.join(_WORKDIR.value, "integer"))
    _cli.say(f"saved the integer model to {out}")
    _cli.say(f"scoring float vs integer on {_EVAL.value} validation batches")
    r = score_integer(trained, int_model, _EVAL.value)
    rel = (r["int_bits_per_byte"] - r["float_bits_per_byte"]) / r["float_bits_per_byte"]
    _cli.say(f"bits/byte: float {r['float_bits_per_byte']:.4f}  integer {r['int_bits_per_byte']:.4f}  "
             f"({100 * rel:+.2f}%)")
    _cli.say(f"top-1 next-token agreement: {100 * r['top1_agreement']:.2f}% of {r['tokens']:,} tokens")
    _cli.say(f"saturation events during inference: {r['overflow']:,}")
    worst = sorted(r["sqnr_db"].items(), key=lambda kv: kv[1])[:5]
    _cli.say("lowest SQNR points: " + ", ".join(f"{k} {v:.1f} dB" for k, v in worst))


if __name__ == "__main__":
    _cli.run(main)
