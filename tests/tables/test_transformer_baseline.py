"""The transformer_baseline table: the same run config as ternary_vs_fp but the model, and a toy-size build."""
import math
import os

import pytest

from neurojax.errors import NeurojaxError
from neurojax.nn import (
    TransformerConfig,
    count_params,
    preset,
    transformer_count_params,
    transformer_preset,
)
from neurojax.tables import (
    TABLES,
    TableContext,
    table_markdown,
    ternary_vs_fp,
    transformer_baseline,
)
from neurojax.train.model_factory import model_config


def _ctx(tmp_path, preset_name="micro", steps=2):
    return TableContext(workdir=str(tmp_path / "wd"), results_dir=str(tmp_path / "res"), preset=preset_name,
                        num_steps=steps, data="synthetic", log=lambda m: None)


def test_transformer_run_shares_everything_but_the_model(tmp_path):
    ctx = _ctx(tmp_path, "tiny", 50)
    mmf, tr = ternary_vs_fp._config(ctx, False), transformer_baseline.transformer_config(ctx)
    assert tr.train.to_dict() == mmf.train.to_dict() and tr.data.to_dict() == mmf.data.to_dict()
    assert tr.model.family == "transformer" and model_config(tr.model.to_dict()) == transformer_preset("transformer_tiny")
    assert transformer_baseline.transformer_workdir(ctx).endswith("tiny_transformer")
    assert "transformer_baseline" in TABLES.names()
    with pytest.raises(NeurojaxError, match="no Transformer\\+\\+ preset of the '1.3B' size"):
        TABLES.get("transformer_baseline").build(_ctx(tmp_path, "1.3B"))


def test_state_memory_columns():
    """Recurrent state: 4 layers x 256 float32 = 4 KiB at any context; KV cache grows with the context."""
    assert transformer_baseline.matmulfree_state_bytes(preset("tiny")) == 4 * 256 * 4
    tiny = transformer_preset("transformer_tiny")
    assert isinstance(tiny, TransformerConfig)
    # 4 layers x (keys + values) x 2048 slots x 256 channels x 4 bytes, + the validity mask and the counter.
    from neurojax.nn.transformer import transformer_state_bytes

    assert transformer_state_bytes(tiny, 1, 2048) == 4 * 2 * 2048 * 256 * 4 + 2048 + 4


@pytest.mark.slow
def test_table_at_a_toy_size(tmp_path, monkeypatch):
    monkeypatch.setattr(transformer_baseline, "EVAL_BATCHES", 1)
    monkeypatch.setattr(transformer_baseline, "DECODE", {"batch": 2, "prompt": 4, "new_tokens": 4})
    monkeypatch.setattr(transformer_baseline, "REPEATS", 1)
    monkeypatch.setattr(transformer_baseline, "TIMED_STEPS", 1)
    ctx = _ctx(tmp_path)
    table = TABLES.get("transformer_baseline").build(ctx)
    rows = [dict(zip(table.columns, r)) for r in table.rows]
    assert [r["model"] for r in rows] == ["MatMul-free (ternary)", "Transformer++"]
    mmf, tr = rows
    assert mmf["parameters"] == count_params(preset("micro"))
    assert tr["parameters"] == transformer_count_params(transformer_preset("transformer_micro"))
    assert mmf["train steps"] == tr["train steps"] == 2 and mmf["train tokens"] == tr["train tokens"] == 2 * 16 * 128
    for r in rows:
        assert math.isfinite(r["val bits/byte"]) and r["val bits/byte"] > 0
        assert r["generation tokens/s"] > 0 and r["train tokens/s (timed here)"] > 0
        assert r["weights for inference (MiB)"] > 0
    assert tr["weights for inference (MiB)"] == pytest.approx(4 * tr["parameters"] / 2**20)
    assert mmf["weights for inference (MiB)"] < tr["weights for inference (MiB)"]  # ternary projections
    state = "decode state at 2048 tokens, batch 1 (KiB)"
    assert mmf[state] == 2 * 32 * 4 / 1024 and tr[state] > mmf[state]  # micro KV cache: its 512-token budget
    # The MatMul-free run is ternary_vs_fp's (reused), the Transformer++ run sits beside it.
    for sub in ("micro_ternary", "micro_transformer"):
        assert os.path.exists(os.path.join(ctx.workdir, sub, "checkpoints", "2"))
    assert os.path.exists(os.path.join(ctx.results_dir, table.figures[0]))
    text = table_markdown(table)
    assert text.startswith("## MatMul-free LM vs Transformer++") and "measured" in text and "estimated" in text
