"""`kernels/` is importable as `neurojax.kernels` from both an editable and a regular install."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Every subpackage (a package missing from setup.py would import in the editable install
# and fail only in a regular one) and every kernel op.
PROBE = ("import pkgutil, importlib, neurojax, neurojax.kernels as k; "
         "[importlib.import_module(m.name) for m in pkgutil.walk_packages(neurojax.__path__, 'neurojax.')]; "
         "import neurojax.kernels.linear_recurrence.api as a, neurojax.kernels.ternary_matmul.api, "
         "neurojax.kernels.rmsnorm_quant.api, neurojax.fixedpoint, neurojax.neuromorphic; print(a.__file__)")


def _probe(cwd, env=None):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_editable_install_maps_kernels_to_repo(tmp_path):
    """The test environment is the editable install of this checkout (`pip install -e .`)."""
    path = _probe(str(tmp_path))  # outside the repo: found through the install, not the cwd
    assert path == os.path.join(REPO, "kernels", "linear_recurrence", "api.py")


@pytest.mark.slow
def test_regular_install_ships_kernels(tmp_path):
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(target), REPO], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, PYTHONPATH=str(target), PYTHONNOUSERSITE="1")
    # Put the target first so the editable finder of the test environment is not what resolves it.
    path = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {PROBE}"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert path.returncode == 0, path.stderr
    assert path.stdout.strip() == str(target / "neurojax" / "kernels" / "linear_recurrence" / "api.py")
    # the native kernel's C++ source ships as package data (it is compiled on first use)
    assert (target / "neurojax" / "kernels" / "ternary_matmul" / "native_cpu.cc").is_file()
    assert (target / "neurojax" / "kernels" / "event_matmul" / "native_cpu.cc").is_file()
