"""Cost model: energy linear in the counts, barrier-synchronised time, the GPU roofline, bad inputs."""
import dataclasses
import itertools

import numpy as np
import pytest

from neurojax import NeurojaxError
from neurojax.neuromorphic import cost
from neurojax.neuromorphic.chip import LOIHI2
from neurojax.neuromorphic.interpreter import COUNTERS, Simulator, Trace
from neurojax.neuromorphic.isa import ProgramBuilder
from neurojax.neuromorphic.network import InputGroup, Network, NeuronGroup, SynapseGroup

# Davies et al. 2018 Table 2, typed here by hand (pJ per event) as the oracle
PJ = {"synops": 23.6, "messages": 1.7, "hops": 3.5, "active_updates": 81.0, "idle_updates": 52.0}
NS = {"synops": 3.5, "messages": 2.1, "active_updates": 8.4, "idle_updates": 5.3}
BARRIER_NS = 465.0
M = cost.LOIHI1_MEASURED


def _zeros(steps=3, cores=2):
    return {k: np.zeros((steps, cores), np.int64) for k in COUNTERS}


def _with(name, value, steps=3, cores=2, at=(0, 0)):
    c = _zeros(steps, cores)
    c[name][at] = value
    return c


# ----------------------------------------------------------------------------- energy

@pytest.mark.parametrize("name", COUNTERS)
def test_energy_is_linear_in_each_count_with_its_constant(name):
    for n in (1, 7, 1000):
        r = cost.run_cost(_with(name, n), M, chips=1)
        assert r.counts[name] == n
        assert r.energy_j[name] == pytest.approx(n * PJ[name] * 1e-12, rel=1e-12)
        others = [k for k in COUNTERS if k != name]
        assert all(r.energy_j[k] == 0 for k in others)
    one = cost.run_cost(_with(name, 5), M, chips=1).energy_j[name]
    two = cost.run_cost(_with(name, 10), M, chips=1).energy_j[name]
    assert two == pytest.approx(2 * one, rel=1e-12)


def test_energy_sums_every_term_and_rows_show_how():
    rng = np.random.default_rng(0)
    c = {k: rng.integers(0, 50, (4, 3)) for k in COUNTERS}
    r = cost.run_cost(c, M, chips=1)
    dyn = sum(int(c[k].sum()) * PJ[k] for k in COUNTERS) * 1e-12
    assert r.dynamic_energy_j == pytest.approx(dyn, rel=1e-12)
    assert r.total_energy_j == pytest.approx(dyn + r.static_energy_j, rel=1e-12)
    rows = r.rows()
    assert [row[0] for row in rows] == [*COUNTERS, "static"]
    assert sum(row[-1] for row in rows) == pytest.approx(r.total_energy_j, rel=1e-12)
    for term, count, unit_cost, unit, joules in rows[:-1]:
        assert unit == "pJ" and joules == pytest.approx(count * unit_cost * 1e-12, rel=1e-12)


def test_static_energy_scales_with_time_and_chips():
    assert cost.static_energy_j(2.0, 3, M) == pytest.approx(0.104 * 3 * 2.0, rel=1e-12)
    assert cost.static_energy_j(0.0, 3, M) == 0.0
    # work far above the barrier on any chip count, so the run time does not depend on chips
    c = _with("synops", 10_000, steps=1)
    r1, r4 = cost.run_cost(c, M, chips=1), cost.run_cost(c, M, chips=4)
    assert r1.total_time_s == pytest.approx(r4.total_time_s)
    assert r4.static_energy_j == pytest.approx(4 * r1.static_energy_j, rel=1e-12)
    assert r1.static_energy_j == pytest.approx(0.104 * r1.total_time_s, rel=1e-12)
    # twice the steps (the same work again): twice the time, twice the static energy
    c2 = {k: np.concatenate([v, v]) for k, v in c.items()}
    r2 = cost.run_cost(c2, M, chips=1)
    assert r2.total_time_s == pytest.approx(2 * r1.total_time_s)
    assert r2.static_energy_j == pytest.approx(2 * r1.static_energy_j, rel=1e-12)
    # static power is a parameter: doubling it doubles the static term only
    r1b = cost.run_cost(c, M.replace(static_mw_per_chip=208.0), chips=1)
    assert r1b.static_energy_j == pytest.approx(2 * r1.static_energy_j)
    assert r1b.dynamic_energy_j == pytest.approx(r1.dynamic_energy_j)


# ----------------------------------------------------------------------------- time

def _three_steps():
    c = _zeros(steps=3, cores=2)
    c["synops"][0, 0] = 1000  # step 0, core 0: 3500 ns
    c["active_updates"][0, 1] = 100  # step 0, core 1: 840 ns (not the busiest)
    # step 1: nothing -> the barrier (465 ns)
    c["messages"][2, 1] = 300  # step 2, core 1: 630 + 265 = 895 ns
    c["idle_updates"][2, 1] = 50
    c["synops"][2, 0] = 100  # step 2, core 0: 350 ns (not the busiest)
    return c


def test_time_per_step_is_the_busiest_core_floored_at_the_barrier():
    c = _three_steps()
    steps = cost.step_times_s(c, M, chips=1)
    np.testing.assert_allclose(steps, np.array([1000 * NS["synops"], BARRIER_NS,
                                                300 * NS["messages"] + 50 * NS["idle_updates"]]) * 1e-9)
    r = cost.run_cost(c, M, chips=1)
    assert r.total_time_s == pytest.approx(steps.sum())
    assert r.barrier_bound_steps == 1
    # the breakdown holds only the busiest core's terms of compute-bound steps, plus the barrier
    assert r.time_s["synops"] == pytest.approx(3500e-9)
    assert r.time_s["active_updates"] == 0.0
    assert r.time_s["messages"] == pytest.approx(630e-9)
    assert r.time_s["idle_updates"] == pytest.approx(265e-9)
    assert r.time_s["barrier"] == pytest.approx(465e-9)
    assert sum(r.time_s.values()) == pytest.approx(r.total_time_s)


def test_spreading_work_over_cores_shortens_steps_but_not_energy():
    one = _with("synops", 1000, cores=2)
    split = _zeros(cores=2)
    split["synops"][0] = [500, 500]
    a, b = cost.run_cost(one, M, chips=1), cost.run_cost(split, M, chips=1)
    assert b.dynamic_energy_j == pytest.approx(a.dynamic_energy_j)
    assert b.total_time_s < a.total_time_s
    assert cost.step_times_s(split, M)[0] == pytest.approx(500 * NS["synops"] * 1e-9)


def test_more_chips_lengthen_the_barrier():
    c = _three_steps()
    assert M.barrier_ns(1) == BARRIER_NS
    assert M.barrier_ns(3) == pytest.approx(BARRIER_NS + 2 * M.barrier_per_extra_chip_ns)
    steps = cost.step_times_s(c, M, chips=3)
    floor = M.barrier_ns(3) * 1e-9
    assert steps[0] == pytest.approx(3500e-9)
    assert steps[1] == pytest.approx(floor) and steps[2] == pytest.approx(floor)  # 895 ns < 945 ns
    assert cost.run_cost(c, M, chips=3).barrier_bound_steps == 2


def test_a_trace_from_the_simulator_is_costed():
    b = ProgramBuilder("relay")
    b.port("x")
    b.reg("v", 24)
    b.channel("out")
    b.add("v", "v", "x")
    b.send("out", "v")
    net = Network()
    net.add(InputGroup("in", 4, bits=8))
    net.add(NeuronGroup("relay", 3, b.build()))
    net.connect(SynapseGroup("w", ("in", "out"), ("relay", "x"), np.array([[1, 0, 2, 0], [0, 1, 0, 0], [1, 1, 1, 1]])))
    sim = Simulator(net, LOIHI2)
    trace, _ = sim.run({"in": np.array([[1, 0, 3, 0], [0, 0, 0, 0], [0, 2, 0, 0]])})
    r = cost.run_cost(trace, M, placement=sim.placement)
    assert r.chips == sim.placement.num_chips == 1 and r.steps == 3
    assert r.counts == trace.totals()
    expect = sum(trace.totals()[k] * PJ[k] for k in COUNTERS) * 1e-12
    assert r.dynamic_energy_j == pytest.approx(expect, rel=1e-12)
    assert r.total_time_s == pytest.approx(cost.step_times_s(trace, M).sum())


# ----------------------------------------------------------------------------- aggregate estimate

def test_estimate_matches_an_evenly_spread_run():
    steps, cores = 4, 5
    per_cell = {"synops": 400, "messages": 30, "hops": 60, "active_updates": 20, "idle_updates": 10}
    c = {k: np.full((steps, cores), v, np.int64) for k, v in per_cell.items()}
    run = cost.run_cost(c, M, chips=1)
    est = cost.estimate({k: v * steps * cores for k, v in per_cell.items()}, cores=cores, chips=1,
                        steps_per_token=steps, model=M)
    assert est.total_energy_j == pytest.approx(run.total_energy_j, rel=1e-12)
    assert est.total_time_s == pytest.approx(run.total_time_s, rel=1e-12)
    for k in run.time_s:
        assert est.time_s[k] == pytest.approx(run.time_s[k], rel=1e-12, abs=1e-18)
    # an imbalanced mapping: the busiest core does twice the mean work
    slow = cost.estimate(est.counts, cores=cores, chips=1, steps_per_token=steps, model=M, imbalance=2.0)
    assert slow.total_time_s == pytest.approx(2 * est.total_time_s)
    assert slow.dynamic_energy_j == pytest.approx(est.dynamic_energy_j)
    # so little work per step that every step is the barrier
    idle = cost.estimate({k: 1 for k in COUNTERS}, cores=100, chips=2, steps_per_token=10, model=M)
    assert idle.total_time_s == pytest.approx(10 * M.barrier_ns(2) * 1e-9)
    assert idle.barrier_bound_steps == 10
    # per-token figures from a multi-token run
    assert run.per(4).total_energy_j == pytest.approx(run.total_energy_j / 4)
    assert run.per(4).total_time_s == pytest.approx(run.total_time_s / 4)


# ----------------------------------------------------------------------------- presets and labels

def test_presets_label_their_assumptions():
    assert cost.energy_model_by_name("loihi1_measured") is cost.LOIHI1_MEASURED
    l2 = cost.energy_model_by_name("loihi2_assumed")
    names = [f.name for f in cost.EnergyModel.numeric_fields()]
    assert set(l2.assumed) == set(names)  # nothing is published per op for Loihi 2
    assert all(src.startswith("assumption") for *_, src in l2.describe())
    measured = {row[0]: row[3] for row in cost.LOIHI1_MEASURED.describe()}
    assert measured["synop_pj"].startswith("Davies 2018") and measured["idle_update_pj"].startswith("Davies 2018")
    assert measured["barrier_per_extra_chip_ns"].startswith("assumption")
    for f in cost.EnergyModel.numeric_fields():  # Loihi 2 reuses Loihi 1's values
        assert getattr(l2, f.name) == getattr(M, f.name)
    assert (M.synop_pj, M.hop_pj, M.active_update_pj, M.idle_update_pj, M.message_pj) == (23.6, 3.5, 81.0, 52.0, 1.7)


def test_paper_ratios():
    assert (cost.PAPER_THROUGHPUT_RATIO, cost.PAPER_ENERGY_PER_TOKEN_RATIO, cost.PAPER_TTFT_RATIO) == (3.0, 2.0, 6.6)
    assert cost.PAPER_TTFT_PROMPT_TOKENS == 500
    assert "2nd" in cost.PAPER_RESULTS["ttft_ratio_500_tokens"][1]


# ----------------------------------------------------------------------------- GPU roofline

def test_roofline_370m_fp16_is_bandwidth_bound_at_batch_1():
    shape = cost.TRANSFORMER_370M_FP16
    d = cost.gpu_decode(shape, "jetson_orin_nano", context=0)
    assert d.bound == "bandwidth"
    assert d.bytes_moved == pytest.approx(370e6 * 2)
    assert d.time_s == pytest.approx(740e6 / 68e9)  # ~10.9 ms, ~92 tokens/s
    assert d.energy_j == pytest.approx(15.0 * d.time_s)
    assert d.compute_time_s < d.memory_time_s / 10
    s = cost.gpu_decode(shape, cost.JETSON_ORIN_NANO_SUPER, context=0)
    assert s.time_s == pytest.approx(740e6 / 102e9) and s.time_s < d.time_s


def test_roofline_decode_time_grows_with_context():
    shape = cost.TRANSFORMER_370M_FP16
    times = [cost.gpu_decode(shape, "jetson_orin_nano", context=n).time_s for n in (0, 500, 2000, 8000)]
    assert all(a < b for a, b in itertools.pairwise(times))
    kv_per_token = 2 * 24 * 1024 * 2  # K and V, 24 layers, d=1024, fp16 bytes
    assert shape.kv_cache_bytes(2000) == kv_per_token * 2000
    assert times[2] - times[0] == pytest.approx(kv_per_token * 2000 / 68e9)
    # grouped-query attention shrinks the cache and its cost
    gqa = dataclasses.replace(shape, kv_dim=256)
    assert cost.gpu_decode(gqa, "jetson_orin_nano", context=2000).time_s < times[2]


def test_ttft_prefill_flops_and_bound():
    shape = cost.TRANSFORMER_370M_FP16
    p = 500
    attn = sum(4 * 24 * 1024 * t for t in range(1, p + 1))  # causal: token t attends to t positions
    assert shape.prefill_flops(p) == pytest.approx(2 * 370e6 * p + attn)
    t = cost.gpu_ttft(shape, p, "jetson_orin_nano")
    assert t.bound == "compute"
    assert t.time_s == pytest.approx(shape.prefill_flops(p) / cost.JETSON_ORIN_NANO.peak_flops)
    assert cost.JETSON_ORIN_NANO.peak_flops == pytest.approx(10e12)  # 40 sparse INT8 TOPS / 4
    assert cost.gpu_ttft(shape, 1000).time_s > t.time_s


# ----------------------------------------------------------------------------- bad inputs

def test_bad_inputs_raise_clear_errors():
    with pytest.raises(NeurojaxError, match="unknown energy model 'loihi3'"):
        cost.energy_model_by_name("loihi3")
    with pytest.raises(NeurojaxError, match="unknown energy model"):
        cost.run_cost(_zeros(), "loihi3")
    with pytest.raises(NeurojaxError, match="unknown GPU"):
        cost.gpu_decode(cost.TRANSFORMER_370M_FP16, "rtx9090")
    with pytest.raises(NeurojaxError, match="negative count"):
        cost.run_cost(_with("hops", -1), M)
    with pytest.raises(NeurojaxError, match="missing"):
        cost.run_cost({"synops": np.zeros((2, 2), np.int64)}, M)
    with pytest.raises(NeurojaxError, match="integer array"):
        cost.run_cost({**_zeros(), "synops": np.zeros((2, 2), np.float32)}, M)
    with pytest.raises(NeurojaxError, match="shape"):
        cost.run_cost({**_zeros(), "hops": np.zeros((1, 2), np.int64)}, M)
    with pytest.raises(NeurojaxError, match="chips"):
        cost.run_cost(_zeros(), M, chips=0)
    with pytest.raises(NeurojaxError, match="counts_per_token"):
        cost.estimate({**{k: 1 for k in COUNTERS}, "synops": -5}, cores=1, chips=1, steps_per_token=1, model=M)
    with pytest.raises(NeurojaxError, match="imbalance"):
        cost.estimate({k: 1 for k in COUNTERS}, cores=1, chips=1, steps_per_token=1, model=M, imbalance=0.5)
    with pytest.raises(NeurojaxError, match="synop_pj"):
        M.replace(synop_pj=-1.0)
    with pytest.raises(NeurojaxError, match="context"):
        cost.gpu_decode(cost.TRANSFORMER_370M_FP16, context=-1)
    with pytest.raises(NeurojaxError, match="prompt_tokens"):
        cost.gpu_ttft(cost.TRANSFORMER_370M_FP16, 0)
    with pytest.raises(NeurojaxError, match="layers"):
        cost.TransformerShape(params=1e6, layers=0, d_model=64)
    with pytest.raises(NeurojaxError, match="Trace or a dict"):
        cost.run_cost([1, 2, 3], M)
    assert isinstance(Trace({}, _zeros(), {}), Trace)  # a Trace is accepted as well as a dict
    assert cost.run_cost(Trace({}, _zeros(), {}), M).total_time_s == pytest.approx(3 * BARRIER_NS * 1e-9)
