"""Test helpers: run a binary as a user would, and check its single `error:` line."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(binary, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", f"experiments.{binary}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def assert_one_error(result, *needles):
    """Exit status 2 and exactly one non-log stderr line, `error: ...`, containing every needle."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and line[:1] not in "WI" or line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
