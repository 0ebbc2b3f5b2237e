"""Emulated neuromorphic cores: chip description, microcode, interpreter, compiler, cost model."""
