"""The kernel benchmark binary at toy sizes: every section prints its figures; bad flags fail cleanly."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    return subprocess.run([sys.executable, "-m", "experiments.bench_kernels", *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.mark.slow
def test_toy_run_prints_every_section():
    result = run("--matmul_shapes=256x96", "--prefill_rows=8", "--stream_mib=1", "--repeats=1",
                 "--decode_preset=micro", "--decode_tokens=4", "--recurrence_shape=2x16x8")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # 256 x 96 weights: 98,304 B in float32; 64 byte rows x 96 + a 4-byte scale packed
    assert "float32 98,304 B, bf16 49,152 B, packed 6,148 B incl. scale (float32 / packed = 15.99x)" in out, out
    for impl in ("dense f32", "dense bf16", "packed reference", "packed xla", "packed xla_float"):
        assert out.count(impl) >= 2, (impl, out)  # decode and prefill rows
    assert re.search(r"copy bandwidth .*: [0-9.]+ GB/s", out), out
    assert re.search(r"packed ternary *: +[0-9.]+ tokens/s", out) and "float32 weights" in out, out
    assert re.search(r"packed / float32 tokens/s: [0-9.]+x", out), out
    assert "rows=    8 d=1024" in out and "forward+backward" in out, out
    for impl in ("reference", "associative", "chunked"):
        assert re.search(rf"forward +:.*{impl} [0-9.]+ [(]", out), (impl, out)


def test_bad_flags_give_one_error_line():
    for args, needle in ((["--sections=matmul,bogus"], "bogus"), (["--matmul_shapes=12"], "--matmul_shapes"),
                         (["--recurrence_shape=2x3"], "--recurrence_shape"), (["--repeats=0"], "--repeats")):
        result = run(*args)
        assert result.returncode == 2, result.stdout
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
