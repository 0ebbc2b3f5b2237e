"""The loop learns, logs and plots."""
import os

import jax
import jax.numpy as jnp

from neurojax.eval import evaluate_lm
from neurojax.nn import MatMulFreeLM, ModelConfig, init_params
from neurojax.train import train
from neurojax.train.data_setup import load_run_data
from neurojax.train.loop import LOSS_PLOT, METRICS_FILE
from neurojax.train.metrics import read_metrics


def test_short_run_lowers_synthetic_loss(tmp_path, synthetic_cfg):
    cfg = synthetic_cfg
    cfg.train.update(num_steps=150, batch_size=16, seq_len=32, warmup_steps=10, log_every=25,
                     checkpoint_every=150, eval_batches=2)
    data = load_run_data(cfg)
    model = MatMulFreeLM(ModelConfig.from_dict(cfg.model.to_dict()))
    start = evaluate_lm(model, {"params": init_params(model, jax.random.PRNGKey(cfg.train.seed))},
                        data.validation, data.byte_lengths)["loss"]
    assert abs(start - float(jnp.log(cfg.model.vocab_size))) < 0.5  # untrained: ~uniform
    summary = train(cfg, str(tmp_path / "run"), log=lambda m: None)
    assert summary["validation"]["loss"] < 0.4 * start, (start, summary["validation"])


def test_metrics_and_plot_written(tmp_path, synthetic_cfg):
    wd = str(tmp_path / "run")
    lines = []
    train(synthetic_cfg, wd, log=lines.append)
    records = read_metrics(os.path.join(wd, METRICS_FILE))
    assert [r["step"] for r in records if "loss" in r] == [4, 8, 12]
    assert any("val_loss" in r for r in records)
    assert os.path.getsize(os.path.join(wd, LOSS_PLOT)) > 1000
    progress = [m for m in lines if m.startswith("step 4/12")]
    assert progress and "tok/s" in progress[0] and "ETA" in progress[0]
