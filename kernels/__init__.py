"""Jitted kernels, installed as `neurojax.kernels`: one folder per op.

Each op folder has `reference.py` (plain JAX, the definition), fast paths
(`xla.py`, later `pallas.py`) with the same signature, and `api.py`, the one
dispatching entry point that library code calls.
"""
