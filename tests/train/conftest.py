import pytest

from neurojax.train import run_config


@pytest.fixture
def synthetic_cfg():
    """A micro run on the synthetic task: compiles and trains in seconds."""
    cfg = run_config("micro")
    cfg.data.source = "synthetic"
    cfg.train.update(num_steps=12, batch_size=4, seq_len=16, warmup_steps=2, learning_rate=1e-2, log_every=4,
                     eval_every=0, eval_batches=1, checkpoint_every=4, keep_checkpoints=2)
    return cfg
