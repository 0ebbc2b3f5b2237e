"""Convert a trained Transformer++ (LLaMA / Qwen2 style) into a SpikingBrain-style hybrid workdir.

    python -m experiments.convert_hybrid --teacher=workdir/teacher --workdir=workdir/converted
    python -m experiments.convert_hybrid --teacher=workdir/teacher --workdir=workdir/c2 \\
        --config.convert.layout=gla,swa,swa,gla --config.convert.window=128

The teacher is any Transformer++ workdir: trained here (`experiments/train.py
--config=experiments/configs/lm.py:transformer_tiny`) or imported from a Hugging Face LLaMA / Qwen2
checkpoint (`experiments/convert.py --from_hf=DIR --workdir=workdir/teacher`). The converted workdir
evaluates and generates like any other; continue training it, distilling from the teacher, with

    python -m experiments.train --workdir=workdir/student --config=experiments/configs/continual.py:workdir/converted

Settings: `experiments/configs/convert_hybrid.py`. Nothing is written on a bad input.
"""
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.nn.hybrid_conversion import ConversionConfig
from neurojax.train.convert import Calibration, convert_workdir

_CONFIG = _cli.define_config("experiments/configs/convert_hybrid.py")
_TEACHER = flags.DEFINE_string("teacher", None, "Workdir of the trained Transformer++ to convert.")
_WORKDIR = flags.DEFINE_string("workdir", None, "New (or empty) directory for the converted hybrid.")


def main(argv):
    if not _TEACHER.value or not _WORKDIR.value:
        raise NeurojaxError("--teacher and --workdir are both required")
    cfg = _cli.config_value(_CONFIG)
    for section in ("convert", "calibration"):
        if section not in cfg:
            raise NeurojaxError(f"the --config file has no {section!r} section (see experiments/configs/convert_hybrid.py)")
    conv = cfg.convert.to_dict()
    conv["half_lives"] = tuple(conv["half_lives"])
    try:
        conversion = ConversionConfig(**conv)
        calibration = Calibration(**cfg.calibration.to_dict())
    except TypeError as e:
        raise NeurojaxError(f"bad conversion config: {e}") from None
    for name in ("batches", "batch_size", "seq_len"):
        value = getattr(calibration, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "batches" else 1):
            raise NeurojaxError(f"calibration.{name} must be a {'non-negative' if name == 'batches' else 'positive'} "
                                f"integer, got {value!r}")
    summary = convert_workdir(_TEACHER.value, _WORKDIR.value, conversion,
                              calibration if calibration.batches else None, int(cfg.seed), log=_cli.say)
    for r in summary["calibration"]:
        _cli.say(f"layer {r.layer} (gla): half-life {r.half_life:g} tokens, output error {r.rel_error:.4f} "
                 f"(random init {r.rel_error_default:.4f})")
    _cli.say(f"next: python -m experiments.train --workdir=<student> "
             f"--config=experiments/configs/continual.py:{_WORKDIR.value}")


if __name__ == "__main__":
    _cli.run(main)
