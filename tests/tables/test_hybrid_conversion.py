"""The hybrid_conversion table at a toy size: every row computed, the converted state flat in length."""
import os

import pytest

from neurojax.tables import TABLES, TableContext, hybrid_conversion


@pytest.mark.slow  # trains five micro runs (about a minute on an idle 2-core machine)
def test_toy_build(tmp_path, monkeypatch):
    monkeypatch.setattr(hybrid_conversion, "LENGTHS", (64, 128, 256))
    monkeypatch.setattr(hybrid_conversion, "REPEATS", 1)
    ctx = TableContext(workdir=str(tmp_path / "wd"), results_dir=str(tmp_path / "res"), preset="micro", num_steps=8,
                       data="synthetic", log=lambda m: None)
    recovery, layers, speed = TABLES.get("hybrid_conversion").build(ctx)
    rows = {r[0]: r for r in recovery.rows}
    teacher = rows["teacher: Transformer++"]
    assert teacher[1] == 8 and teacher[5] == 0
    for label in ("converted, 0 steps (calibrated init)", "converted + distillation, 4N steps",
                  "hybrid from scratch, 4N steps", "hybrid from scratch, teacher's budget"):
        assert rows[label][4] > 0, label
    assert rows["converted + distillation, 4N steps"][2] == 4 * 2048 and rows["converted + distillation, 4N steps"][3] == 0.5
    spiked = rows["converted + distillation 4N, spike-coded k=3"]
    assert 0 < spiked[6] < 1
    assert [r[0] for r in layers.rows] == [0] and layers.rows[0][2] < layers.rows[0][3]
    assert [r[0] for r in speed.rows] == [64, 128, 256]
    assert len({r[4] for r in speed.rows}) == 1  # converted state: flat in the prompt length (window 64)
    assert [r[3] for r in speed.rows] == sorted(r[3] for r in speed.rows) and speed.rows[-1][3] > speed.rows[0][3]
    assert os.path.getsize(tmp_path / "res" / recovery.figures[0]) > 1000
    # the conversion is reused when the teacher and settings are unchanged
    converted = os.path.join(ctx.workdir, "micro_conversion_converted")
    stamp = os.path.getmtime(os.path.join(converted, "config.json"))
    teacher = os.path.join(ctx.workdir, "micro_transformer")
    conv = hybrid_conversion.conversion_settings(hybrid_conversion.load_trained(teacher).model.config, 128)
    assert hybrid_conversion._converted(ctx, teacher, conv) == converted
    assert os.path.getmtime(os.path.join(converted, "config.json")) == stamp
