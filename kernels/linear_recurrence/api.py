"""The one entry point for the linear recurrence; picks an implementation by name."""
from typing import Optional

from jaxtyping import Array, Float

from neurojax.errors import NeurojaxError
from neurojax.kernels.linear_recurrence import reference, xla

IMPLEMENTATIONS = {
    "reference": reference.linear_recurrence,
    "associative": xla.linear_recurrence,
}
# Sequential scan: exact left-to-right order (the decode path computes the same sums),
# and on CPU it is the faster one at the training lengths used here.
DEFAULT = "reference"


def linear_recurrence(
    a: Float[Array, "B T d"], b: Float[Array, "B T d"], h0: Float[Array, "B d"], *, impl: Optional[str] = None
) -> tuple[Float[Array, "B T d"], Float[Array, "B d"]]:
    """`h_t = a_t * h_{t-1} + b_t` over axis 1 from `h0`; returns `(h [B,T,d], h_T [B,d])`."""
    name = impl or DEFAULT
    if name not in IMPLEMENTATIONS:
        raise NeurojaxError(f"unknown linear_recurrence impl {name!r}; known: {sorted(IMPLEMENTATIONS)}")
    return IMPLEMENTATIONS[name](a, b, h0)
