"""The NIR example binary: export, read back, bit-exact on the interpreter, events printed; errors."""
import os
import subprocess
import sys

import nir
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args):
    return subprocess.run([sys.executable, "-m", "experiments.export_nir", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_export_read_back_and_run_on_interpreter(tmp_path):
    out = str(tmp_path / "tiny.nir")
    r = _run(f"--out={out}", "--steps=40", "--rate=0.2")
    assert r.returncode == 0, r.stderr
    assert "every float and integer parameter identical" in r.stdout
    assert "bit-exact" in r.stdout and "synops" in r.stdout
    g = nir.read(out)  # a plain NIR reader sees a valid graph with NIR's own node types
    assert {type(n).__name__ for n in g.nodes.values()} >= {"Input", "Linear", "LIF", "Output"}
    assert np.all(g.nodes["lif1"].tau > 0)


def test_bad_input_is_one_error_line(tmp_path):
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not an hdf5 file")
    r = _run(f"--import_file={bad}", f"--out={tmp_path / 'x.nir'}")
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "corrupt" in r.stderr
    assert not (tmp_path / "x.nir").exists()
