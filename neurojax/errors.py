"""The one exception type for bad user input (flags, files, ids, checkpoints).

Binaries catch it and print its message as a single line with a non-zero exit,
so every check that a user can trip raises `NeurojaxError` with a clear message.
"""


class NeurojaxError(ValueError):
    """A user-facing error: the message says what is wrong and how to fix it."""
