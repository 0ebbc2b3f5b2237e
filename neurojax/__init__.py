"""neurojax: MatMul-free, integer-only and spiking language models in JAX.

Layers (each imports only those above it): `quant` (pure array functions) ->
`nn` (Flax modules) -> `data`, `train`, `inference`, `eval`, `tables`.
See WORKSPACE.md for the layout and conventions.
"""
from neurojax.errors import NeurojaxError

__version__ = "0.1.0"
__all__ = ["NeurojaxError", "__version__"]
