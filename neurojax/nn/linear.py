"""The full-precision projection shared by the Transformer++ and the hybrid LM.

`Linear` stores `weight [out, in]` (the PyTorch / Hugging Face layout, `y = x @ weight.T`) and an
optional `bias [out]`, so a LLaMA / Qwen2 checkpoint tensor is a parameter as it is and a
converted model's reused tensors are copied, never transposed. With `spike_k` the input is
SpikingBrain spike-coded first (`x -> round(x / V_th) * V_th`, `V_th = mean|x| / spike_k` per
token, straight-through gradient; spec `spikingbrain.md`): the product is then a sum of weights
over integer spike counts. The counts are sown in the `SPIKE_COUNTS` collection when it is
mutable, for sparsity and energy accounting.
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from neurojax.errors import NeurojaxError
from neurojax.nn.bitlinear import SPIKE_COUNTS
from neurojax.quant import spike_count_ste


class Linear(nn.Module):
    """`y = x @ weight.T (+ bias)`, `weight [out, in]` normal(0, init_std), bias zeros; optional spike-coded input."""

    features: int
    init_std: float = 0.02
    use_bias: bool = False
    spike_k: Optional[float] = None
    spike_clip: Optional[int] = None

    @nn.compact
    def __call__(self, x: Float[Array, "... n_in"]) -> Float[Array, "... n_out"]:
        if self.spike_k is not None:
            q, v_th = spike_count_ste(x, self.spike_k, self.spike_clip)
            if self.is_mutable_collection(SPIKE_COUNTS):
                self.sow(SPIKE_COUNTS, "counts", jax.lax.stop_gradient(q).astype(jnp.int32))
            x = q * v_th
        w = self.param("weight", nn.initializers.normal(self.init_std), (self.features, x.shape[-1]), jnp.float32)
        y = jnp.einsum("...i,oi->...o", x, w)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


def check_spike_fields(spike_k, spike_clip, where: str) -> None:
    """Refuse a non-positive `spike_k`, or a `spike_clip` that is not a positive count bound / lacks `spike_k`."""
    if spike_k is not None and (isinstance(spike_k, bool) or not isinstance(spike_k, (int, float)) or not spike_k > 0):
        raise NeurojaxError(f"{where}.spike_k must be > 0 (V_th = mean|x| / k) or None, got {spike_k!r}")
    if spike_clip is not None and (spike_k is None or isinstance(spike_clip, bool)
                                   or not isinstance(spike_clip, int) or spike_clip < 1):
        raise NeurojaxError(f"{where}.spike_clip must be a positive count bound and needs {where}.spike_k, "
                            f"got spike_clip={spike_clip!r}, spike_k={spike_k!r}")
