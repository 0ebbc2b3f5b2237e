"""Export the tiny spiking network to NIR, read it back, run it on the interpreter, print events.

    python -m experiments.export_nir --out=/tmp/tiny_snn.nir
    python -m experiments.export_nir --import_file=peer.nir --profile=snntorch   # someone else's file

The default network is the example SNN of `neurojax.spiking.graph_examples.tiny_snn` (neurojax's
LIF modules, a recurrent hidden layer), quantized to its fixed-point twin (`--frac`). The binary
writes it with `--dt`, reads the file back, checks that every parameter (float and integer) came
back identical, runs the read graph in float, in integers and on the interpreter on a random
spike input (`--steps`, `--rate`), checks that the interpreter's spikes equal the integer model's
bit for bit (exit 1 if not), and prints the interpreter's event counts and the float/integer
spike agreement. `--import_file` starts from an existing NIR file instead (discretised with
`--profile`), quantized the same way.
"""
import numpy as np
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.interop import nir_io
from neurojax.interop.graph_to_chip import compile_graph, run_on_chip
from neurojax.interop.nir_conventions import DEFAULT_DT, PROFILES
from neurojax.neuromorphic.chip import CHIPS, chip_by_name
from neurojax.spiking.graph import graph_difference
from neurojax.spiking.graph_examples import tiny_snn
from neurojax.spiking.graph_fixed import quantize_graph
from neurojax.spiking.graph_run import graph_params, run_fixed_graph, run_graph

_OUT = flags.DEFINE_string("out", "tiny_snn.nir", "Where to write the NIR file.")
_IMPORT = flags.DEFINE_string("import_file", None, "Start from this NIR file instead of the tiny SNN.")
_PROFILE = flags.DEFINE_enum("profile", "neurojax", sorted(PROFILES), "Conventions of --import_file.")
_DT = flags.DEFINE_float("dt", DEFAULT_DT, "Time step (s) written into the NIR neurons' time constants.")
_FRAC = flags.DEFINE_integer("frac", 12, "Fraction bits of the fixed-point twin (threshold * 2**frac < 2**23).")
_STEPS = flags.DEFINE_integer("steps", 100, "Time steps of the random input.")
_RATE = flags.DEFINE_float("rate", 0.1, "Probability of an input spike per channel and step.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the network and the input.")
_CHIP = flags.DEFINE_string("chip", "loihi2", "Chip description: " + ", ".join(CHIPS))


def main(argv):
    if _STEPS.value < 1:
        raise NeurojaxError("--steps must be >= 1")
    if not 0.0 <= _RATE.value <= 1.0:
        raise NeurojaxError("--rate must be in [0, 1]")
    chip = chip_by_name(_CHIP.value)
    if _IMPORT.value:
        source = nir_io.read(_IMPORT.value, _PROFILE.value)
        _cli.say(f"read {_IMPORT.value} ({_PROFILE.value} conventions): {len(source.nodes)} nodes")
    else:
        source = tiny_snn(seed=_SEED.value)
    graph = source if source.is_fixed else quantize_graph(source, frac=_FRAC.value)
    nir_io.write(_OUT.value, graph, dt=_DT.value)
    _cli.say(f"wrote {_OUT.value}: {len(graph.nodes)} nodes, {len(graph.edges)} edges "
             f"({len(graph.schedule.recurrent)} recurrent), dt = {_DT.value:g} s")
    back = nir_io.read(_OUT.value)
    diff = graph_difference(graph, back)
    if diff is not None:
        raise NeurojaxError(f"{_OUT.value} did not read back identical parameters: {diff}")
    _cli.say("read back: every float and integer parameter identical")

    (inp,) = back.inputs()
    shape = back.nodes[inp].shape
    x = np.random.default_rng(_SEED.value + 1).random((_STEPS.value, 1) + shape) < _RATE.value
    y_float, _ = run_graph(back, graph_params(back), x.astype(np.float32))
    y_int, _ = run_fixed_graph(back, x.astype(np.int32))
    compiled = compile_graph(back, chip)
    run = run_on_chip(compiled, x[:, 0].astype(np.int32))
    out = back.outputs()[0]
    y_int = np.asarray(y_int)[:, 0] if not isinstance(y_int, dict) else np.asarray(y_int[out])[:, 0]
    y_float = np.asarray(y_float)[:, 0] if not isinstance(y_float, dict) else np.asarray(y_float[out])[:, 0]
    exact = np.array_equal(run.outputs[out], y_int)
    groups = len(compiled.network.neuron_groups())
    _cli.say(f"interpreter: {groups} neuron groups, pipeline depth {max(compiled.depth.values())}, "
             f"{run.steps} chip steps for {_STEPS.value} graph steps")
    _cli.say("events (interpreter counters, measured): " + ", ".join(f"{k} {v:,}" for k, v in run.counters.items()))
    _cli.say(f"input spikes {int(x.sum()):,}; output spikes {int(run.outputs[out].sum()):,}; "
             f"float vs integer spike agreement {np.mean(y_float == y_int):.4f}")
    if not exact:
        _cli.say("NOT bit-exact: the interpreter's spikes differ from the integer model's")
        raise SystemExit(1)
    _cli.say(f"bit-exact: the interpreter's {y_int.size:,} output spike slots equal the integer model's")


if __name__ == "__main__":
    _cli.run(main)
