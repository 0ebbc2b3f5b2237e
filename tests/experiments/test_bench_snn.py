"""The SNN training benchmark binary at a toy size: it prints its table and targets, writes the PNG
and a JSON summary, reports absent peers; bad flags give one error line."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "experiments.bench_snn", *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def summary_of(out: str) -> dict:
    return json.loads(out.splitlines()[-1].removeprefix("json "))


def test_toy_run_prints_table_and_writes_png(tmp_path):
    png = tmp_path / "snn.png"
    result = run("--points=6x16", "--batch=4", "--steps=2", "--warmup=1", "--impls=chunked", "--orders=spyx",
                 "--peers=none", f"--png={png}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "== T=6 H=16 B=4: float64 step-0 loss spyx order" in out, out
    assert "neurojax chunked" in out and "== targets" in out and "Spyx or neurojax chunked" in out, out
    assert png.read_bytes()[:8] == PNG_MAGIC
    s = summary_of(out)
    (point,) = s["points"]
    assert (point["T"], point["H"]) == (6, 16)
    (row,) = point["rows"]
    assert row["name"] == "neurojax chunked" and row["step_ms"] > 0 and row["fwd_ms"] > 0
    assert row["compile_s"] > 0 and row["peak_bytes"] > 6 * 4 * 700 * 4  # at least the input
    assert row["grad_err"] == 0.0  # compared with itself: the only neurojax row of its order


@pytest.mark.slow
def test_two_points_every_impl_both_orders(tmp_path):
    """Every implementation in both orders at two sizes: equal step-0 losses (within 1e-5 of
    float64), gradients equal to the reference's, a plot with both series; peers reported when
    absent (or measured when this interpreter has them)."""
    png = tmp_path / "snn.png"
    result = run("--points=8x16,12x16", "--batch=4", "--steps=2", "--warmup=1", f"--png={png}", timeout=900)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("spyx", "snntorch"):
        assert (f"{name:<26}not installed" in out) or (name in out.lower()), out
    assert png.read_bytes()[:8] == PNG_MAGIC
    s = summary_of(out)
    assert [(p["T"], p["H"]) for p in s["points"]] == [(8, 16), (12, 16)]
    for p in s["points"]:
        rows = [r for r in p["rows"] if r["name"].startswith("neurojax")]
        assert len(rows) == 8
        for order in ("snntorch", "spyx"):
            losses = {r["loss0"] for r in rows if r["order"] == order}
            assert max(losses) - min(losses) < 1e-5, (order, losses)
        assert all(r["grad_err"] < 1e-4 for r in rows), rows
    assert "step-0 loss of every neurojax row at every point" in out and "(target 1e-5: met)" in out, out


def test_bad_flags_give_one_error_line():
    for args, needle in ((["--points=0x16"], "--points"), (["--points=12"], "--points"),
                         (["--threshold=0"], "threshold"), (["--impls=pallas"], "--impls"),
                         (["--orders=brian"], "--orders"), (["--peers=norse"], "--peers"), (["--steps=0"], "--steps"),
                         (["--fast=xla"], "--fast")):
        result = run(*args)
        assert result.returncode == 2, (args, result.stdout)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], (args, result.stderr)
