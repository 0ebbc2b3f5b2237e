"""Name -> module-class registries for the LM's swappable parts.

A token mixer or channel mixer defined anywhere (a notebook cell included) is
registered once and then chosen by name from the model config, so every binary
and library function can build it.
"""
from typing import Callable, Generic, TypeVar

from neurojax.errors import NeurojaxError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small named registry with a clear error for unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items and not overwrite:
                raise NeurojaxError(f"{self.kind} {name!r} is already registered (pass overwrite=True)")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        if name not in self._items:
            raise NeurojaxError(f"unknown {self.kind} {name!r}; registered: {sorted(self._items)}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


# Token mixers: linen modules built as `cls(config=..., layer_index=..., name="attn")`,
# called as `(x [B,T,d], state, mask [B,T] | None, lower_bound [d] | None) -> (y, state)`,
# with a static `initial_state(config, batch_size)`.
TOKEN_MIXERS: Registry = Registry("token mixer")
# Channel mixers: linen modules built as `cls(config=..., name="mlp")`, called as `(x) -> y`.
CHANNEL_MIXERS: Registry = Registry("channel mixer")
