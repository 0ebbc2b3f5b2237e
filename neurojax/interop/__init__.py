"""Interchange with the rest of the ecosystem: files other tools read and write.

Each format has its own module, imported by name (none is imported here, so an optional
format's dependencies load only when it is used).
"""
