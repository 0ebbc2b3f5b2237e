"""The hybrid_scaling table at a tiny budget: structure, memory scaling, and the TTFT fit."""
import math
import os

import pytest

from neurojax.tables import TABLES, TableContext, hybrid_scaling, table_markdown


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(hybrid_scaling, "TRAIN", {"batch_size": 2, "seq_len": 16, "eval_batches": 1, "log_every": 1})
    monkeypatch.setattr(hybrid_scaling, "LENGTHS", (8, 16, 32))
    monkeypatch.setattr(hybrid_scaling, "PREFILL_CHUNK", 16)
    monkeypatch.setattr(hybrid_scaling, "REPEATS", 1)


def test_linear_fit_is_exact_on_a_line():
    fit = hybrid_scaling.linear_fit([1, 2, 3, 4], [3, 5, 7, 9])
    assert fit["slope"] == pytest.approx(2) and fit["intercept"] == pytest.approx(1) and fit["r2"] == pytest.approx(1)


@pytest.mark.slow
def test_table_at_a_tiny_budget(tmp_path, small):
    ctx = TableContext(workdir=str(tmp_path / "wd"), results_dir=str(tmp_path / "res"), preset="hybrid_micro",
                       num_steps=2, data="synthetic", log=lambda m: None)
    quality, ttft, fit = TABLES.get("hybrid_scaling").build(ctx)
    assert [t.name for t in (quality, ttft, fit)] == ["hybrid_scaling", "hybrid_scaling_ttft", "hybrid_scaling_fit"]

    # (i) both variants trained by the same loop with the same budget; the twin attends over the whole window.
    cols = quality.columns
    assert [r[0] for r in quality.rows] == ["hybrid (GLA + SWA)", "full attention"]
    hyb, full = (dict(zip(cols, r)) for r in quality.rows)
    assert hyb["layer pattern"] == "gla/swa" and hyb["attention window"] == 4
    assert full["layer pattern"] == "swa" and full["attention window"] == 16  # = seq_len: plain causal attention
    assert hyb["train steps"] == full["train steps"] == 2 and hyb["train tokens"] == full["train tokens"] == 64
    assert all(math.isfinite(r["val bits/byte"]) and r["val bits/byte"] > 0 for r in (hyb, full))
    for variant in ("hybrid", "full_attention"):
        assert os.path.exists(os.path.join(ctx.workdir, f"hybrid_micro_{variant}", "checkpoints", "2"))
    assert os.path.exists(os.path.join(ctx.results_dir, quality.figures[0]))

    # (ii) one row per length; hybrid state flat beyond the window, full-attention KV cache linear in length.
    rows = [dict(zip(ttft.columns, r)) for r in ttft.rows]
    assert [r["prompt tokens"] for r in rows] == [8, 16, 32]
    assert all(r["hybrid TTFT (ms)"] > 0 and r["full attention TTFT (ms)"] > 0 for r in rows)
    hybrid_mem = [r["hybrid state (KiB)"] for r in rows]
    full_mem = [r["full attention KV cache (KiB)"] for r in rows]
    assert len(set(hybrid_mem)) == 1  # every length here is beyond the 4-token window
    assert all(b > a for a, b in zip(full_mem, full_mem[1:]))
    lengths = [r["prompt tokens"] for r in rows]
    per_token = {(b - a) / (lb - la) for a, b, la, lb in zip(full_mem, full_mem[1:], lengths, lengths[1:])}
    assert len(per_token) == 1  # linear: the same bytes per extra token
    assert full_mem[-1] > hybrid_mem[-1]

    # The fit: slope, intercept, R^2 present and finite, and printed in the notes.
    assert fit.columns[:4] == ["model", "slope (ms per 1k tokens)", "intercept (ms)", "R^2"]
    assert [r[0] for r in fit.rows] == ["hybrid (GLA + SWA)", "full attention"]
    for row in fit.rows:
        assert all(math.isfinite(v) for v in row[1:4]) and row[3] <= 1.0
    assert any("R^2" in n and "ms/token" in n for n in ttft.notes)
    for t in (quality, ttft, fit):
        assert t.notes and table_markdown(t).startswith("## ")
