"""experiments/convert_hybrid.py and continual training through the train binary, end to end."""
import json
import os

import pytest

from tests.experiments.cli_helpers import assert_one_error, run

MICRO = ["--config.train.num_steps=12", "--config.train.batch_size=4", "--config.train.seq_len=32",
         "--config.train.warmup_steps=2", "--config.train.eval_every=0", "--config.train.checkpoint_every=12",
         "--config.train.eval_batches=1"]


@pytest.mark.slow
def test_convert_then_continue_with_distillation(tmp_path):
    teacher, converted, student = (str(tmp_path / n) for n in ("teacher", "converted", "student"))
    result = run("train", f"--workdir={teacher}", "--config=experiments/configs/lm.py:transformer_micro", *MICRO)
    assert result.returncode == 0, result.stderr
    result = run("convert_hybrid", f"--teacher={teacher}", f"--workdir={converted}",
                 "--config.convert.layout=gla,swa", "--config.convert.window=8", "--config.convert.decay_rank=4",
                 "--config.calibration.batches=1")
    assert result.returncode == 0, result.stderr
    assert "layer 0 (gla): half-life" in result.stdout and "continual.py:" in result.stdout
    record = json.load(open(os.path.join(converted, "config.json")))
    assert record["model"]["layer_pattern"] == ["gla", "swa"] and record["convert"]["teacher"] == teacher
    result = run("evaluate", f"--workdir={converted}", "--max_batches=1")
    assert result.returncode == 0 and "bits" in result.stdout, result.stderr
    result = run("train", f"--workdir={student}", f"--config=experiments/configs/continual.py:{converted}",
                 "--config.train.num_steps=6", "--config.train.log_every=2", "--config.distill.temperature=2.0")
    assert result.returncode == 0, result.stderr
    assert "distilling from" in result.stdout and " kl " in result.stdout and "parameters from" in result.stdout
    # bad inputs: one error line each, nothing written
    assert_one_error(run("convert_hybrid", f"--teacher={teacher}", f"--workdir={tmp_path / 'x'}",
                         "--config.convert.layout=gla,mamba"), "mamba")
    assert_one_error(run("convert_hybrid", f"--teacher={converted}", f"--workdir={tmp_path / 'y'}"),
                     "not a Transformer++")
    assert_one_error(run("convert_hybrid", f"--teacher={teacher}", f"--workdir={tmp_path / 'z'}",
                         "--config.convert.window=0"), "convert.window")
    assert not any(os.path.exists(tmp_path / n) for n in ("x", "y", "z"))
