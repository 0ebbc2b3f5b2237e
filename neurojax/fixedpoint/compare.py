"""Float vs integer model on the same tokens: bits per byte, top-1 agreement, per-point SQNR."""
import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from neurojax.fixedpoint.calibrate import collect_taps
from neurojax.fixedpoint.convert import IntModel
from neurojax.fixedpoint.model import device_params, int_forward


def _nll_sum(logits: jax.Array, targets: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, targets[..., None], axis=-1))


@functools.partial(jax.jit, static_argnames=("model", "spec"))
def _score(model, spec, params, iparams, scales, lengths, tokens, targets):
    flogits, ftaps = collect_taps(model, params, tokens)
    ilogits, _, diag = int_forward(spec, iparams, tokens, with_taps=True)
    ilogits_f = ilogits.astype(jnp.float32) * scales["logits"]
    sums = {"float_nll": _nll_sum(flogits, targets), "int_nll": _nll_sum(ilogits_f, targets),
            "agree": jnp.sum(jnp.argmax(flogits, -1) == jnp.argmax(ilogits, -1)),
            "tokens": jnp.float32(targets.size), "bytes": jnp.sum(lengths[targets]),
            "overflow": sum(diag["overflow"].values())}
    signal, noise = {}, {}
    for key, x in ftaps.items():
        if key in diag["taps"] and key in scales:
            xi = diag["taps"][key].astype(jnp.float32) * scales[key]
            signal[key] = jnp.sum(jnp.square(x))
            noise[key] = jnp.sum(jnp.square(x - xi))
    return sums, signal, noise


def compare(model: Any, params: Any, int_model: IntModel, windows: Sequence[np.ndarray],
            byte_lengths: np.ndarray) -> dict:
    """Score both models on `windows` (`[B, T+1]` token ids).

    Integer logits are read back as `logits_int * scale` only here, for scoring; SQNR of a
    point is `10 log10(sum x^2 / sum (x - x_int * scale)^2)` against the float model's value.
    """
    iparams = device_params(int_model)
    scales = {k: jnp.float32(v) for k, v in int_model.scales.items()}
    lengths = jnp.asarray(byte_lengths, jnp.float32)
    total, signal, noise = {}, {}, {}
    for w in windows:
        w = jnp.asarray(w)
        s, sg, nz = jax.device_get(_score(model, int_model.spec, params, iparams, scales, lengths,
                                          w[:, :-1], w[:, 1:]))
        for src, dst in ((s, total), (sg, signal), (nz, noise)):
            for k, v in src.items():
                dst[k] = dst.get(k, 0.0) + float(v)
    bits = math.log(2) * max(total["bytes"], 1.0)
    return {
        "float_bits_per_byte": total["float_nll"] / bits,
        "int_bits_per_byte": total["int_nll"] / bits,
        "top1_agreement": total["agree"] / total["tokens"],
        "tokens": int(total["tokens"]),
        "overflow": int(total["overflow"]),
        "sqnr_db": {k: 10 * math.log10(signal[k] / max(noise[k], 1e-30)) for k in sorted(signal)},
    }
