"""Continual training of a converted workdir (after `experiments/convert_hybrid.py`): its model, data and
train sections, starting from its parameters and distilling from the teacher it records.

    python -m experiments.train --workdir=workdir/student --config=experiments/configs/continual.py:workdir/converted
        [--config.train.num_steps=60] [--config.distill.kl_weight=1.0 --config.distill.temperature=2.0]
        [--config.init.new_params_lr_scale=3.0]     # the converted GLA gates / norms learn 3x faster

`--config.distill.kl_weight=0` trains on the LM loss alone. The run resumes like any other.
"""
from neurojax.errors import NeurojaxError
from neurojax.train.convert import continual_config


def get_config(converted_workdir: str = ""):
    if not converted_workdir:
        raise NeurojaxError("give the converted workdir after a colon: "
                            "--config=experiments/configs/continual.py:workdir/converted")
    return continual_config(converted_workdir, kl_weight=1.0)
