"""The paper's claim at the tiny preset: the integer-only model loses no accuracy."""
import pytest

from neurojax.eval.integer import quantize_trained, score_integer
from neurojax.fixedpoint import IntQuantConfig
from neurojax.train import load_trained, run_config, train


@pytest.mark.slow
def test_tiny_integer_model_meets_targets(tmp_path):
    cfg = run_config("tiny")
    cfg.train.update(num_steps=250, warmup_steps=25, eval_every=0, checkpoint_every=250, log_every=50)
    workdir = str(tmp_path / "tiny")
    train(cfg, workdir, log=lambda m: None)
    trained = load_trained(workdir)
    int_model = quantize_trained(trained, IntQuantConfig(), calib_batches=4)
    r = score_integer(trained, int_model, eval_batches=8)
    rel = abs(r["int_bits_per_byte"] - r["float_bits_per_byte"]) / r["float_bits_per_byte"]
    assert r["float_bits_per_byte"] < 4.0  # the model learned something: the comparison means something
    assert rel <= 0.01, r
    assert r["top1_agreement"] >= 0.97, r
    assert min(r["sqnr_db"].values()) > 20, r["sqnr_db"]
