"""Paper tables: a registry of builders and the report writer. Importing registers them all.

Import order is report order (kept by hand, hence the isort opt-out): `ternary_vs_fp` first,
whose runs `integer_model` and `spiking_sparsity` reuse.
"""
# ruff: noqa: I001
from neurojax.tables import ternary_vs_fp as _ternary_vs_fp  # noqa: F401
from neurojax.tables import integer_model as _integer_model  # noqa: F401
from neurojax.tables import neuromorphic as _neuromorphic  # noqa: F401
from neurojax.tables import spiking_sparsity as _spiking_sparsity  # noqa: F401
from neurojax.tables import hybrid_scaling as _hybrid_scaling  # noqa: F401
from neurojax.tables import transformer_baseline as _transformer_baseline  # noqa: F401
from neurojax.tables import hybrid_conversion as _hybrid_conversion  # noqa: F401
from neurojax.tables import smollm2 as _smollm2  # noqa: F401
from neurojax.tables import smollm2_conversion as _smollm2_conversion  # noqa: F401
from neurojax.tables.registry import TABLES, Table, TableContext, register_table
from neurojax.tables.report import table_markdown, write_csv, write_report

__all__ = ["TABLES", "Table", "TableContext", "register_table", "table_markdown", "write_csv", "write_report"]
