"""The SmolLM2 conversion table on a tiny GGUF written by the test: its rows come from the library's conversion
and training functions, the training moves the student toward the teacher, and the memory rows follow the
state shapes."""
import dataclasses

import jax
import pytest

from neurojax.eval import evaluate_lm
from neurojax.nn.hybrid import HybridLM, hybrid_state_bytes
from neurojax.nn.hybrid_conversion import convert_params, student_config
from neurojax.nn.transformer import transformer_state_bytes
from neurojax.tables import TableContext, smollm2, smollm2_conversion
from neurojax.tables.registry import TABLES


@pytest.fixture
def tiny(tiny_tables, monkeypatch):
    """`tiny_tables` (tests/tables/conftest.py) plus toy training sizes."""
    for name, value in {"N_STEPS": 3, "BATCH": 2, "SEQ": 16, "TRAIN_CHARS": 200_000, "CALIBRATION": (1, 2, 16),
                        "LEARNING_RATE": 3e-3, "CONTEXT_LENGTHS": (64, 128), "LOG_EVERY": 4}.items():
        monkeypatch.setattr(smollm2_conversion, name, value)
    monkeypatch.setattr(smollm2_conversion, "CONVERSION", dataclasses.replace(smollm2_conversion.CONVERSION, window=8,
                                                                              decay_rank=8))
    return tiny_tables


def test_registered_by_name_only():
    assert not TABLES.get("smollm2_conversion").default


@pytest.mark.slow
def test_conversion_table_rows(tmp_path, tiny):
    logs = []
    ctx = TableContext(workdir=str(tmp_path / "wd"), results_dir=str(tmp_path / "res"), log=logs.append)
    recovery, memory = TABLES.get("smollm2_conversion").build(ctx)
    rows = {r[0]: dict(zip(recovery.columns, r)) for r in recovery.rows}
    assert list(rows) == ["teacher: SmolLM2-135M-Instruct", "converted, 0 steps (calibrated init)",
                          "converted + distillation, 1N steps", "converted + distillation, 2N steps",
                          "converted + distillation, 4N steps", "distilled 4N, spike-coded k=3"]
    assert [r["train tokens"] for r in rows.values()] == ["", 0, 3 * 32, 6 * 32, 12 * 32, 12 * 32]

    # the 0-step row is the library's conversion evaluated on the smollm2 table's windows
    m = smollm2.load_smollm2()
    student = student_config(m.config, smollm2_conversion.CONVERSION)
    windows, _ = smollm2.eval_windows(m, None, 2, 32)
    calib = smollm2_conversion.BatchIterator(smollm2_conversion._train_tokens(m, None), 2, 16, seed=1).peek(0)[:, :-1]
    params, _ = convert_params(m.config, m.params, student, jax.random.PRNGKey(0), [calib])
    want = evaluate_lm(HybridLM(student), {"params": params}, [windows], m.byte_lengths())["bits_per_byte"]
    assert rows["converted, 0 steps (calibrated init)"]["val bits/byte"] == pytest.approx(want, rel=1e-5)
    teacher = rows["teacher: SmolLM2-135M-Instruct"]["val bits/byte"]
    for r in rows.values():
        assert r["gap to teacher (%)"] == pytest.approx(100 * (r["val bits/byte"] / teacher - 1))
    assert 0 < rows["distilled 4N, spike-coded k=3"]["activation sparsity"] < 1
    # distillation pulls the student toward the teacher: the training loss falls
    assert "training loss" in recovery.notes[1]
    first, last = (float(x) for x in recovery.notes[1].split("training loss ")[1].split(" (")[0].split(" -> "))
    assert last < first
    assert any("step 12/12" in line and "tokens/s" in line for line in logs)

    assert [r[0] for r in memory.rows] == [64, 128]
    for n, kv, state, ratio in memory.rows:
        assert kv == transformer_state_bytes(m.config, 1, n) / 2**20 and state == hybrid_state_bytes(student, 1) / 2**20
        assert ratio == pytest.approx(kv / state)
    assert memory.rows[1][1] > 1.9 * memory.rows[0][1] and memory.rows[1][2] == memory.rows[0][2]  # KV grows, state flat
