"""Small file helpers shared by every layer (no JAX here)."""
import json
import os
from typing import Any, Callable

from neurojax.errors import NeurojaxError


def write_atomic(path: str, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then move the file onto `path` (`os.replace`): `path` is never
    half-written, and on any error the temporary file is removed and `path` left as it was."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(path: str, value: Any) -> None:
    """Write JSON to `path` via a temporary file and `os.replace` (never half-written)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    write_atomic(path, write)


def read_json_object(path: str) -> dict:
    """The JSON object in `path`; an unreadable file or anything but an object is one clear error."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NeurojaxError(f"{path!r} is not readable JSON ({e})") from e
    if not isinstance(value, dict):
        raise NeurojaxError(f"{path!r} must hold a JSON object, got {type(value).__name__}")
    return value
