"""Conversion settings for `experiments/convert_hybrid.py` (Transformer++ -> SpikingBrain-style hybrid).

    --config=experiments/configs/convert_hybrid.py                    # SpikingBrain-7B's layout, window 64
    --config.convert.layout=gla,swa,swa,gla                            # any per-layer pattern (one kind per layer)
    --config.convert.window=128 --config.convert.spike_k=3.0          # SWA window; spike-code the projections
    --config.calibration.batches=0                                     # no calibration: middle half-life, unit gains

`convert` holds `neurojax.nn.hybrid_conversion.ConversionConfig`'s fields, `calibration` the batches
(from the teacher's training data) on which the new GLA parameters are fitted, `seed` the random
draw of the decay's down-projection.
"""
import dataclasses

import ml_collections

from neurojax.nn.hybrid_conversion import ConversionConfig
from neurojax.train.convert import Calibration


def get_config(unused: str = ""):
    cfg = ml_collections.ConfigDict()
    conv = ConversionConfig().to_dict()
    conv["half_lives"] = tuple(conv["half_lives"])
    conv["spike_k"] = ml_collections.FieldReference(None, field_type=float)
    cfg.convert = ml_collections.ConfigDict(conv)
    cfg.calibration = ml_collections.ConfigDict(dataclasses.asdict(Calibration()))
    cfg.seed = 0
    return cfg
