"""Write tables as Markdown (one report) and CSV (one file per table)."""
import csv
import os
from typing import Any, Sequence

from neurojax.tables.registry import Table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def table_markdown(table: Table) -> str:
    lines = [f"## {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.rows]
    if table.notes:
        lines += [""] + [f"- {n}" for n in table.notes]
    lines += [""] + [f"![{table.name}]({fig})" for fig in table.figures]
    return "\n".join(lines) + "\n"


def write_csv(table: Table, path: str) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(table.columns)
        writer.writerows(table.rows)
    return path


def write_report(tables: Sequence[Table], results_dir: str, header: str) -> str:
    """Write `results_dir/README.md` and one `<name>.csv` per table; returns the Markdown path."""
    os.makedirs(results_dir, exist_ok=True)
    for t in tables:
        write_csv(t, os.path.join(results_dir, f"{t.name}.csv"))
    path = os.path.join(results_dir, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(header.rstrip() + "\n\n" + "\n".join(table_markdown(t) for t in tables))
    return path
