"""Cost model: energy and time of an emulated run, and an edge-GPU roofline to compare with.

Neuromorphic side. A run's energy is its event counts (`Trace.counters`) times per-event
energies, plus static power x chips x run time. Its time is barrier-synchronised: each step
lasts as long as its busiest core's work (synaptic ops, neuron updates, messages sent, each
times a per-event time), and never less than the barrier-synchronisation time; steps add up.
Per-event energies are Loihi 1's published figures (Davies et al. 2018, Table 2). Loihi 2 has
no published per-event table, and static power and per-step timing are not published per op
for it either: those are parameters labelled as assumptions in `EnergyModel`, and every
result is a function of them (`EnergyModel.replace` to vary them).

GPU side. Batch-1 autoregressive decoding on an edge GPU (the paper's Jetson Orin Nano
baseline) as a roofline: time = max(bytes moved / bandwidth, flops / peak), bytes = weights +
the KV cache read at the current context length; energy = board power x time. Roofline
times are lower bounds (perfect overlap, peak bandwidth), so they favour the GPU.

Every number carries its unit in its name (`_pj`, `_ns`, `_mw`, `_w`, `_bytes_per_s`,
`_flops`) and its source in a comment; `EnergyModel.describe()` prints them for a table.
"""
import dataclasses
import math

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.chip import LOIHI2
from neurojax.neuromorphic.interpreter import COUNTERS

# ----------------------------------------------------------------------------- sources

DAVIES_2018 = ("Davies et al. 2018, 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
               "IEEE Micro 38(1), Table 2 (values at 0.75 V; pre-silicon SDF/SPICE simulation "
               "'consistent with early post-silicon characterization')")
FRADY_2020 = ("Frady et al. 2020, 'Neuromorphic Nearest-Neighbor Search Using Intel's Pohoiki Springs', "
              "arXiv 2004.12691 (measured on Loihi 1 boards)")
ABREU_2025 = ("Abreu, Shrestha, Zhu, Eshraghian 2025, 'Neuromorphic Principles for Efficient Large "
              "Language Models on Intel Loihi 2', arXiv 2503.18002")
ORIN_NANO_DATASHEET = "NVIDIA Jetson Orin Nano series datasheet (8GB module: 1024 CUDA cores, 32 Tensor Cores)"
ORIN_NANO_SUPER = "NVIDIA Jetson Orin Nano Super developer kit (Dec 2024, JetPack 6.1 'Super' power mode)"


# ----------------------------------------------------------------------------- neuromorphic constants

def _f(unit: str, source: str, default: float):
    """A numeric field with its unit and source kept as metadata (for `describe`)."""
    return dataclasses.field(default=default, metadata={"unit": unit, "source": source})


@dataclasses.dataclass(frozen=True)
class EnergyModel:
    """Per-event energies and times of one neuromorphic chip, plus static power.

    Defaults are Loihi 1's published figures; `assumed` names the fields that are assumptions
    rather than published values for the chip this model stands for. Energies in pJ per event,
    times in ns per event on one core, static power in mW per chip.
    """

    name: str = "loihi1_measured"
    # --- dynamic energy, pJ per event (Davies 2018 Table 2, Loihi 1 at 0.75 V)
    synop_pj: float = _f("pJ/synaptic op", "Davies 2018 Table 2: energy per synaptic spike op (min)", 23.6)
    message_pj: float = _f("pJ/message", "Davies 2018 Table 2: within-tile spike energy", 1.7)
    hop_pj: float = _f("pJ/hop", "Davies 2018 Table 2: energy per tile hop, 3.0 E-W / 4.0 N-S; "
                       "3.5 is their mean", 3.5)
    active_update_pj: float = _f("pJ/update", "Davies 2018 Table 2: energy per neuron update (active)", 81.0)
    idle_update_pj: float = _f("pJ/update", "Davies 2018 Table 2: energy per neuron update (inactive)", 52.0)
    # --- time, ns per event on the core doing it (Davies 2018 Table 2)
    synop_ns: float = _f("ns/synaptic op", "Davies 2018 Table 2: time per synaptic spike op (max)", 3.5)
    message_ns: float = _f("ns/message", "Davies 2018 Table 2: within-tile spike latency; charged to the "
                           "sending core per message (assumption: injection is serial)", 2.1)
    active_update_ns: float = _f("ns/update", "Davies 2018 Table 2: time per neuron update (active)", 8.4)
    idle_update_ns: float = _f("ns/update", "Davies 2018 Table 2: time per neuron update (inactive)", 5.3)
    # --- barrier synchronisation: the shortest possible step
    barrier_chip_ns: float = _f("ns/step", "Davies 2018 Table 2: mesh-wide barrier sync time, 113-465 ns "
                                "for 1-32 tiles; 465 = a full chip", 465.0)
    barrier_per_extra_chip_ns: float = _f(
        "ns/step per chip", "assumption, scaled from Frady 2020 (measured multi-chip barrier 14.3 us on a "
        "4x64-chip column, 16.2 us on 12x64 chips: ~0.24 us per chip of mesh diameter); chips in a row",
        240.0)
    # --- static (leakage) power
    static_mw_per_chip: float = _f("mW/chip", "Frady 2020 Table 1: 3.34 W static over 32 Loihi 1 chips = "
                                   "104 mW/chip (2nd: via a transcription, supply voltage not stated)", 104.0)
    assumed: tuple = ("barrier_per_extra_chip_ns", "message_ns")
    """Names of fields that are assumptions for this chip, not published figures."""

    def __post_init__(self):
        for f in self.numeric_fields():
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise NeurojaxError(f"EnergyModel.{f.name} must be a finite number >= 0 "
                                    f"({f.metadata['unit']}), got {v!r}")
        unknown = sorted(set(self.assumed) - {f.name for f in self.numeric_fields()})
        if unknown:
            raise NeurojaxError(f"EnergyModel.assumed names unknown fields {unknown}")

    @classmethod
    def numeric_fields(cls) -> tuple:
        return tuple(f for f in dataclasses.fields(cls) if "unit" in f.metadata)

    def replace(self, **changes) -> "EnergyModel":
        """A copy with some constants changed (e.g. to sweep an assumption)."""
        return dataclasses.replace(self, **changes)

    def barrier_ns(self, chips: int) -> float:
        """Shortest step on `chips` chips (ns): one chip's barrier plus a per-chip extension."""
        chips = _positive_int(chips, "chips")
        return self.barrier_chip_ns + self.barrier_per_extra_chip_ns * (chips - 1)

    def energy_pj(self, counter: str) -> float:
        """Energy of one event of a `Trace` counter (pJ)."""
        return getattr(self, _ENERGY_FIELD[counter])

    def describe(self) -> list:
        """Rows (field, value, unit, source-or-'assumption: ...') for printing beside a table."""
        rows = []
        for f in self.numeric_fields():
            src = f.metadata["source"]
            if f.name in self.assumed and not src.startswith("assumption"):
                src = "assumption, value from " + src
            rows.append((f.name, getattr(self, f.name), f.metadata["unit"], src))
        return rows


_ENERGY_FIELD = {"synops": "synop_pj", "messages": "message_pj", "hops": "hop_pj",
                 "active_updates": "active_update_pj", "idle_updates": "idle_update_pj"}
_TIME_FIELD = {"synops": "synop_ns", "messages": "message_ns",
               "active_updates": "active_update_ns", "idle_updates": "idle_update_ns"}
# hops are pipelined through the mesh routers: they cost energy, and their latency (4.1-6.5 ns
# per hop, Davies 2018) is taken as hidden under the step; congestion is not modelled.
assert set(_ENERGY_FIELD) == set(COUNTERS)

LOIHI1_MEASURED = EnergyModel()
"""Loihi 1 as published (Davies 2018 Table 2; static power from Frady 2020). Only the multi-chip
barrier extension and the per-message core time are assumptions. Table 2 comes from pre-silicon
simulation "consistent with early post-silicon characterization", and 23.6 pJ is stated as a
minimum per synaptic op, so synaptic energy here is a lower bound."""

LOIHI2_ASSUMED = EnergyModel(
    name="loihi2_assumed",
    assumed=tuple(f.name for f in EnergyModel.numeric_fields()),
)
"""Loihi 2 = Loihi 1's constants reused, every one labelled an assumption: Intel has published no
per-event energy or time table for Loihi 2 (spec `neuromorphic.md`). Loihi 2 is a newer process
(Intel 4) and Intel's Loihi 2 brief claims up to 10x faster processing than Loihi 1, so these are
likely pessimistic;
results with this preset are functions of these constants, not measurements."""

ENERGY_MODELS = {m.name: m for m in (LOIHI1_MEASURED, LOIHI2_ASSUMED)}
"""Named presets (`--energy_model` flags look them up here)."""


def energy_model_by_name(name: str) -> EnergyModel:
    if name not in ENERGY_MODELS:
        raise NeurojaxError(f"unknown energy model {name!r}; known: {', '.join(ENERGY_MODELS)}")
    return ENERGY_MODELS[name]


def _model(model: EnergyModel | str) -> EnergyModel:
    if isinstance(model, EnergyModel):
        return model
    if isinstance(model, str):
        return energy_model_by_name(model)
    raise NeurojaxError(f"model must be an EnergyModel or a preset name, got {type(model).__name__}")


def _positive_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise NeurojaxError(f"{what} must be an integer >= 1, got {v!r}")
    return int(v)


def _positive(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
            or v <= 0:
        raise NeurojaxError(f"{what} must be a finite number > 0, got {v!r}")
    return float(v)


# ----------------------------------------------------------------------------- run cost

@dataclasses.dataclass(frozen=True)
class RunCost:
    """Energy and time of a run (or of one token), each split into the terms that make it up.

    `energy_j` holds one term per counter plus "static" and sums to `total_energy_j`;
    `time_s` holds the critical-path time of each work term (summed over the steps where
    work exceeded the barrier) plus "barrier" (steps floored at the barrier), and sums to
    `total_time_s`.
    """

    model: EnergyModel
    chips: int
    cores: int
    steps: float
    counts: dict  # counter -> events over the run
    energy_j: dict  # term -> joules
    time_s: dict  # term -> seconds
    barrier_bound_steps: float  # steps whose length was the barrier floor

    @property
    def total_energy_j(self) -> float:
        return float(sum(self.energy_j.values()))

    @property
    def static_energy_j(self) -> float:
        return self.energy_j["static"]

    @property
    def dynamic_energy_j(self) -> float:
        return self.total_energy_j - self.static_energy_j

    @property
    def total_time_s(self) -> float:
        return float(sum(self.time_s.values()))

    @property
    def average_power_w(self) -> float:
        t = self.total_time_s
        return self.total_energy_j / t if t > 0 else 0.0

    def per(self, n: float) -> "RunCost":
        """The same cost divided by `n` (e.g. tokens) for per-token figures."""
        n = _positive(n, "n")
        return dataclasses.replace(
            self, steps=self.steps / n, barrier_bound_steps=self.barrier_bound_steps / n,
            counts={k: v / n for k, v in self.counts.items()},
            energy_j={k: v / n for k, v in self.energy_j.items()},
            time_s={k: v / n for k, v in self.time_s.items()})

    def rows(self) -> list:
        """Rows (term, count, per-event cost, unit, joules) showing how the energy was obtained."""
        m = self.model
        rows = [(k, self.counts[k], m.energy_pj(k), "pJ", self.energy_j[k]) for k in COUNTERS]
        rows.append(("static", self.chips * self.total_time_s, m.static_mw_per_chip, "mW x chip-s",
                     self.energy_j["static"]))
        return rows


def _counters(run) -> dict:
    """Counter arrays [steps, cores] from a `Trace` or a dict, checked."""
    counters = getattr(run, "counters", run)
    if not isinstance(counters, dict):
        raise NeurojaxError(f"expected a Trace or a dict of counters, got {type(run).__name__}")
    missing = [k for k in COUNTERS if k not in counters]
    extra = sorted(set(counters) - set(COUNTERS))
    if missing or extra:
        raise NeurojaxError(f"counters must be exactly {list(COUNTERS)}; missing {missing}, unknown {extra}")
    out, shape = {}, None
    for k in COUNTERS:
        a = np.asarray(counters[k])
        if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
            raise NeurojaxError(f"counter {k!r} must be an integer array [steps, cores], got "
                                f"{a.dtype} of shape {a.shape}")
        if shape is not None and a.shape != shape:
            raise NeurojaxError(f"counter {k!r} has shape {a.shape}, the others {shape}")
        if a.size and a.min() < 0:
            raise NeurojaxError(f"counter {k!r} holds a negative count ({a.min()}); counts are events")
        shape = a.shape
        out[k] = a.astype(np.int64)
    return out


def step_times_s(run, model: EnergyModel | str = "loihi2_assumed", chips: int = 1) -> np.ndarray:
    """Length of every step (s, float64 [steps]): busiest core's work, floored at the barrier."""
    m = _model(model)
    work = _core_work_ns(_counters(run), m)
    busiest = work.max(axis=1) if work.shape[1] else np.zeros(work.shape[0])
    return np.maximum(busiest, m.barrier_ns(chips)) * 1e-9


def _core_work_ns(c: dict, m: EnergyModel) -> np.ndarray:
    return sum(c[k].astype(np.float64) * getattr(m, f) for k, f in _TIME_FIELD.items())


def _time_terms(c: dict, m: EnergyModel, chips: int) -> tuple:
    """Critical-path seconds per term, and the number of barrier-bound steps."""
    steps, cores = c["synops"].shape
    terms = {k: 0.0 for k in _TIME_FIELD}
    if steps == 0:
        return {**terms, "barrier": 0.0}, 0
    barrier = m.barrier_ns(chips)
    if cores == 0:
        return {**terms, "barrier": steps * barrier * 1e-9}, steps
    work = _core_work_ns(c, m)
    crit = work.argmax(axis=1)  # the busiest core of each step
    bound = work[np.arange(steps), crit] > barrier  # steps longer than the barrier
    rows = np.arange(steps)[bound]
    for k, f in _TIME_FIELD.items():
        terms[k] = float(c[k][rows, crit[bound]].sum() * getattr(m, f) * 1e-9)
    n_barrier = int(steps - bound.sum())
    terms["barrier"] = n_barrier * barrier * 1e-9
    return terms, n_barrier


def dynamic_energy_j(counts: dict, model: EnergyModel | str = "loihi2_assumed") -> dict:
    """Energy of each counter's events (J): total count x per-event energy."""
    m = _model(model)
    return {k: float(counts[k]) * m.energy_pj(k) * 1e-12 for k in COUNTERS}


def static_energy_j(time_s: float, chips: int, model: EnergyModel | str = "loihi2_assumed") -> float:
    """Leakage energy (J): static power per chip x chips x time."""
    m = _model(model)
    if not math.isfinite(time_s) or time_s < 0:
        raise NeurojaxError(f"time_s must be a finite number >= 0, got {time_s!r}")
    return m.static_mw_per_chip * 1e-3 * _positive_int(chips, "chips") * time_s


def run_cost(run, model: EnergyModel | str = "loihi2_assumed", chips: int | None = None,
             placement=None) -> RunCost:
    """Energy and time of an emulated run from its `Trace` (or its counters dict).

    `chips`: chips powered during the run (static power and barrier); default the placement's
    chip count if `placement` is given, else the cores in the counters over
    `LOIHI2.cores_per_chip`.
    """
    m = _model(model)
    c = _counters(run)
    steps, cores = c["synops"].shape
    if chips is None:
        chips = placement.num_chips if placement is not None else max(1, math.ceil(cores / LOIHI2.cores_per_chip))
    chips = _positive_int(chips, "chips")
    totals = {k: int(v.sum()) for k, v in c.items()}
    time_terms, n_barrier = _time_terms(c, m, chips)
    energy = dynamic_energy_j(totals, m)
    energy["static"] = static_energy_j(sum(time_terms.values()), chips, m)
    return RunCost(m, chips, cores, steps, totals, energy, time_terms, n_barrier)


def estimate(counts_per_token: dict, cores: int, chips: int, steps_per_token: float,
             model: EnergyModel | str = "loihi2_assumed", imbalance: float = 1.0) -> RunCost:
    """Per-token cost of a model whose event counts are estimated rather than emulated.

    `counts_per_token`: total events per token for every counter (e.g. extrapolated from a
    smaller emulated model). The work is spread evenly over `cores` and `steps_per_token`
    steps, and the busiest core does `imbalance` (>= 1) times the mean core's work;
    `imbalance=1` (perfect balance) gives the shortest possible time.
    """
    m = _model(model)
    missing = [k for k in COUNTERS if k not in counts_per_token]
    extra = sorted(set(counts_per_token) - set(COUNTERS))
    if missing or extra:
        raise NeurojaxError(f"counts_per_token must give exactly {list(COUNTERS)}; missing {missing}, "
                            f"unknown {extra}")
    counts = {}
    for k in COUNTERS:
        v = counts_per_token[k]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
                or v < 0:
            raise NeurojaxError(f"counts_per_token[{k!r}] must be a finite count >= 0, got {v!r}")
        counts[k] = float(v)
    cores = _positive_int(cores, "cores")
    chips = _positive_int(chips, "chips")
    steps = _positive(steps_per_token, "steps_per_token")
    imbalance = _positive(imbalance, "imbalance")
    if imbalance < 1:
        raise NeurojaxError(f"imbalance is the busiest core's work over the mean core's, so >= 1; got {imbalance}")
    per_core_step = {k: counts[k] / (steps * cores) * imbalance for k in _TIME_FIELD}
    work_ns = sum(per_core_step[k] * getattr(m, f) for k, f in _TIME_FIELD.items())
    barrier = m.barrier_ns(chips)
    if work_ns > barrier:
        time_terms = {k: per_core_step[k] * getattr(m, f) * steps * 1e-9 for k, f in _TIME_FIELD.items()}
        time_terms["barrier"], n_barrier = 0.0, 0.0
    else:
        time_terms = {k: 0.0 for k in _TIME_FIELD}
        time_terms["barrier"], n_barrier = barrier * steps * 1e-9, steps
    energy = dynamic_energy_j(counts, m)
    energy["static"] = static_energy_j(sum(time_terms.values()), chips, m)
    return RunCost(m, chips, cores, steps, counts, energy, time_terms, n_barrier)


# ----------------------------------------------------------------------------- edge GPU roofline

@dataclasses.dataclass(frozen=True)
class GpuSpec:
    """An edge GPU for the roofline: memory bandwidth, peak FLOP/s and board power."""

    name: str
    bandwidth_bytes_per_s: float  # DRAM bandwidth
    peak_flops: float  # dense FP16 tensor-core FLOP/s (the roofline's compute ceiling)
    power_w: float  # board power while decoding (energy = power x time)
    power_range_w: tuple = (0.0, 0.0)  # the power modes of the board (W), for reference
    cuda_cores: int = 0
    gpu_clock_hz: float = 0.0
    fp32_flops: float = 0.0  # CUDA-core FP32 FLOP/s (no tensor cores), for reference
    sources: str = ""

    def __post_init__(self):
        for name in ("bandwidth_bytes_per_s", "peak_flops", "power_w"):
            _positive(getattr(self, name), f"GpuSpec.{name}")

    def replace(self, **changes) -> "GpuSpec":
        return dataclasses.replace(self, **changes)


ORIN_NANO_CUDA_CORES = 1024  # datasheet (8GB module)
ORIN_NANO_GPU_CLOCK_HZ = 625e6  # datasheet: GPU maximum operating frequency 625 MHz
ORIN_NANO_SUPER_GPU_CLOCK_HZ = 1020e6  # Super mode: 1020 MHz (2nd: developer-kit material)
ORIN_NANO_INT8_SPARSE_OPS = 40e12  # datasheet: up to 40 sparse INT8 TOPS (20 dense)
ORIN_NANO_SUPER_INT8_SPARSE_OPS = 67e12  # Super: 67 sparse INT8 TOPS
# Derived peak: Ampere tensor cores run dense FP16 at half the dense INT8 rate and 2:4 sparsity
# doubles INT8, so dense FP16 = sparse INT8 / 4 (40 TOPS -> 10 TFLOP/s, 67 -> 16.75). Derived,
# not a datasheet figure: check it against a measured GEMM before relying on compute-bound times.
ORIN_NANO_FP16_DENSE_FLOPS = ORIN_NANO_INT8_SPARSE_OPS / 4
ORIN_NANO_SUPER_FP16_DENSE_FLOPS = ORIN_NANO_SUPER_INT8_SPARSE_OPS / 4

JETSON_ORIN_NANO = GpuSpec(
    name="jetson_orin_nano",
    bandwidth_bytes_per_s=68e9,  # datasheet: 68 GB/s (128-bit LPDDR5)
    peak_flops=ORIN_NANO_FP16_DENSE_FLOPS,
    power_w=15.0,  # assumption: decoding runs at the top of the 7-15 W modes
    power_range_w=(7.0, 15.0),  # datasheet power modes
    cuda_cores=ORIN_NANO_CUDA_CORES,
    gpu_clock_hz=ORIN_NANO_GPU_CLOCK_HZ,
    fp32_flops=2 * ORIN_NANO_CUDA_CORES * ORIN_NANO_GPU_CLOCK_HZ,  # one FMA per core per clock: 1.28 TFLOP/s
    sources=ORIN_NANO_DATASHEET + "; peak FP16 derived from INT8 TOPS; power_w an assumption",
)
"""Jetson Orin Nano 8GB, original power modes (spec `neuromorphic.md`)."""

JETSON_ORIN_NANO_SUPER = GpuSpec(
    name="jetson_orin_nano_super",
    bandwidth_bytes_per_s=102e9,  # Super mode: 102 GB/s
    peak_flops=ORIN_NANO_SUPER_FP16_DENSE_FLOPS,
    power_w=25.0,  # assumption: decoding runs at the 25 W cap of the Super mode
    power_range_w=(7.0, 25.0),
    cuda_cores=ORIN_NANO_CUDA_CORES,
    gpu_clock_hz=ORIN_NANO_SUPER_GPU_CLOCK_HZ,
    fp32_flops=2 * ORIN_NANO_CUDA_CORES * ORIN_NANO_SUPER_GPU_CLOCK_HZ,  # 2.09 TFLOP/s
    sources=ORIN_NANO_SUPER + "; peak FP16 derived from INT8 TOPS; power_w an assumption",
)
"""Jetson Orin Nano 8GB in its "Super" mode (same silicon, higher clocks and power cap)."""

GPUS = {g.name: g for g in (JETSON_ORIN_NANO, JETSON_ORIN_NANO_SUPER)}


def gpu_by_name(name: str) -> GpuSpec:
    if name not in GPUS:
        raise NeurojaxError(f"unknown GPU {name!r}; known: {', '.join(GPUS)}")
    return GPUS[name]


@dataclasses.dataclass(frozen=True)
class TransformerShape:
    """What the roofline needs of a decoder-only transformer.

    `params`: parameter count N read per token (weights); `kv_dim`: width of K (and of V) per
    layer, `d_model` unless grouped-query attention shrinks it; attention FLOPs use `d_model`
    (heads x head_dim). KV-cache bytes per token = 2 (K and V) x layers x kv_dim x kv bytes.
    """

    params: float
    layers: int
    d_model: int
    kv_dim: int | None = None
    bytes_per_param: float = 2.0  # fp16/bf16 weights
    kv_bytes_per_value: float = 2.0  # fp16 KV cache

    def __post_init__(self):
        _positive(self.params, "TransformerShape.params")
        _positive_int(self.layers, "TransformerShape.layers")
        _positive_int(self.d_model, "TransformerShape.d_model")
        if self.kv_dim is not None:
            _positive_int(self.kv_dim, "TransformerShape.kv_dim")
        _positive(self.bytes_per_param, "TransformerShape.bytes_per_param")
        _positive(self.kv_bytes_per_value, "TransformerShape.kv_bytes_per_value")

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per_param

    def kv_cache_bytes(self, context: int) -> float:
        """Bytes of the KV cache holding `context` tokens."""
        kv = self.kv_dim if self.kv_dim is not None else self.d_model
        return 2.0 * self.layers * kv * self.kv_bytes_per_value * context

    def decode_flops(self, context: int) -> float:
        """FLOPs of one decoded token attending to `context` cached tokens: 2N + 4 L d context."""
        return 2.0 * self.params + 4.0 * self.layers * self.d_model * context

    def prefill_flops(self, prompt: int) -> float:
        """FLOPs of a causal prefill of `prompt` tokens: 2 N P + 4 L d sum_{t=1..P} t."""
        return 2.0 * self.params * prompt + 2.0 * self.layers * self.d_model * prompt * (prompt + 1)


TRANSFORMER_370M_FP16 = TransformerShape(params=370e6, layers=24, d_model=1024)
"""A 370M transformer (Transformer++ 370M shape of the MatMul-free paper: 24 layers, d=1024), fp16."""


@dataclasses.dataclass(frozen=True)
class GpuCost:
    """Roofline time and energy of one GPU phase (a decoded token, or a prefill)."""

    bytes_moved: float
    flops: float
    memory_time_s: float  # bytes / bandwidth
    compute_time_s: float  # flops / peak
    power_w: float

    @property
    def time_s(self) -> float:
        return max(self.memory_time_s, self.compute_time_s)

    @property
    def bound(self) -> str:
        return "bandwidth" if self.memory_time_s >= self.compute_time_s else "compute"

    @property
    def energy_j(self) -> float:
        return self.power_w * self.time_s

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.time_s


def _gpu(gpu: GpuSpec | str) -> GpuSpec:
    return gpu if isinstance(gpu, GpuSpec) else gpu_by_name(gpu)


def _tokens(v, what: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise NeurojaxError(f"{what} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def gpu_decode(shape: TransformerShape, gpu: GpuSpec | str = "jetson_orin_nano", context: int = 0) -> GpuCost:
    """Roofline cost of decoding one token at batch 1 with `context` tokens already cached.

    Bytes = all weights + the KV cache read (the new token's K/V write is negligible);
    FLOPs = 2N + attention over the context.
    """
    g = _gpu(gpu)
    context = _tokens(context, "context", 0)
    b = shape.weight_bytes + shape.kv_cache_bytes(context)
    f = shape.decode_flops(context)
    return GpuCost(b, f, b / g.bandwidth_bytes_per_s, f / g.peak_flops, g.power_w)


def gpu_ttft(shape: TransformerShape, prompt_tokens: int, gpu: GpuSpec | str = "jetson_orin_nano") -> GpuCost:
    """Roofline time to first token: one batched prefill of `prompt_tokens` tokens.

    Weights are read once and the KV cache written once; FLOPs = 2 N P + causal attention.
    Usually compute-bound on an edge GPU at a few hundred tokens.
    """
    g = _gpu(gpu)
    p = _tokens(prompt_tokens, "prompt_tokens", 1)
    b = shape.weight_bytes + shape.kv_cache_bytes(p)
    f = shape.prefill_flops(p)
    return GpuCost(b, f, b / g.bandwidth_bytes_per_s, f / g.peak_flops, g.power_w)


# ----------------------------------------------------------------------------- paper figures

PAPER_THROUGHPUT_RATIO = 3.0
"""Loihi 2 over Jetson Orin Nano transformer LLMs, batch-1 tokens/s: 'up to 3x' (ABREU_2025)."""
PAPER_ENERGY_PER_TOKEN_RATIO = 2.0
"""Jetson Orin Nano transformer energy per token over Loihi 2's: '2x less' (ABREU_2025)."""
PAPER_TTFT_RATIO = 6.6
"""Jetson time-to-first-token over Loihi 2's at a 500-token prompt (2nd: secondary summary of ABREU_2025)."""
PAPER_TTFT_PROMPT_TOKENS = 500

PAPER_RESULTS = {
    "throughput_ratio": (PAPER_THROUGHPUT_RATIO, ABREU_2025 + ": up to 3x higher throughput (spec neuromorphic.md)"),
    "energy_per_token_ratio": (PAPER_ENERGY_PER_TOKEN_RATIO, ABREU_2025 + ": 2x less energy per token (spec neuromorphic.md)"),
    "ttft_ratio_500_tokens": (PAPER_TTFT_RATIO, ABREU_2025 + " (2nd: from a secondary summary, unverified)"),
}
"""The paper's reported ratios (value, source), printed beside ours."""
