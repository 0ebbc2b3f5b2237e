"""NIR's continuous-time neuron parameters <-> neurojax's forward-Euler steps, per named profile.

A NIR file stores neither the time step `dt` nor the discretisation (spec `nir.md`). neurojax
discretises every neuron by **forward Euler with the profile's dt**, which is what the peers
that write NIR do (spec: checked by simulating graphs they exported; exact exponential decay
`exp(-dt/tau)` would not reproduce them). Per step, for the fields of `spiking.graph.Neuron`:

    LIF, LI:   decay = 1 - dt/tau,      gain = dt r / tau,      bias = dt v_leak / tau
    CubaLIF:   decay_syn = 1 - dt/tau_syn, c_in = dt w_in / tau_syn ("euler") or w_in ("jump"),
               decay = 1 - dt/tau_mem,  gain = dt r / tau_mem,  bias = dt v_leak / tau_mem
    IF, I:     decay = 1,               gain = dt r,            bias = 0
    thresholds and v_reset are taken as they are; spikes compare v > v_threshold.

Profiles (`PROFILES`):
- "neurojax": what neurojax writes: dt = `DEFAULT_DT` (1e-4 s, so that snnTorch's importer, which
  assumes that dt, reads the same decays), CubaLIF input "euler". neurojax's own files also carry
  the exact discrete values in node metadata, so they round-trip without this conversion.
- "snntorch": snnTorch 1.0.0's exporter: dt = 1e-4 hard-coded, `tau = dt / (1 - beta)`, `r = tau/dt`
  (gain 1), `tau_syn = dt / (1 - alpha)`, `w_in = tau_syn / dt` (c_in 1, "euler"), v_leak = 0,
  v_reset = 0 whatever the neuron's reset mechanism (a subtract-reset neuron is not recoverable).
- "norse-1.1": Norse 1.1.0 writes `tau = dt / tau_mem_inv` with its dt = 1e-3, i.e. dt times the true
  tau (a bug fixed after that release): its files simulate correctly with dt = 1e-6; `r = 1`,
  `w_in = 1`, the CubaLIF input added as a jump ("jump").
Or any `NirProfile(name, dt, cuba_input)` built by hand. The two CubaLIF input rules contradict
each other: no single rule reproduces both peers, hence the named field.
"""
import dataclasses
import math
from typing import Union

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.spiking.graph import Neuron

DEFAULT_DT = 1e-4
CUBA_INPUTS = ("euler", "jump")


@dataclasses.dataclass(frozen=True)
class NirProfile:
    """How a NIR file's continuous parameters become steps: the time step and the CubaLIF input rule."""
    name: str
    dt: float
    cuba_input: str = "euler"

    def __post_init__(self):
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not (
                math.isfinite(self.dt) and self.dt > 0):
            raise NeurojaxError(f"NirProfile {self.name!r}: dt must be a finite number > 0 (seconds), got {self.dt!r}")
        if self.cuba_input not in CUBA_INPUTS:
            raise NeurojaxError(f"NirProfile {self.name!r}: cuba_input {self.cuba_input!r} must be one of {CUBA_INPUTS}")


PROFILES = {
    "neurojax": NirProfile("neurojax", DEFAULT_DT, "euler"),
    "snntorch": NirProfile("snntorch", 1e-4, "euler"),
    "norse-1.1": NirProfile("norse-1.1", 1e-6, "jump"),
}


def get_profile(profile: Union[str, NirProfile]) -> NirProfile:
    """A `NirProfile` by name (or the profile itself)."""
    if isinstance(profile, NirProfile):
        return profile
    if profile not in PROFILES:
        raise NeurojaxError(f"unknown NIR profile {profile!r}; known: {sorted(PROFILES)} "
                            "(or pass NirProfile(name, dt, cuba_input))")
    return PROFILES[profile]


def _f64(node_name: str, field: str, value) -> np.ndarray:
    a = np.asarray(value, np.float64)
    if not np.all(np.isfinite(a)):
        raise NeurojaxError(f"NIR node {node_name!r}: field {field!r} holds a non-finite value")
    return a


def _positive(node_name: str, field: str, value) -> np.ndarray:
    a = _f64(node_name, field, value)
    if np.any(a <= 0):
        raise NeurojaxError(f"NIR node {node_name!r}: {field} must be > 0 everywhere (a time constant)")
    return a


def to_neuron(kind: str, fields: dict, profile: NirProfile, node_name: str = "?") -> Neuron:
    """A graph `Neuron` from a NIR neuron's fields (`tau`, `r`, ... as NumPy arrays) under `profile`."""
    dt = profile.dt

    def get(field):
        if field not in fields or fields[field] is None:
            raise NeurojaxError(f"NIR node {node_name!r} ({kind}) has no field {field!r}")
        return _f64(node_name, field, fields[field])

    f32 = {}
    if kind in ("LIF", "LI"):
        tau = _positive(node_name, "tau", get("tau"))
        f32 |= dict(decay=1 - dt / tau, gain=dt * get("r") / tau, bias=dt * get("v_leak") / tau)
    elif kind == "CubaLIF":
        tau_syn, tau_mem = _positive(node_name, "tau_syn", get("tau_syn")), _positive(node_name, "tau_mem",
                                                                                        get("tau_mem"))
        w_in = get("w_in")
        f32 |= dict(decay_syn=1 - dt / tau_syn, c_in=dt * w_in / tau_syn if profile.cuba_input == "euler" else w_in,
                    decay=1 - dt / tau_mem, gain=dt * get("r") / tau_mem, bias=dt * get("v_leak") / tau_mem)
    elif kind in ("IF", "I"):
        r = get("r")
        f32 |= dict(decay=np.ones_like(r), gain=dt * r, bias=np.zeros_like(r))
    else:
        raise NeurojaxError(f"NIR node {node_name!r}: neuron type {kind!r} is not supported")
    if kind in ("LIF", "CubaLIF", "IF"):
        f32 |= dict(threshold=get("v_threshold"), v_reset=get("v_reset"))
    shape = np.shape(f32["decay"])
    out = {k: np.broadcast_to(v, shape).astype(np.float32) for k, v in f32.items()}
    return Neuron(kind, **out)


def from_neuron(node: Neuron, dt: float, node_name: str = "?") -> dict:
    """The NIR fields (float32 arrays) of a graph `Neuron` written with time step `dt` ("euler" CubaLIF input)."""
    f = {k: np.asarray(getattr(node, k), np.float64) for k in ("decay", "gain", "bias")}
    out = {}
    if node.kind in ("LIF", "LI", "CubaLIF"):
        if np.any(f["decay"] >= 1):
            raise NeurojaxError(f"neuron {node_name!r} ({node.kind}) has decay >= 1: no finite NIR time constant "
                                "(use an IF / I neuron for no leak)")
        tau = dt / (1 - f["decay"])
        key = "tau_mem" if node.kind == "CubaLIF" else "tau"
        out |= {key: tau, "r": f["gain"] * tau / dt, "v_leak": f["bias"] * tau / dt}
        if node.kind == "CubaLIF":
            ds = np.asarray(node.decay_syn, np.float64)
            if np.any(ds >= 1):
                raise NeurojaxError(f"neuron {node_name!r} (CubaLIF) has decay_syn >= 1: no finite NIR tau_syn")
            tau_syn = dt / (1 - ds)
            out |= {"tau_syn": tau_syn, "w_in": np.asarray(node.c_in, np.float64) * tau_syn / dt}
    else:  # IF, I
        out["r"] = f["gain"] / dt
    if node.spiking:
        out |= {"v_threshold": np.asarray(node.threshold, np.float64), "v_reset": np.asarray(node.v_reset, np.float64)}
    return {k: v.astype(np.float32) for k, v in out.items()}
