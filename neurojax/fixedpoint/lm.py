"""The integer model behind the interface `neurojax.inference.generate` expects."""
import dataclasses

import jax.numpy as jnp

from neurojax.fixedpoint.convert import IntModel, IntModelSpec
from neurojax.fixedpoint.model import initial_int_state, int_forward


@dataclasses.dataclass(frozen=True)
class IntLM:
    """Adapter: integer forward inside, logits read back as `int * logit_scale` for sampling.

    Greedy decoding depends only on the integer logits (the scale is positive); sampling
    reads them back to float, after the integer forward, as a host would.
    """

    spec: IntModelSpec
    logit_scale: float

    @classmethod
    def of(cls, model: IntModel) -> "IntLM":
        return cls(model.spec, float(model.scales["logits"]))

    @property
    def config(self):
        return self.spec.model

    def initial_state(self, batch_size: int):
        return initial_int_state(self.spec, batch_size)

    def apply(self, params, tokens, state=None, mask=None):
        logits, state, _ = int_forward(self.spec, params, tokens, state, mask)
        return logits.astype(jnp.float32) * self.logit_scale, state
