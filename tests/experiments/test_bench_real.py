"""The real-model decode benchmark binary: bad flags give one error line; on a tiny GGUF written here it
prints its table and JSON; with PyTorch + transformers installed, transformers loading the HF export of
the tiny GGUF generates the same greedy tokens as neurojax (slow)."""
import json
import os
import subprocess
import sys

import pytest

from tests.interop.gguf_files import TinySpec, write_tiny_gguf

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "experiments.bench_real", *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def summary_of(out: str) -> dict:
    return json.loads(out.splitlines()[-1].removeprefix("json "))


@pytest.mark.parametrize("args, message", [
    (["--new_tokens=0"], "--new_tokens and --repeats must be >= 1"),
    (["--peers=tensorflow"], "--peers: unknown peer 'tensorflow'"),
    (["--torch_threads=two"], "--torch_threads: 'two' is neither 'default' nor a positive thread count"),
    (["--gguf=/nowhere/model.gguf", "--peers=none"], "GGUF file '/nowhere/model.gguf' does not exist"),
    (["--prompt="], "--prompt must not be empty"),
])
def test_bad_flags_one_error_line(args, message):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("bench") / "tiny.gguf")
    write_tiny_gguf(path, TinySpec(context=128))
    return path


def test_neurojax_only_on_a_tiny_gguf(tiny_gguf):
    result = run(f"--gguf={tiny_gguf}", "--peers=none", "--new_tokens=6", "--repeats=2", "--prompt=Paris is")
    assert result.returncode == 0, result.stderr
    assert "PyTorch + transformers not in this run" in result.stdout
    s = summary_of(result.stdout)
    (ours,) = s["contenders"]
    assert ours["name"] == "neurojax" and len(ours["tokens"]) == 6 and len(ours["times"]) == 2
    assert ours["load_s"] > 0 and ours["life_rss"] > 0 and s["new_tokens"] == 6
    assert ours["peak_rss"] is None or 0 < ours["peak_rss"] <= ours["life_rss"] * 1.01


@pytest.mark.slow
def test_transformers_generates_the_same_tokens(tiny_gguf, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    result = run(f"--gguf={tiny_gguf}", "--new_tokens=12", "--repeats=1", "--torch_threads=1",
                 f"--workdir={tmp_path}", "--prompt=The capital of France is")
    assert result.returncode == 0, result.stderr
    s = summary_of(result.stdout)
    names = [c["name"] for c in s["contenders"]]
    assert names == ["neurojax", "PyTorch + transformers"]
    assert s["tokens_differ_at"] is None, s["contenders"]  # the HF export is the same model for transformers
    assert s["speed_ratio"] > 0 and os.path.isfile(tmp_path / "hf" / "model.safetensors")
    assert "== target" in result.stdout and ("met in this run" in result.stdout)
