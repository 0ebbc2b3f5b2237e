"""Shared fixtures of the table tests."""
import pytest

from neurojax.tables import smollm2
from tests.interop.gguf_files import TinySpec, write_tiny_gguf


@pytest.fixture
def tiny_tables(tmp_path, monkeypatch):
    """The tables pointed at a tiny GGUF (context 128) with toy sizes."""
    path = str(tmp_path / "tiny.gguf")
    write_tiny_gguf(path, TinySpec(context=128))
    monkeypatch.setattr(smollm2, "GGUF_PATH", path)
    monkeypatch.setattr(smollm2, "_MODELS", {})
    monkeypatch.setattr(smollm2, "_DENSE_BPB", {})
    for name, value in {"EVAL_ROWS": 2, "EVAL_SEQ": 32, "GREEDY_TOKENS": 5, "REPEATS": 1, "K_VALUES": (2.0, 3.0),
                        "DECODE": {"batch": 1, "prompt": 4, "new_tokens": 4}, "PROMPTS": ("Paris is", "def add(")
                        }.items():
        monkeypatch.setattr(smollm2, name, value)
    return path
