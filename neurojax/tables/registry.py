"""The registry of paper tables that `experiments/reproduce.py` prints.

A table is a function `build(ctx: TableContext) -> Table`, registered by name.
Every number in a `Table` is computed by the code in that run; `Table.notes`
says for each column how (measured, emulated, or estimated from a cost model).
"""
import dataclasses
from typing import Any, Callable, Optional

from neurojax.nn.registry import Registry


@dataclasses.dataclass
class TableContext:
    """Where and at what scale tables are built."""

    workdir: str  # runs (checkpoints) live under here; reused when complete
    results_dir: str  # Markdown / CSV / PNG outputs
    preset: str = "tiny"
    num_steps: Optional[int] = None  # None: the preset's config default
    data: Optional[str] = None  # None: the embedded corpus
    zeroshot_data: Optional[str] = None  # directory of local zero-shot task files (<task>.jsonl)
    log: Callable[[str], None] = print


@dataclasses.dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = dataclasses.field(default_factory=list)  # provenance of the numbers
    figures: list[str] = dataclasses.field(default_factory=list)  # PNG paths, relative to results_dir


@dataclasses.dataclass(frozen=True)
class TableSpec:
    name: str
    description: str
    build: Callable[[TableContext], "Table | list[Table]"]
    default: bool = True  # built by a plain `reproduce`; False: only when named in --tables


def default_tables() -> list[str]:
    """Names of the tables a plain `reproduce` builds, in registration order."""
    return [n for n in TABLES.names() if TABLES.get(n).default]


TABLES: Registry = Registry("table")


def register_table(name: str, description: str, default: bool = True) -> Callable:
    """Decorator: register `build(ctx) -> Table` under `name`; `default=False` builds it only by name."""

    def add(build: Callable[[TableContext], Table]) -> Callable[[TableContext], Table]:
        TABLES.register(name)(TableSpec(name, description, build, default))
        return build

    return add
