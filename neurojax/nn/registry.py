"""Name -> component registries: the MatMul-free LM's swappable parts, chosen from its config.

A token mixer, channel mixer, linear layer, activation quantizer or spiking neuron defined
anywhere (a notebook cell included) is registered once under a name and then chosen by that
name from `ModelConfig` (`token_mixer`, `channel_mixer`, `linear`, `quantizer`, `neuron`), so
training, evaluation, generation and every binary build it like a built-in one. Library code
may also be handed the class itself instead of a name (`Registry.resolve`); a run that goes
through `neurojax.train` needs names, because its config is stored as JSON.

The contracts (what a registered item must be) are written next to each registry below.
Unknown and duplicate names raise `NeurojaxError` naming the registry and the known names.
"""
import importlib
from typing import Any, Callable, Generic, Optional, TypeVar

from neurojax.errors import NeurojaxError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small named registry with clear errors for unknown and duplicate names.

    `autoload` names a module that registers the built-in entries when imported; it is
    imported on the first lookup, so a registry in a lower layer (`nn`) can list entries
    defined in a higher one (`spiking`) without importing it at import time.
    """

    def __init__(self, kind: str, autoload: Optional[str] = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._autoload = autoload

    def _load(self) -> None:
        if self._autoload is not None:
            module, self._autoload = self._autoload, None
            importlib.import_module(module)

    def register(self, name: str, *, overwrite: bool = False) -> Callable[[T], T]:
        """Decorator (or `register(name)(item)`) adding `item` under `name`; a taken name is an error
        unless `overwrite=True` (for re-running a notebook cell that defines the same class)."""
        if not isinstance(name, str) or not name:
            raise NeurojaxError(f"a {self.kind} name must be a non-empty string, got {name!r}")

        def add(item: T) -> T:
            self._load()
            if name in self._items and not overwrite:
                raise NeurojaxError(f"{self.kind} {name!r} is already registered (registered {self.kind}s: "
                                    f"{self.names()}); choose another name or pass overwrite=True")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        """The item registered under `name`."""
        if not isinstance(name, str) or name not in self:
            raise NeurojaxError(f"unknown {self.kind} {name!r}; registered {self.kind}s: {self.names()} "
                                f"(register a new one with neurojax.nn.registry first)")
        return self._items[name]

    def resolve(self, name_or_item: Any) -> T:
        """`get(name)` for a string; anything else (a class passed directly) is returned as it is."""
        return self.get(name_or_item) if isinstance(name_or_item, str) else name_or_item

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._load()
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


# Token mixers: linen modules built as `cls(config=..., layer_index=..., name="attn")`,
# called as `(x [B,T,d], state, mask [B,T] | None, lower_bound [d] | None) -> (y [B,T,d], state)`,
# with a static `initial_state(config, batch_size)` (a fixed-size pytree where the mixer allows).
# Built-ins: "mlgru" (nn/mlgru.py); "linear_attention", "swa", "softmax" (nn/mixers.py).
TOKEN_MIXERS: Registry = Registry("token mixer")
# Channel mixers: linen modules built as `cls(config=..., name="mlp")`, called as `(x) -> y`.
# Built-ins: "glu" (nn/glu.py), "swiglu" (nn/mixers.py).
CHANNEL_MIXERS: Registry = Registry("channel mixer")
# Linear layers: factories `(config, features, name) -> linen module` mapping `[..., in] -> [..., features]`,
# weight named `weight [out, in]` (the sharding rules and checkpoint converters read that name).
# Built-ins (nn/linear_layers.py): "bitlinear" (default), "full_precision", "spike".
LINEARS: Registry = Registry("linear layer")
# Activation quantizers of a BitLinear's input: functions `(y [..., d], config) -> (q, step)` with
# `q` integer-valued float32 (its gradient straight-through) and `step [..., 1]` such that y ~= q * step.
# Built-ins (nn/quantizers.py): "absmax_int8" (default), "spike", "neuron".
QUANTIZERS: Registry = Registry("activation quantizer")
# Spiking neurons: linen modules with no required parameters, `cls()` giving a usable neuron, with
# `initial_state(shape)` and `__call__(x_seq [T, ...], state) -> (spikes [T, ...], state)` (time-major).
# Built-ins, registered by neurojax/spiking/neurons.py (imported on first lookup): "lif",
# "adaptive_lif", "if", "sigma_delta". The LM uses one through the "neuron" quantizer.
NEURONS: Registry = Registry("spiking neuron", autoload="neurojax.spiking.neurons")
