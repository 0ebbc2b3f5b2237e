"""The research notebooks: paired jupytext `.py` / `.ipynb` files that CI executes.

Every `notebooks/*.py` (jupytext percent format, what diffs review) must have an `.ipynb` twin
with the same cells, stored without outputs; the slow test executes each `.ipynb` with nbclient
under `NEUROJAX_NOTEBOOK_SMALL=1` (the notebooks' quick settings) and fails on any error, including
the assertion cell each notebook ends with. Notebooks are discovered by glob, so a new one is
covered as soon as it is added.
"""
import pathlib
import time

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9]*.py"))
CELL_TIMEOUT_S = 600


def _ids(paths):
    return [p.stem for p in paths]


def _cells(nb):
    """(cell type, source) of every cell, trailing whitespace ignored."""
    return [(c.cell_type, c.source.rstrip()) for c in nb.cells]


def test_notebooks_exist():
    assert {p.stem[:2] for p in SOURCES} >= {"01", "02", "03", "04"}, SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_py_and_ipynb_are_paired(source):
    """The `.py` and the `.ipynb` hold the same cells (run `jupytext --sync notebooks/<name>.py`
    after editing either), the pairing is declared, and the stored `.ipynb` has no outputs."""
    jupytext = pytest.importorskip("jupytext")
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `jupytext --to ipynb {source}`"
    py_nb = jupytext.read(source)
    ipynb = jupytext.read(paired)
    assert _cells(py_nb) == _cells(ipynb), f"{source.name} and {paired.name} differ: run `jupytext --sync {source}`"
    assert py_nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert not any(c.get("outputs") for c in ipynb.cells if c.cell_type == "code"), f"{paired.name} stores outputs"
    assert _cells(py_nb)[-1][1].count("assert") >= 2, "a notebook ends with a cell of checks"


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=_ids(SOURCES))
def test_notebook_executes(source, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("NEUROJAX_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.time()
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any error
    elapsed = time.time() - start
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("output_type") in ("display_data", "execute_result") and "image/png" in o.get("data", {})
               for o in outputs), f"{source.name} showed no plot"
    assert any("all checks passed" in o.get("text", "") for o in outputs), f"{source.name} did not reach its checks"
    print(f"{source.name}: {elapsed:.0f} s")
