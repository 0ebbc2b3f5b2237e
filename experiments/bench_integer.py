"""Benchmark: integer-only forward vs float forward of the same model on this machine.

    python -m experiments.bench_integer                       # tiny preset, random weights
    python -m experiments.bench_integer --workdir=workdir/tiny # a trained run

Prints times measured in this one run (median of --repeats) and their ratio, for a
whole-sequence forward and a one-token decode step. Not a test: nothing asserts a time.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.fixedpoint import IntQuantConfig, calibrate, convert, int_forward
from neurojax.fixedpoint.model import device_params
from neurojax.nn import MatMulFreeLM, init_params, preset
from neurojax.train import load_trained
from neurojax.train.model_factory import require_matmulfree

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained run to benchmark (default: random tiny weights).")
_PRESET = flags.DEFINE_string("preset", "tiny", "Preset when no --workdir is given.")
_BATCH = flags.DEFINE_integer("batch", 16, "Sequences per forward.")
_SEQ = flags.DEFINE_integer("seq_len", 128, "Tokens per sequence.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed repetitions (median reported).")


def _median_ms(fn) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv):
    if _BATCH.value < 1 or _SEQ.value < 1 or _REPEATS.value < 1:
        raise NeurojaxError("--batch, --seq_len and --repeats must be positive")
    if _WORKDIR.value:
        trained = load_trained(_WORKDIR.value)
        require_matmulfree(trained.model.config, "experiments.bench_integer")
        model, params = trained.model, trained.params
    else:
        model = MatMulFreeLM(preset(_PRESET.value))
        params = init_params(model, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    vocab = min(256, model.config.vocab_size)
    calib = [rng.integers(0, vocab, (_BATCH.value, _SEQ.value)) for _ in range(2)]
    qcfg = IntQuantConfig()
    int_model = convert(model.config, params, calibrate(model, params, calib, qcfg), qcfg)
    iparams = device_params(int_model)
    float_fwd = jax.jit(lambda p, t: model.apply({"params": p}, t)[0])
    _cli.say(f"backend {jax.default_backend()}; model {model.config.num_layers} layers, d={model.config.d_model}")
    for label, shape in (("sequence", (_BATCH.value, _SEQ.value)), ("decode step", (_BATCH.value, 1))):
        tokens = jnp.asarray(rng.integers(0, vocab, shape), jnp.int32)
        f_ms = _median_ms(lambda: float_fwd(params, tokens))
        i_ms = _median_ms(lambda: int_forward(int_model.spec, iparams, tokens)[0])
        _cli.say(f"{label} [{shape[0]}x{shape[1]}]: float {f_ms:.2f} ms, integer-only {i_ms:.2f} ms, "
                 f"integer / float = {i_ms / f_ms:.2f}x  (target <= 1.0x)")


if __name__ == "__main__":
    _cli.run(main)
