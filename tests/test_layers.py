"""The one-way dependency rule of WORKSPACE.md, checked on the source's imports."""
import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# package -> neurojax subpackages it must not import (directly, at any depth of its modules)
FORBIDDEN = {
    "quant": ["nn", "fixedpoint", "data", "train", "eval", "inference", "tables", "interop", "flax"],
    "nn": ["fixedpoint", "data", "train", "eval", "inference", "tables", "interop"],
    "fixedpoint": ["data", "train", "eval", "inference", "tables", "interop"],
    "data": ["nn", "fixedpoint", "train", "eval", "inference", "tables"],
    "inference": ["train", "eval", "tables", "data"],
    # the emulator shares only quant primitives with the integer model: equivalence must not hold by construction
    "neuromorphic": ["nn", "fixedpoint", "data", "train", "eval", "inference", "tables", "interop", "spiking", "flax"],
    "spiking": ["fixedpoint", "data", "train", "eval", "inference", "tables", "neuromorphic", "interop"],
    # kernels sit between quant and nn (nn and fixedpoint call them)
    "kernels": ["nn", "fixedpoint", "data", "train", "eval", "inference", "tables", "neuromorphic", "interop", "flax"],
}
ROOTS = {"kernels": os.path.join(REPO, "kernels")}  # installed as neurojax.kernels


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package):
    root = ROOTS.get(package, os.path.join(REPO, "neurojax", package))
    bad = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                for module in _imports(path):
                    for target in FORBIDDEN[package]:
                        if module == target or module.startswith(f"neurojax.{target}") or module.startswith(f"{target}."):
                            bad.append(f"{os.path.relpath(path, REPO)} imports {module}")
    assert not bad, bad
