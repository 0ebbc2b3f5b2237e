"""The scaling report runs at toy size: every row measured, collectives counted, estimates printed."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_bench_sharding_toy_run():
    r = subprocess.run([sys.executable, "-m", "experiments.bench_sharding", "--preset=micro", "--devices=1,2",
                        "--layouts=data", "--batch_size=4", "--seq_len=16", "--repeats=1", "--accelerators=8"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2
    assert rows[1].split("|")[8].strip() == "1"  # data parallel: one (combined) gradient all-reduce
    assert "| 8 |" in r.stdout and "estimated" in r.stdout


def test_bench_sharding_bad_flags():
    r = subprocess.run([sys.executable, "-m", "experiments.bench_sharding", "--devices=two"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error:")
