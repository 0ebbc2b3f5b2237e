"""The hybrid LM goes through the same run config, loop, checkpoints, restore, evaluation and binaries."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.eval import evaluate_lm
from neurojax.eval.integer import quantize_trained
from neurojax.fixedpoint import IntQuantConfig
from neurojax.nn import HybridConfig, HybridLM, MatMulFreeLM, ModelConfig, hybrid_preset
from neurojax.train import load_trained, run_config, train, validate_run_config
from neurojax.train.data_setup import load_run_data
from neurojax.train.model_factory import abstract_params, build_model, model_config
from neurojax.train.workdir import CONFIG_FILE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _quiet(_msg):
    pass


@pytest.fixture
def hybrid_cfg():
    cfg = run_config("hybrid_micro")
    cfg.data.source = "synthetic"
    return cfg


def test_run_config_picks_the_family():
    cfg = run_config("hybrid_tiny")
    assert cfg.model.family == "hybrid"
    model, mc = build_model(cfg)
    assert isinstance(model, HybridLM) and mc == hybrid_preset("hybrid_tiny")
    cfg.model.layer_pattern = ("swa",)  # the full-attention twin
    assert validate_run_config(cfg).layer_kinds == ("swa",) * 4
    # MatMul-free sections carry no `family`, exactly as before (old config.json files compare equal on resume).
    legacy = run_config("tiny")
    assert "family" not in legacy.model
    model, mc = build_model(legacy)
    assert isinstance(model, MatMulFreeLM) and isinstance(mc, ModelConfig)
    assert model_config({**legacy.model.to_dict(), "family": "matmulfree"}) == mc


@pytest.mark.parametrize("change, match", [
    ({"family": "rnn"}, "model.family must be one of"),
    ({"window": 0}, "hybrid.window must be a positive integer"),
    ({"layer_pattern": ("gla", "mlp")}, "unknown layer kinds"),
    ({"full_precision": True}, "unknown hybrid config fields"),
])
def test_bad_hybrid_sections_rejected(hybrid_cfg, change, match):
    for k, v in change.items():
        hybrid_cfg.model[k] = v
    with pytest.raises(NeurojaxError, match=match):
        validate_run_config(hybrid_cfg)


def _run(binary, *args):
    return subprocess.run([sys.executable, "-m", f"experiments.{binary}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.mark.slow
def test_hybrid_trains_resumes_bit_identically_restores_and_evaluates(tmp_path):
    """experiments.train (interrupted, then resumed) == an uninterrupted in-process run; restore and evaluate."""
    from experiments.configs.lm import get_config

    resumed, straight = str(tmp_path / "resumed"), str(tmp_path / "straight")
    # Only num_steps overridden: the hybrid presets tie warmup_steps to num_steps // 10. layer_pattern is a
    # tuple in the run config (overridable), a list in config.json: the resume must still match.
    args = ["--config=experiments/configs/lm.py:hybrid_micro", "--config.data.source=synthetic",
            "--config.train.num_steps=6", "--config.train.checkpoint_every=3", f"--workdir={resumed}",
            "--config.model.layer_pattern=('swa', 'gla')"]
    first = _run("train", *args, "--stop_after_steps=3")
    assert first.returncode == 0 and "hybrid swa/gla" in first.stdout, first.stderr
    assert "done" not in first.stdout and sorted(os.listdir(os.path.join(resumed, "checkpoints"))) == ["3"]
    second = _run("train", *args)
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stdout and "done: step 6" in second.stdout

    cfg = get_config("hybrid_micro")
    cfg.data.source = "synthetic"
    cfg.train.update(num_steps=6, checkpoint_every=3)
    cfg.model.layer_pattern = ("swa", "gla")
    full = train(cfg, straight, log=_quiet)
    assert full["finished"] and np.isfinite(full["validation"]["bits_per_byte"])
    a, b = load_trained(straight), load_trained(resumed)
    assert isinstance(a.model, HybridLM) and isinstance(b.model.config, HybridConfig)
    assert a.step == b.step == 6
    for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert jax.tree_util.tree_structure(a.params) == jax.tree_util.tree_structure(abstract_params(a.model.config))
    with open(os.path.join(resumed, CONFIG_FILE)) as f:
        recorded = json.load(f)
    assert recorded["model"]["family"] == "hybrid" and recorded["train"]["warmup_steps"] == 0
    assert recorded["model"]["layer_pattern"] == ["swa", "gla"] and a.model.config.layer_kinds == ("swa", "gla")

    # Evaluation of the restored model reproduces the loop's final validation numbers, in process and by binary.
    data = load_run_data(a.config)
    result = evaluate_lm(a.model, {"params": a.params}, data.validation, data.byte_lengths)
    assert result["loss"] == pytest.approx(full["validation"]["loss"], rel=1e-6)
    out = str(tmp_path / "eval.json")
    ev = _run("evaluate", f"--workdir={resumed}", "--max_batches=0", f"--output={out}")
    assert ev.returncode == 0, ev.stderr
    with open(out) as f:
        by_binary = json.load(f)
    assert by_binary["step"] == 6 and by_binary["loss"] == pytest.approx(result["loss"], rel=1e-5)

    # MatMul-free-only tools refuse a hybrid run with a clear error.
    with pytest.raises(NeurojaxError, match="MatMul-free LM only"):
        quantize_trained(a, IntQuantConfig())
