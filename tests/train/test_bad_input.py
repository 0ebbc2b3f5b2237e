"""Bad configs, foreign workdirs and corrupt checkpoints: clear errors, nothing lost."""
import os

import pytest

from neurojax import NeurojaxError
from neurojax.train import Checkpointer, load_trained, train


def _quiet(_):
    pass


@pytest.mark.parametrize("section,field,value,match", [
    ("train", "warmup_steps", 50, "warmup_steps"),
    ("train", "batch_size", 0, "batch_size"),
    ("train", "learning_rate", -1.0, "learning_rate"),
    ("model", "num_heads", 3, "divisible"),
    ("data", "validation_fraction", 1.5, "validation_fraction"),
])
def test_inconsistent_config_rejected_before_writing(tmp_path, synthetic_cfg, section, field, value, match):
    synthetic_cfg[section][field] = value
    wd = tmp_path / "run"
    with pytest.raises(NeurojaxError, match=match):
        train(synthetic_cfg, str(wd), log=_quiet)
    assert not wd.exists()


def test_missing_data_path(tmp_path, synthetic_cfg):
    synthetic_cfg.data.source = str(tmp_path / "nope.txt")
    with pytest.raises(NeurojaxError, match="nope.txt"):
        train(synthetic_cfg, str(tmp_path / "run"), log=_quiet)


def test_workdir_of_another_config(tmp_path, synthetic_cfg):
    wd = str(tmp_path / "run")
    train(synthetic_cfg, wd, stop_after_steps=4, log=_quiet)
    before = sorted(os.listdir(os.path.join(wd, "checkpoints")))
    other = synthetic_cfg.copy_and_resolve_references()
    other.model.d_model = 64
    with pytest.raises(NeurojaxError, match="another config.*model.d_model"):
        train(other, wd, log=_quiet)
    assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == before


def test_missing_checkpoint(tmp_path):
    with pytest.raises(NeurojaxError, match="not a neurojax training workdir"):
        load_trained(str(tmp_path))


def _corrupt_latest(wd):
    ckpt = Checkpointer(wd, read_only=True)
    step = ckpt.latest_step()
    ckpt.close()
    root = os.path.join(wd, "checkpoints", str(step), "params")
    damaged = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "r+b") as f:
                f.write(b"\x00garbage\xff" * 8)
            damaged += 1
    assert damaged
    return step


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path, synthetic_cfg):
    wd = str(tmp_path / "run")
    train(synthetic_cfg, wd, stop_after_steps=8, log=_quiet)
    step = _corrupt_latest(wd)
    listing = sorted(os.listdir(os.path.join(wd, "checkpoints")))
    with pytest.raises(NeurojaxError, match=f"checkpoint step {step}.*unreadable"):
        train(synthetic_cfg, wd, log=_quiet)
    with pytest.raises(NeurojaxError, match="unreadable"):
        load_trained(wd)
    assert sorted(os.listdir(os.path.join(wd, "checkpoints"))) == listing
