"""Shared plumbing of the binaries: one-line errors, quiet library logs, common flags."""
import sys
from typing import Callable

from absl import app, logging

from neurojax.errors import NeurojaxError


def say(msg: str) -> None:
    """Progress output: flushed immediately so long runs show where they are."""
    print(msg, flush=True)


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)`, with `NeurojaxError` printed as one `error:` line and exit code 2."""

    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)
        _quiet_library_loggers()
        try:
            main(argv)
        except NeurojaxError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    app.run(wrapped)


def _quiet_library_loggers() -> None:
    import logging as pylogging

    for name in ("absl", "orbax", "jax._src.xla_bridge"):
        pylogging.getLogger(name).setLevel(pylogging.WARNING)
