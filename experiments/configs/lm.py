"""Training config for the MatMul-free LM. Pick a preset after a colon:

    --config=experiments/configs/lm.py            # tiny (default)
    --config=experiments/configs/lm.py:micro      # seconds, for smoke tests
    --config=experiments/configs/lm.py:370M       # the published 370M architecture

and override any field: `--config.model.full_precision=True --config.train.num_steps=100`.
"""
from neurojax.train.config import run_config


def get_config(preset: str = "tiny"):
    cfg = run_config(preset or "tiny")
    if preset in ("micro",):
        cfg.train.update(num_steps=40, batch_size=4, seq_len=32, warmup_steps=4, log_every=10,
                         eval_every=0, eval_batches=2, checkpoint_every=20)
    return cfg
