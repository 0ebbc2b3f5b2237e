"""Kill-and-resume continues bit-identically to an uninterrupted run."""
import json
import os

import jax
import numpy as np
import pytest

from neurojax.train import Checkpointer, load_trained, train
from neurojax.train.loop import METRICS_FILE


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _assert_bit_identical(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def _quiet(_msg):
    pass


@pytest.mark.slow
def test_resume_is_bit_identical(tmp_path, synthetic_cfg):
    straight = str(tmp_path / "straight")
    resumed = str(tmp_path / "resumed")
    train(synthetic_cfg, straight, log=_quiet)
    first = train(synthetic_cfg, resumed, stop_after_steps=5, log=_quiet)
    assert first["step"] == 5 and not first["finished"]
    second = train(synthetic_cfg, resumed, log=_quiet)
    assert second["started_at"] == 5 and second["finished"]

    a, b = load_trained(straight), load_trained(resumed)
    assert a.step == b.step == synthetic_cfg.train.num_steps
    _assert_bit_identical(a.params, b.params)
    # Optimizer state and data position too: they decide every later step.
    ca, cb = Checkpointer(straight, read_only=True), Checkpointer(resumed, read_only=True)
    assert ca.restore_meta()["data_state"] == cb.restore_meta()["data_state"]
    # The metrics log has each step once, with the uninterrupted run's losses.
    def losses(wd):
        records = [r for r in map(json.loads, open(os.path.join(wd, METRICS_FILE))) if "loss" in r]
        steps = [r["step"] for r in records]
        assert steps == sorted(set(steps)), steps
        return {r["step"]: r["loss"] for r in records}

    want, got = losses(straight), losses(resumed)
    assert {s: got[s] for s in want} == want


def test_resume_differs_if_data_position_were_lost(tmp_path, synthetic_cfg):
    """Control: a run restarted from scratch with another seed does not match (the test can fail)."""
    a = str(tmp_path / "a")
    b = str(tmp_path / "b")
    train(synthetic_cfg, a, log=_quiet)
    other = synthetic_cfg.copy_and_resolve_references()
    other.train.seed = 1
    train(other, b, log=_quiet)
    pa, pb = _leaves(load_trained(a).params), _leaves(load_trained(b).params)
    assert any(not np.array_equal(x, y) for x, y in zip(pa, pb))


def test_finished_run_is_reused(tmp_path, synthetic_cfg):
    wd = str(tmp_path / "run")
    train(synthetic_cfg, wd, log=_quiet)
    before = _leaves(load_trained(wd).params)
    again = train(synthetic_cfg, wd, log=_quiet)
    assert again["finished"] and again["started_at"] == synthetic_cfg.train.num_steps
    _assert_bit_identical(before, _leaves(load_trained(wd).params))
