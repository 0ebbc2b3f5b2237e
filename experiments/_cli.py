"""Shared plumbing of the binaries: one-line errors, quiet library logs, the config flag.

Every user mistake (unknown flag, bad `--config` override or preset, bad value,
missing or corrupt checkpoint) ends the program with a single `error: ...` line on
stderr and exit status 2; tracebacks are kept for real bugs.
"""
import sys
from typing import Callable, NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from neurojax.errors import NeurojaxError

# Raised by ml_collections while applying `--config=...:preset` and `--config.a.b=v`.
_CONFIG_ERRORS = (NeurojaxError, AttributeError, KeyError, ValueError, TypeError, OSError, flags.Error)


def fail(msg: str) -> NoReturn:
    lines = [line.strip() for line in str(msg).strip().splitlines() if line.strip()]
    if len(lines) > 1:  # a wrapped traceback (ml_collections embeds one): keep what it says
        head, last = lines[0].split(":")[0], lines[-1].split(": ", 1)[-1]
        msg = f"{head}: {last}"
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def say(msg: str) -> None:
    """Progress output: flushed immediately so long runs show where they are."""
    print(msg, flush=True)


def define_config(default: str = "experiments/configs/lm.py"):
    """`--config` (an `ml_collections` config file, `:preset` suffix, `--config.x.y=v` overrides)."""
    try:  # overrides on the command line are already applied here, at definition
        return config_flags.DEFINE_config_file("config", default, "Run config file, optionally :preset.")
    except (KeyError, AttributeError) as e:
        fail(f"unknown config field {str(e).strip(chr(34))} in a --config.* override")
    except _CONFIG_ERRORS as e:
        fail(f"bad --config or --config.* override: {e}")


def config_value(holder):
    """The parsed `--config`, or a clear error if its file could not be loaded."""
    cfg = holder.value
    try:
        cfg.keys()
    except OSError as e:  # ml_collections defers a missing/broken config file to first use
        detail = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise NeurojaxError(f"cannot load --config: {detail[-1] if detail else e}") from None
    return cfg


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except _CONFIG_ERRORS as e:
        fail(f"{e}".strip().strip('"'))


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` with one-line errors (exit status 2) for user mistakes."""

    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)
        _quiet_library_loggers()
        if len(argv) > 1:
            fail(f"unexpected arguments {argv[1:]}; flags take the form --name=value")
        try:
            main(argv)
        except NeurojaxError as e:
            fail(str(e))

    app.run(wrapped, flags_parser=_parse_flags)


def _quiet_library_loggers() -> None:
    import logging as pylogging

    for name in ("absl", "orbax", "jax._src.xla_bridge"):
        pylogging.getLogger(name).setLevel(pylogging.WARNING)
