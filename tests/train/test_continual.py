"""Conversion workdirs and continual training with distillation (neurojax.train.convert / start / step)."""
import json
import os

import flax
import jax
import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.nn.hybrid_conversion import ConversionConfig, new_param_paths
from neurojax.train import Checkpointer, load_trained, run_config, train
from neurojax.train.config import add_continual_sections, validate_run_config
from neurojax.train.convert import Calibration, calibration_report, continual_config, convert_workdir, teacher_of
from neurojax.train.loop import METRICS_FILE
from neurojax.train.workdir import identity

CONV = ConversionConfig(window=4, decay_rank=4)
CALIB = Calibration(batches=1, batch_size=2, seq_len=16)


def _quiet(_msg):
    pass


def _teacher_cfg(steps=30):
    cfg = run_config("transformer_micro")
    cfg.data.source = "synthetic"
    cfg.train.update(num_steps=steps, batch_size=4, seq_len=16, warmup_steps=2, learning_rate=1e-2, log_every=5,
                     eval_every=0, eval_batches=1, checkpoint_every=steps, keep_checkpoints=2)
    return cfg


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("continual")
    train(_teacher_cfg(), str(root / "teacher"), log=_quiet)
    convert_workdir(str(root / "teacher"), str(root / "converted"), CONV, CALIB, log=_quiet)
    return root


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_converted_workdir_records_its_teacher_and_new_params(converted):
    wd = str(converted / "converted")
    assert teacher_of(wd) == str(converted / "teacher")
    model = load_trained(wd)
    assert model.step == 0 and model.model.config.layer_kinds == ("gla", "swa")
    meta = Checkpointer(wd, read_only=True).restore_meta(0)
    assert meta["new_params"] == ["/".join(p) for p in new_param_paths(model.model.config)]
    report = calibration_report(wd)
    assert [r["layer"] for r in report] == [0] and report[0]["rel_error"] < report[0]["rel_error_default"]


def test_conversion_refuses_bad_inputs_and_writes_nothing(converted, tmp_path):
    with pytest.raises(NeurojaxError, match="not a Transformer"):
        convert_workdir(str(converted / "converted"), str(tmp_path / "x"), CONV, None, log=_quiet)
    with pytest.raises(NeurojaxError, match="names 3 layers, the teacher has 2"):
        convert_workdir(str(converted / "teacher"), str(tmp_path / "y"), ConversionConfig(layout="gla,swa,gla"),
                        None, log=_quiet)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    with pytest.raises(NeurojaxError, match="not empty"):
        convert_workdir(str(converted / "teacher"), str(tmp_path / "busy"), CONV, None, log=_quiet)
    assert sorted(os.listdir(tmp_path)) == ["busy"] and os.listdir(tmp_path / "busy") == ["f"]


def test_continual_run_starts_from_the_converted_params_and_lowers_the_loss(converted, tmp_path):
    cfg = continual_config(str(converted / "converted"), num_steps=8, kl_weight=1.0, new_params_lr_scale=3.0)
    cfg.train.update(log_every=1, eval_every=0)
    train(cfg, str(tmp_path / "s"), stop_after_steps=1, log=_quiet)
    start = load_trained(str(converted / "converted")).params
    after_one = load_trained(str(tmp_path / "s")).params
    flat0, flat1 = flax.traverse_util.flatten_dict(start), flax.traverse_util.flatten_dict(after_one)
    # one step from the converted parameters: close to them, not a fresh random init
    for path in flat0:
        delta = np.max(np.abs(np.asarray(flat1[path]) - np.asarray(flat0[path])))
        assert delta < 0.05, (path, delta)
    train(cfg, str(tmp_path / "s"), log=_quiet)
    records = [json.loads(line) for line in open(tmp_path / "s" / METRICS_FILE)]
    losses = [r["loss"] for r in records if "loss" in r]
    assert {"ce", "kl"} <= set(records[0]) and losses[-1] < losses[0], losses
    assert all(abs(r["loss"] - r["ce"] - r["kl"]) < 1e-5 for r in records if "kl" in r)


def test_new_params_learning_rate_scale(converted, tmp_path):
    """With scale 0 the converted GLA parameters stay frozen while everything else trains."""
    cfg = continual_config(str(converted / "converted"), num_steps=3, kl_weight=0.0, new_params_lr_scale=0.0)
    train(cfg, str(tmp_path / "frozen"), log=_quiet)
    before = flax.traverse_util.flatten_dict(load_trained(str(converted / "converted")).params)
    after = flax.traverse_util.flatten_dict(load_trained(str(tmp_path / "frozen")).params)
    new = set(new_param_paths(load_trained(str(converted / "converted")).model.config))
    for path in before:
        same = np.array_equal(np.asarray(before[path]), np.asarray(after[path]))
        assert same == (path in new), path


@pytest.mark.slow
def test_distilled_run_resumes_bit_identically(converted, tmp_path):
    cfg = continual_config(str(converted / "converted"), num_steps=6, kl_weight=0.5, temperature=2.0)
    train(cfg, str(tmp_path / "straight"), log=_quiet)
    train(cfg, str(tmp_path / "resumed"), stop_after_steps=3, log=_quiet)
    train(cfg, str(tmp_path / "resumed"), log=_quiet)
    a, b = load_trained(str(tmp_path / "straight")), load_trained(str(tmp_path / "resumed"))
    for x, y in zip(_leaves(a.params), _leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_bad_continual_configs(converted, tmp_path):
    cfg = continual_config(str(converted / "converted"), num_steps=4, kl_weight=1.0)
    bad = cfg.copy_and_resolve_references()
    bad.distill.teacher = ""
    with pytest.raises(NeurojaxError, match="needs distill.teacher"):
        validate_run_config(bad)
    bad = cfg.copy_and_resolve_references()
    bad.init.params_from = str(tmp_path)
    with pytest.raises(NeurojaxError, match="init.params_from.*not a neurojax workdir"):
        validate_run_config(bad)
    bad = cfg.copy_and_resolve_references()
    bad.distill.temperature = 0.0
    with pytest.raises(NeurojaxError, match="distill.temperature"):
        validate_run_config(bad)
    # a teacher with another vocabulary
    other = _teacher_cfg(3)
    other.model.vocab_size = 300
    train(other, str(tmp_path / "other"), log=_quiet)
    bad = cfg.copy_and_resolve_references()
    bad.distill.teacher = str(tmp_path / "other")
    with pytest.raises(NeurojaxError, match="vocabulary of 300 tokens"):
        train(bad, str(tmp_path / "s1"), log=_quiet)
    # parameters that do not fit the model
    bad = cfg.copy_and_resolve_references()
    bad.init.params_from = str(converted / "teacher")
    with pytest.raises(NeurojaxError, match="init.params_from.*do not fit"):
        train(bad, str(tmp_path / "s2"), log=_quiet)
    assert not os.path.exists(tmp_path / "s1") and not os.path.exists(tmp_path / "s2")
    with pytest.raises(NeurojaxError, match="not a converted workdir"):
        continual_config(str(converted / "teacher"))


def test_old_run_configs_keep_their_identity():
    """A config written before the init / distill sections existed compares equal to one with their defaults."""
    old = json.loads(json.dumps(run_config("micro").to_dict()))
    new = json.loads(json.dumps(add_continual_sections(run_config("micro")).to_dict()))
    assert "init" not in old and "init" in new and identity(old) == identity(new)
    changed = json.loads(json.dumps(new))
    changed["distill"]["kl_weight"] = 0.5
    assert identity(changed) != identity(old)
