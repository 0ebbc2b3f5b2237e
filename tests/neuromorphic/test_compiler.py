"""The compiled MatMul-free LM (tiny preset) on the emulated cores: bit-exact against the integer
model over 64 tokens, and a check that fails, naming the right layer, when one weight, one shift or
one rounding mode changes."""
import dataclasses

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurojax import NeurojaxError
from neurojax.fixedpoint import IntQuantConfig, calibrate, convert, int_forward
from neurojax.neuromorphic.chip import CHIPS, LOIHI2
from neurojax.neuromorphic.compiler import compile_model
from neurojax.neuromorphic.emulate import (
    first_mismatch,
    generate,
    run_tokens,
    simulator,
)
from neurojax.neuromorphic.isa import Instr, Program
from neurojax.neuromorphic.network import Network
from neurojax.neuromorphic.placement import DoesNotFit
from neurojax.nn import MatMulFreeLM, init_params, preset
from neurojax.quant.jaxpr_check import assert_integer_only

CHIP = CHIPS["loihi2_32bit"]


def _int_model(seed: int):
    model = MatMulFreeLM(preset("tiny"))
    params = init_params(model, jax.random.PRNGKey(seed))
    rng = np.random.default_rng(seed)
    calib = [rng.integers(0, 256, (4, 32)).astype(np.int32) for _ in range(2)]
    qc = IntQuantConfig()
    return convert(model.config, params, calibrate(model, params, calib, qc), qc)


REF_LEN = 64  # the reference always runs 64 tokens (one compilation); the model is causal, so
# the taps of a shorter sequence are the first rows of a padded one


def _reference(im, tokens) -> dict:
    tokens = np.asarray(tokens)
    padded = np.zeros(REF_LEN, np.int32)
    padded[:tokens.size] = tokens
    params = jax.tree_util.tree_map(np.asarray, im.params)
    _, _, diag = int_forward(im.spec, params, padded[None], with_taps=True)
    return {k: np.asarray(v)[0, :tokens.size] for k, v in diag["taps"].items()}


@pytest.fixture(scope="module")
def micro():
    im = _int_model(0)
    return im, compile_model(im, CHIP)


TOKENS = np.concatenate([[257], np.frombuffer(b"def emulate(tokens):\n    return [t for t in tokens if t > 0]\n# 64 tokens",
                                              np.uint8)])[:64]
assert TOKENS.size == 64


@pytest.mark.slow
def test_prefill_is_bit_exact(micro):
    im, cm = micro
    emu = run_tokens(cm, TOKENS)
    ref = _reference(im, TOKENS)
    assert first_mismatch(cm, emu, ref) is None
    assert set(emu.taps) == set(ref)  # every tap of the integer model was compared
    assert all(np.abs(v).max() > 0 for v in ref.values())  # on non-trivial values
    np.testing.assert_array_equal(emu.taps["logits"], ref["logits"])
    assert sum(emu.trace.overflow.values()) == 0


@pytest.mark.slow
def test_generate_mode_waits_for_each_token_and_stays_exact(micro):
    im, cm = micro
    emu = run_tokens(cm, TOKENS[:3], mode="generate")
    assert first_mismatch(cm, emu, _reference(im, TOKENS[:3])) is None
    assert list(np.diff(emu.token_steps)) == [cm.depth + 1] * 2
    # greedy generation on the chip reproduces the integer model's greedy continuation
    tokens, steps = generate(cm, TOKENS[:2], 2)
    want = list(TOKENS[:2])
    for _ in range(2):
        want.append(int(np.argmax(_reference(im, want)["logits"][-1])))
    assert tokens == want
    assert steps == 2 + cm.depth + 2 * (cm.depth + 1)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(1, 10_000), data=st.data())
def test_random_models_are_bit_exact(micro, seed, data):
    """Other weights of the same architecture reuse the compiled interpreter and stay exact."""
    im = _int_model(seed)
    cm = compile_model(im, CHIP)
    tokens = np.asarray(data.draw(st.lists(st.integers(0, 258), min_size=1, max_size=6)))
    emu = run_tokens(cm, tokens)
    assert first_mismatch(cm, emu, _reference(im, tokens)) is None


def _mutated(cm, group_name=None, param=None, value=None, synapse=None, program=None):
    groups = dict(cm.network.groups)
    synapses = list(cm.network.synapses)
    if param is not None:
        g = groups[group_name]
        groups[group_name] = dataclasses.replace(g, params={**g.params, param: value})
    if program is not None:
        groups[group_name] = dataclasses.replace(groups[group_name], program=program)
    if synapse is not None:
        i = next(i for i, s in enumerate(synapses) if s.name == synapse)
        w = synapses[i].weights.copy()
        r, c = np.argwhere(w == 0)[0]
        w[r, c] = 1
        synapses[i] = dataclasses.replace(synapses[i], weights=w)
    return dataclasses.replace(cm, network=Network(groups, synapses))


def _mismatch(im, cm):
    if hasattr(cm, "_simulator"):
        del cm._simulator
    return first_mismatch(cm, run_tokens(cm, TOKENS[:4]), _reference(im, TOKENS[:4]))


def test_changed_weight_is_caught_in_its_layer(micro):
    im, cm = micro
    bad = _mutated(cm, synapse="layers_1/mlp/gate/codes.q->layers_1/mlp/gate.acc")
    m = _mismatch(im, bad)
    assert m is not None and m.layer == "layers_1" and m.tap == "layers_1/mlp/gate_up"
    assert "layers_1" in str(m) and "neuron" in str(m)


def test_changed_shift_is_caught_in_its_layer(micro):
    im, cm = micro
    name = "layers_0/attn/o/o/out_scale"
    bad = _mutated(cm, name, "shift", int(cm.network.groups[name].params["shift"]) + 1)
    m = _mismatch(im, bad)
    assert m is not None and m.layer == "layers_0" and m.tap == "layers_0/resid_mid"


@pytest.mark.slow
def test_changed_rounding_mode_is_caught_in_its_layer(micro):
    im, cm = micro
    name = "layers_1/attn/mlgru"
    prog = cm.network.groups[name].program
    k = next(i for i, ins in enumerate(prog.instrs) if ins.op == "mulsh" and ins.srcs[0] == "h")
    instrs = list(prog.instrs)
    instrs[k] = dataclasses.replace(instrs[k], mode="floor")
    bad = _mutated(cm, name, program=dataclasses.replace(prog, instrs=tuple(instrs)))
    m = _mismatch(im, bad)
    assert m is not None and m.layer == "layers_1" and m.tap == "layers_1/attn/h"
    assert isinstance(instrs[k], Instr) and isinstance(prog, Program)


def test_interpreter_step_is_integer_only(micro):
    _, cm = micro
    sim = simulator(cm)
    xs = {g.name: np.zeros((2, g.size), np.int32) for g in cm.network.inputs()}
    assert_integer_only(lambda a, s, x: sim._scan(a, s, (x, np.ones(2, bool))), sim.arrays, sim.initial_state(), xs)


def test_report_and_limits(micro):
    im, cm = micro
    rep = cm.report()
    assert rep["cores"] == len(cm.placement.memory) and rep["chips"] == -(-rep["cores"] // CHIP.cores_per_chip)
    assert 0 < rep["max_memory_per_core_bytes"] <= CHIP.memory_per_core_bytes
    assert rep["pipeline_depth_steps"] == cm.depth and rep["steps_per_token_generate"] == cm.depth + 1
    with pytest.raises(NeurojaxError, match="payload"):
        compile_model(im, LOIHI2)  # 24-bit graded spikes are too narrow for the norm reductions
    with pytest.raises(DoesNotFit, match=r"layer 'layers_0'.*memory_per_core_bytes"):
        compile_model(im, CHIP.replace(memory_per_core_bytes=1024))
    with pytest.raises(DoesNotFit, match="num_chips"):
        compile_model(im, CHIP.replace(num_chips=1, cores_per_chip=16, mesh_rows=4, mesh_cols=4))
    with pytest.raises(NeurojaxError, match="program_length"):
        compile_model(im, CHIP.replace(program_length=32))
    short = compile_model(im, CHIP.replace(max_delay=8))  # long delays are bridged by relay groups
    assert max(s.delay for s in short.network.synapses) <= 8
    assert any("relay" in name for name in short.network.groups) and short.depth == cm.depth
