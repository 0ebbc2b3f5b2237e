"""Run a token sequence through the integer model compiled onto emulated neuromorphic cores,
and check that every layer's outputs and the logits match the integer model bit for bit.

    python -m experiments.quantize --workdir=workdir/tiny          # makes workdir/tiny/integer
    python -m experiments.emulate --int_model=workdir/tiny/integer --text="def main():"
    python -m experiments.emulate --preset=micro --tokens=64       # a random-weight model, no files

Prints the compiled network's report (cores, chips, memory per core, pipeline depth), the
equivalence verdict (or the first mismatching token, layer, neuron and step, exit 1), event
counts, and time and energy from the cost model. `--mode=generate` spaces the tokens by the
pipeline depth as autoregressive decoding must.
"""
import time

import jax
import numpy as np
from absl import flags

from experiments import _cli
from neurojax.data import ByteTokenizer
from neurojax.errors import NeurojaxError
from neurojax.fixedpoint import IntQuantConfig, calibrate, convert, int_forward
from neurojax.fixedpoint.io import load_int_model
from neurojax.neuromorphic import cost
from neurojax.neuromorphic.chip import CHIPS, chip_by_name
from neurojax.neuromorphic.compiler import compile_model
from neurojax.neuromorphic.emulate import MODES, first_mismatch, run_tokens
from neurojax.nn import MatMulFreeLM, init_params, preset

_INT_MODEL = flags.DEFINE_string("int_model", None, "Directory of a saved integer model (experiments/quantize.py).")
_PRESET = flags.DEFINE_string("preset", "micro", "Without --int_model: a random-weight model of this preset.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random-weight model and the random tokens.")
_TEXT = flags.DEFINE_string("text", None, "Text to encode as the token sequence (byte tokenizer).")
_TOKENS = flags.DEFINE_integer("tokens", 16, "Without --text: this many random token ids.")
_MODE = flags.DEFINE_enum("mode", "prefill", list(MODES), "Execution mode.")
_CHIP = flags.DEFINE_string("chip", "loihi2_32bit", "Chip description: " + ", ".join(CHIPS))
_ENERGY = flags.DEFINE_string("energy_model", "loihi2_assumed", "Cost model: " + ", ".join(cost.ENERGY_MODELS))


def _model():
    if _INT_MODEL.value:
        return load_int_model(_INT_MODEL.value)
    model = MatMulFreeLM(preset(_PRESET.value))
    params = init_params(model, jax.random.PRNGKey(_SEED.value))
    rng = np.random.default_rng(_SEED.value)
    calib = [rng.integers(0, model.config.vocab_size, (4, 32)).astype(np.int32) for _ in range(2)]
    qc = IntQuantConfig()
    return convert(model.config, params, calibrate(model, params, calib, qc), qc)


def main(argv):
    if _TOKENS.value < 1:
        raise NeurojaxError("--tokens must be positive")
    chip = chip_by_name(_CHIP.value)
    energy = cost.energy_model_by_name(_ENERGY.value)
    im = _model()
    if _TEXT.value is not None:
        tokens = np.asarray(ByteTokenizer().encode(_TEXT.value), np.int32)
    else:
        tokens = np.random.default_rng(_SEED.value).integers(0, im.spec.model.vocab_size, _TOKENS.value)
    t0 = time.perf_counter()
    cm = compile_model(im, chip)
    rep = cm.report()
    _cli.say("compiled: " + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v:.0f}" for k, v in rep.items()))
    _cli.say(f"emulating {tokens.size} tokens in {_MODE.value} mode (first run compiles the interpreter)")
    emu = run_tokens(cm, tokens, _MODE.value)
    _cli.say(f"emulated {emu.num_steps} steps in {time.perf_counter() - t0:.1f} s")
    params = jax.tree_util.tree_map(np.asarray, im.params)
    _, _, diag = int_forward(im.spec, params, np.asarray(tokens, np.int32)[None], with_taps=True)
    mismatch = first_mismatch(cm, emu, {k: np.asarray(v)[0] for k, v in diag["taps"].items()})
    totals = emu.trace.totals()
    _cli.say("events: " + ", ".join(f"{k} {v:,}" for k, v in totals.items()))
    _cli.say(f"runtime overflows: {sum(emu.trace.overflow.values()):,}")
    c = cost.run_cost(emu.trace, energy, placement=cm.placement)
    _cli.say(f"cost model {energy.name}: {c.total_time_s * 1e3:.3f} ms, {c.total_energy_j * 1e3:.4f} mJ "
             f"({c.total_energy_j / tokens.size * 1e6:.2f} uJ/token, {tokens.size / c.total_time_s:,.0f} tokens/s)")
    if mismatch is not None:
        _cli.say(f"NOT bit-exact: {mismatch}")
        raise SystemExit(1)
    _cli.say(f"bit-exact: all {len(emu.taps)} taps (every layer's outputs and the logits) equal at all "
             f"{tokens.size} tokens")


if __name__ == "__main__":
    _cli.run(main)
