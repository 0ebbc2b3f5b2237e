"""The interpreter benchmark binary at a tiny size (no Lava): it prints its table, counts ~activity synops."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    return subprocess.run([sys.executable, "-m", "experiments.bench_interpreter", *args], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_tiny_run_prints_table_and_synop_ratio():
    result = run("--neurons=64", "--steps=20", "--repeats=1", "--activity=0.25", "--vth=300")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for row in ("neurojax compile", "neurojax steady run (20 steps", "neurojax output spikes", "Lava",
                "synops measured / dense"):
        assert row in out, out
    summary = json.loads(out.splitlines()[-1].removeprefix("json "))
    assert summary["neurons"] == 64 and summary["steps"] == 20
    assert summary["steady_s"] > 0 and summary["compile_s"] >= 0
    # event-driven: the synaptic ops are the dense count scaled by the realized input activity
    assert abs(summary["activity"] - 0.25) < 0.05
    assert abs(summary["synop_ratio"] - summary["activity"]) < 0.02, summary


def test_bad_flags_give_one_error_line():
    for args, needle in ((["--activity=2"], "--activity"), (["--neurons=8", "--steps=4", "--lava_steps=9"],
                                                               "--lava_steps"), (["--du=5000"], "--du")):
        result = run(*args)
        assert result.returncode == 2, result.stdout
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
