"""Small file helpers shared by every layer (no JAX here)."""
import json
import os
from typing import Any


def write_json_atomic(path: str, value: Any) -> None:
    """Write JSON to `path` via a temporary file and `os.replace` (never half-written)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
