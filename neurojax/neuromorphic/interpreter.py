"""The event-driven interpreter: runs a `Network` step by step, vectorized and jitted.

Each algorithmic time step, in this order:
1. Dendrites: every synapse group reads the messages its source sent `delay` steps ago and
   accumulates `weight * payload` into its target port (int32 sum, or max with 0 as the empty
   value), then applies the group's weight exponent.
2. Every neuron group runs its program once per neuron (`execute`), reading its ports.
3. What each group sent this step enters the message history.
So a message sent at step t is integrated at step t + delay (>= 1); nothing is instantaneous.

Only events cost work: a graded message exists where the payload is non-zero, a binary one
where a spike was sent. Per step and per core the interpreter counts synaptic operations
(non-zero synapses reached by events), messages (one per event per destination core), mesh
hops of those messages, and neuron updates that were active (received or sent an event) or
idle. Runtime overflows (values that did not fit a register) are counted per group.

Programs are decoded at trace time (each instruction becomes a few int32 array operations)
and the neurons of all groups that share a program run as one batch (concatenated).
"""
import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.kernels.event_matmul import event_matmul, event_matmul_csr
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.isa import INT32_MAX, INT32_MIN, Program
from neurojax.neuromorphic.network import InputGroup, Network
from neurojax.neuromorphic.placement import Placement, place
from neurojax.quant.fixed import (bit_length, fit, mul_shift, mul_shift_split, mul_shift_wide, overflows, saturate,
                                  shift_right)

COUNTERS = ("synops", "messages", "hops", "active_updates", "idle_updates")


# ----------------------------------------------------------------------------- one program

def _add_overflow(a, b, r):
    """Where int32 `r = a + b` wrapped (operands of one sign, result of the other)."""
    return ((a ^ r) & (b ^ r)) < 0


def execute(prog: Program, regs: dict, ports: dict, params: dict) -> tuple:
    """Run `prog` once for every neuron: returns (registers, channel values, overflows per neuron).

    `regs` (at least the program's `persistent()` registers), `ports`, `params` map names to
    int32 arrays of one shape (the neurons); the function is pure and traceable. The
    registers returned are every register the program holds after the step.
    """
    regs = dict(regs)
    out = {}
    like = next(iter([*regs.values(), *ports.values(), *params.values()]))
    overflow = jnp.zeros(like.shape, jnp.int32)

    def val(o):
        if isinstance(o, (int, np.integer)):
            return jnp.int32(int(o))
        if o in regs:
            return regs[o]
        if o in ports:
            return ports[o]
        return params[o]

    for ins in prog.instrs:
        op, s = ins.op, ins.srcs
        extra = None  # neurons whose exact result left int32 ...
        negative = None  # ... and whether that exact result was negative
        if op == "send":
            kind, _ = prog.channels[ins.dst]
            v = val(s[0])
            out[ins.dst] = (v != 0).astype(jnp.int32) if kind == "binary" else v
            continue
        if op == "mov":
            r = val(s[0])
        elif op in ("add", "sub"):
            a, b = val(s[0]), val(s[1])
            r = a + b if op == "add" else a - b
            if prog.result_width(ins) > 32:  # the true result has the sign of `a` whenever it overflows
                extra = _add_overflow(a, b, r) if op == "add" else ((a ^ b) & (a ^ r)) < 0
                negative = a < 0
        elif op == "mul":
            r = val(s[0]) * val(s[1])  # exact: the assembler bounds the operand widths
        elif op == "mulsh":
            a, b, n = val(s[0]), val(s[1]), jnp.clip(val(s[2]), 0, 62)
            wa, wb = prog.width(s[0]), prog.width(s[1])
            if wa + wb <= 32:  # the exact product fits int32: one multiply, then the rounding shift
                p = a * b
                r = shift_right(p, jnp.minimum(n, 31), ins.mode)
                # |p| <= 2**30 < 2**(n-1) beyond 31: every mode gives 0, floor gives -1 below zero
                r = jnp.where(n > 31, jnp.where((p < 0) & (ins.mode == "floor"), -1, 0), r)
            elif isinstance(s[2], (int, np.integer)) and 1 <= s[2] <= 31 and min(wa, wb) + s[2] <= 31:
                # an immediate shift and a narrow factor: two int32 products (same exact result)
                x, y = (a, b) if wb <= wa else (b, a)
                r = mul_shift_split(x, y, int(s[2]), ins.mode)
            elif wb <= 16:
                r = mul_shift(a, b, n, ins.mode)
            else:
                r = mul_shift_wide(a, b, n, ins.mode)
        elif op == "shr":
            r = shift_right(val(s[0]), jnp.clip(val(s[1]), 0, 31), ins.mode)
        elif op == "shl":
            a, n = val(s[0]), jnp.clip(val(s[1]), 0, 31)
            r = jnp.left_shift(a, n)
            extra = jnp.right_shift(r, n) != a  # a * 2**n left int32
            negative = a < 0
        elif op == "and":
            r = val(s[0]) & val(s[1])
        elif op == "not":
            r = ~val(s[0])
        elif op in ("neg", "abs"):
            a = val(s[0])
            r = -a if op == "neg" else jnp.abs(a)
            if prog.result_width(ins) > 32:  # -INT32_MIN and |INT32_MIN| are 2**31
                extra, negative = a == INT32_MIN, jnp.zeros(a.shape, bool)
        elif op == "min":
            r = jnp.minimum(val(s[0]), val(s[1]))
        elif op == "max":
            r = jnp.maximum(val(s[0]), val(s[1]))
        elif op == "clip":
            r = jnp.minimum(jnp.maximum(val(s[0]), val(s[1])), val(s[2]))
        elif op == "sat":
            a = val(s[0])
            r = saturate(a, int(s[1]))
            overflow = overflow + overflows(a, int(s[1])).astype(jnp.int32)
        elif op == "bitlen":
            r = bit_length(jnp.maximum(val(s[0]), 0))
        elif op in ("lt", "le", "gt", "ge", "eq", "ne"):
            a, b = val(s[0]), val(s[1])
            r = {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b, "eq": a == b, "ne": a != b}[op]
            r = r.astype(jnp.int32)
        elif op == "sel":
            r = jnp.where(val(s[0]) != 0, val(s[1]), val(s[2]))
        elif op == "lut":
            table = jnp.asarray(prog.tables[s[0]])
            r = jnp.take(table, jnp.clip(val(s[1]), 0, table.shape[0] - 1))
        else:  # the assembler admits no other op
            raise NeurojaxError(f"unknown instruction {op!r}")
        reg = prog.registers[ins.dst]
        r = jnp.broadcast_to(jnp.asarray(r, jnp.int32), like.shape)
        if extra is not None:
            # the exact result left int32: saturate it (or keep the int32 wrap) and count it
            overflow = overflow + extra.astype(jnp.int32)
            if reg.overflow == "saturate":
                r = jnp.where(extra, jnp.where(negative, INT32_MIN, INT32_MAX), r)
        if reg.bits < 32 and prog.result_width(ins) > reg.bits:
            ovf = overflows(r, reg.bits)
            overflow = overflow + (ovf if extra is None else ovf & ~extra).astype(jnp.int32)  # counted once
            r = fit(r, reg.bits, reg.overflow)[0]
        regs[ins.dst] = r
    return regs, out, overflow


# ----------------------------------------------------------------------------- the simulator

def _csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, n_cols: int) -> tuple:
    """(indptr, indices, values) int32 of the sparse matrix with entries summed per (row, col),
    zeros dropped, padded past `indptr[-1]` to a size bucket (`event_matmul_csr` ignores the
    padding) so that networks differing in a few synapses share one compilation."""
    key, inverse = np.unique(rows.astype(np.int64) * n_cols + cols, return_inverse=True)
    total = np.zeros(key.size, np.int64)
    np.add.at(total, inverse.reshape(-1), vals)
    key, total = key[total != 0], total[total != 0]
    indptr = np.searchsorted(key // n_cols, np.arange(n_rows + 1))
    step = 2 ** max(10, int(key.size).bit_length() - 4)  # at most 1/16 of padding
    pad = -key.size % step
    return tuple(jnp.asarray(a, jnp.int32) for a in (indptr, np.pad(key % n_cols, (0, pad)), np.pad(total, (0, pad))))


@dataclasses.dataclass
class Trace:
    """What a run produced: probed channel values and event counters, per step."""

    probes: dict  # "group/channel" -> int32 [steps, size]
    counters: dict  # name in COUNTERS -> int [steps, cores]
    overflow: dict  # neuron group -> int (runtime overflows over the run)

    def totals(self) -> dict:
        return {k: int(np.asarray(v, np.int64).sum()) for k, v in self.counters.items()}


def _batches(net: Network) -> list:
    """Neuron groups that share a program run as one batch (their neurons concatenated)."""
    batches: dict = {}
    for g in net.neuron_groups():
        batches.setdefault(id(g.program), []).append(g)
    return list(batches.values())


CHUNK_STEPS = 16  # runs are executed in chunks of this many steps: one compilation serves every length
_COMPILED: dict = {}  # structural signature -> jitted chunk function (shared by same-shaped networks)


class Simulator:
    """A network bound to a chip, placed, and compiled once; `run` many times.

    `probes`: channels to record every step, as "group/channel" strings (default: none).
    Internally every channel that feeds synapses has a slot in one flat message vector (and a
    ring buffer of the last `max delay` steps of it), every input port a slot in one flat
    sum or max accumulator, and all sparse synapses are one gather and one segment reduction.
    Weights, parameters and counter tables are arguments of the compiled step, so networks
    that differ only in those values (another checkpoint, a mutated weight) share one compilation.
    """

    def __init__(self, net: Network, chip: ChipConfig, probes: tuple = (), placement: Optional[Placement] = None,
                 chunk_steps: int = CHUNK_STEPS):
        net.validate(chip)
        self.net, self.chip = net, chip
        self.placement = placement or place(net, chip)
        self.probes = tuple(probes)
        for p in self.probes:
            g, _, ch = p.rpartition("/")
            if g not in net.groups or ch not in net.groups[g].channels():
                raise NeurojaxError(f"probe {p!r}: no channel {ch!r} on a group {g!r}")
        if not isinstance(chunk_steps, int) or chunk_steps < 1:
            raise NeurojaxError(f"chunk_steps must be a positive int, got {chunk_steps!r}")
        self.chunk_steps = chunk_steps
        self.batches = _batches(net)
        self.arrays = self._layout()

    def _compiled(self, masked: bool):
        """The jitted chunk function (with or without the per-step `live` mask), shared by signature."""
        key = (self._signature, masked)
        if key not in _COMPILED:
            _COMPILED[key] = jax.jit(functools.partial(self._scan, masked=masked))
        return _COMPILED[key]

    # -- host-side layout of messages, ports and counters
    def _layout(self) -> dict:
        net, pl = self.net, self.placement
        C = self.num_cores = pl.num_cores
        # message slots: every (group, channel) that feeds a synapse group, host inputs first
        # (slots [0, S_in): their events are known before a run, so the time loop need not record them)
        self.chan_off, S = {}, 0
        for from_host in (True, False):
            for syn in net.synapses:
                if syn.src not in self.chan_off and isinstance(net.groups[syn.src[0]], InputGroup) == from_host:
                    self.chan_off[syn.src] = S
                    S += net.groups[syn.src[0]].size
            if from_host:
                self.S_in = S
        self.S = max(S, 1)
        self.D = max([syn.delay for syn in net.synapses] + [1])
        # port slots, separately for sum and max accumulation
        self.port_off = {}
        sizes = {"sum": 0, "max": 0}
        for g in net.neuron_groups():
            for port, mode in g.program.ports.items():
                self.port_off[(g.name, port)] = (mode, sizes[mode])
                sizes[mode] += g.size
        self.P = {k: max(v, 1) for k, v in sizes.items()}
        coo = {"sum": [], "max": []}
        dense, dense_static = [], []
        self.dense_src = []  # source group of each dense synapse group
        chan_core = np.zeros(self.S, np.int64)
        msgs = np.zeros(self.S, np.int64)
        hops = np.zeros(self.S, np.int64)
        fan = {}  # delay -> keys slot * C + target core, one per non-zero synapse
        for syn in net.synapses:
            src, dst = net.groups[syn.src[0]], net.groups[syn.dst[0]]
            so = self.chan_off[syn.src]
            mode, po = self.port_off[syn.dst]
            d, si, w = syn.coo()
            src_core = pl.core_of[src.name]
            chan_core[so:so + src.size] = src_core
            dcore = pl.core_of[dst.name][d]
            key = np.unique(si.astype(np.int64) * C + dcore)  # distinct (source neuron, target core) pairs
            pairs = np.stack([key // C, key % C])
            np.add.at(msgs, so + pairs[0], 1)
            np.add.at(hops, so + pairs[0], pl.hops(src_core[pairs[0]], pairs[1]))
            fan.setdefault(syn.delay, []).append((so + si.astype(np.int64)) * C + dcore)
            if syn.sparse and syn.exp == 0:
                coo[mode].append((so + si, po + d, w, np.full(d.shape, syn.delay)))
                continue
            W = np.zeros((dst.size, src.size), np.int64)
            np.add.at(W, (d, si), w)
            narrow = bool(np.abs(W).max(initial=0) < 128 and src.channels()[syn.src[1]][1] <= 8)
            from_input = isinstance(src, InputGroup) and mode == "sum"
            # weights [dst, src]; source-major [src, dst] for an event-driven matmul of host inputs
            dense.append({"w": jnp.asarray(W.T if from_input else W, jnp.int8 if narrow else jnp.int32)})
            dense_static.append((so, src.size, mode, po, dst.size, narrow, syn.delay, syn.exp, from_input))
            self.dense_src.append(src.name)
        self.dense_static = tuple(dense_static)
        arrays = {"dense": dense, "coo": {}}
        for mode, parts in coo.items():
            if parts:
                arrays["coo"][mode] = tuple(jnp.asarray(np.concatenate(x), jnp.int32) for x in zip(*parts))
        # Event counters are computed after each chunk's scan from its recorded events, as one
        # event-driven matmul of the events with a sparse (CSR) cost matrix [S, (2 + delays) * C]:
        # per message slot, the messages and mesh hops one event costs each core, then the
        # synapses it reaches on each core through synapse groups of each delay (`_counters`).
        self.fan_delays = tuple(sorted(fan))
        width = (2 + len(self.fan_delays)) * C
        slots = np.arange(self.S)
        rows = [slots, slots] + [np.concatenate(fan[d]) // C for d in self.fan_delays]
        cols = [chan_core, C + chan_core] + [(2 + j) * C + np.concatenate(fan[d]) % C
                                             for j, d in enumerate(self.fan_delays)]
        vals = [msgs, hops] + [np.ones(r.shape, np.int64) for r in rows[2:]]
        arrays["cost"] = _csr(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), self.S, width)
        neuron_core = np.concatenate([pl.core_of[g.name] for batch in self.batches for g in batch]
                                     + [np.zeros(0, np.int64)])
        arrays["neuron_core"] = _csr(np.arange(neuron_core.size), neuron_core, np.ones(neuron_core.size, np.int64),
                                     neuron_core.size, C)
        arrays["neurons"] = jnp.asarray(pl.neurons, jnp.int32)
        arrays["params"] = [{name: jnp.asarray(np.concatenate([g.param_array(name) for g in batch]))
                             for name in batch[0].program.params} for batch in self.batches]
        self._signature = (
            tuple((id(b[0].program), tuple((g.name, g.size) for g in b)) for b in self.batches),
            tuple(sorted(self.chan_off.items())), tuple(sorted(self.port_off.items())), self.S, self.D,
            tuple(sorted(self.P.items())), C, self.dense_static,
            tuple((m, int(a[0].shape[0])) for m, a in sorted(arrays["coo"].items())),
            self.fan_delays, tuple(a.shape for a in (*arrays["cost"], *arrays["neuron_core"])),
            tuple((g.name, g.size) for g in net.inputs()), self.probes)
        return arrays

    def initial_state(self) -> dict:
        """Persistent registers (`Program.persistent`, initial values of every group), an empty
        message ring buffer, no synaptic ops due (see `_counters`), step 0."""
        regs = []
        for batch in self.batches:
            regs.append({name: jnp.asarray(np.concatenate([
                np.broadcast_to(np.asarray(g.init.get(name, 0), np.int32), (g.size,)) for g in batch]))
                for name in batch[0].program.persistent()})
        return {"regs": regs, "ring": jnp.zeros((self.D, self.S), jnp.int32), "t": jnp.int32(0),
                "due": jnp.zeros((self.D, self.num_cores), jnp.int32)}

    def _dendrites(self, arrays, ring, t, pre) -> dict:
        """Flat port accumulators of the messages delivered at step t."""
        acc = {"sum": jnp.zeros(self.P["sum"], jnp.int32), "max": jnp.zeros(self.P["max"], jnp.int32)}
        flat = ring.reshape(-1)
        for mode, (src, dst, w, delay) in arrays["coo"].items():
            contrib = w * flat[((t - delay) % self.D) * self.S + src]
            if mode == "sum":
                acc[mode] = acc[mode] + jax.ops.segment_sum(contrib, dst, num_segments=self.P[mode])
            else:
                acc[mode] = jnp.maximum(acc[mode], jax.ops.segment_max(contrib, dst, num_segments=self.P[mode]))
        for i, (e, (so, n_src, mode, po, n_dst, narrow, delay, exp, from_input)) in enumerate(
                zip(arrays["dense"], self.dense_static)):
            if from_input:  # computed for the whole chunk before the scan (`_input_dendrites`)
                a = pre[i]
            else:
                p = jax.lax.dynamic_slice(ring[(t - delay) % self.D], (so,), (n_src,))
                if mode == "max":
                    a = jnp.max(e["w"].astype(jnp.int32) * p[None, :], axis=1)
                elif narrow:
                    a = jnp.dot(e["w"], p.astype(jnp.int8), preferred_element_type=jnp.int32)
                else:
                    a = jnp.dot(e["w"], p, preferred_element_type=jnp.int32)
            a = jnp.left_shift(a, exp) if exp > 0 else jnp.right_shift(a, -exp) if exp < 0 else a
            sl = acc[mode][po:po + n_dst]
            acc[mode] = acc[mode].at[po:po + n_dst].set(jnp.maximum(sl, a) if mode == "max" else sl + a)
        acc["max"] = jnp.maximum(acc["max"], 0)  # an empty max is 0, like a missing message
        return acc

    def _step(self, arrays, state: dict, injected: dict, pre: dict) -> tuple:
        """One time step: (new state, overflows per neuron [N], (probes, events of slots S_in..
        [S - S_in] 0/1, active neurons [N] 0/1))."""
        ring, t = state["ring"], state["t"]
        acc = self._dendrites(arrays, ring, t, pre)
        sent, new_regs, overflow, active = {}, [], [], []
        for batch, regs, params in zip(self.batches, state["regs"], arrays["params"]):
            prog = batch[0].program
            ports = {name: jnp.concatenate([acc[mode][self.port_off[(g.name, name)][1]:][:g.size] for g in batch])
                     for name, mode in prog.ports.items()}
            regs, outs, ovf = execute(prog, regs, ports, params)
            new_regs.append({name: regs[name] for name in prog.persistent()})
            act = jnp.zeros(ovf.shape, bool)
            for v in list(ports.values()) + list(outs.values()):
                act = act | (v != 0)
            active.append(act)
            overflow.append(ovf)
            start = 0
            for g in batch:
                for ch, v in outs.items():
                    sent[(g.name, ch)] = v[start:start + g.size]
                start += g.size
        for g in self.net.inputs():
            sent[(g.name, "out")] = injected[g.name]
        flat_sent = jnp.zeros(self.S, jnp.int32)
        for key, off in self.chan_off.items():
            flat_sent = jax.lax.dynamic_update_slice(flat_sent, sent[key], (off,))
        ring = flat_sent[None] if self.D == 1 else ring.at[t % self.D].set(flat_sent)
        probes = {p: sent[tuple(p.rsplit("/", 1))] for p in self.probes}
        overflow = jnp.concatenate(overflow + [jnp.zeros(0, jnp.int32)])
        active = jnp.concatenate(active + [jnp.zeros(0, bool)]).astype(jnp.int32)
        events = (flat_sent[self.S_in:] != 0).astype(jnp.int32)  # host inputs' events: see `_scan`
        return {"regs": new_regs, "ring": ring, "t": t + 1, "due": state["due"]}, overflow, (probes, events, active)

    def _counters(self, arrays, due, events, active, live) -> tuple:
        """Per-step, per-core event counters [T, C] of a chunk, from its recorded events.

        `events [T, S]` (0/1): which message slots sent at each step (padded steps, `live`
        False, count nothing). Counting is an event-driven matmul of the events with per-slot
        costs (`arrays["cost"]`), after the scan: no scatter in the time loop, and work only
        where events occurred. Synaptic ops land `delay` steps after their event: `due [D, C]`
        holds those of earlier chunks that fall on this chunk's first D steps, and the new
        `due` those of this chunk that fall after its last live step.
        """
        C, D, T = self.num_cores, self.D, events.shape[0]
        live = live.astype(jnp.int32)
        per_send = event_matmul_csr(events * live[:, None], *arrays["cost"], (2 + len(self.fan_delays)) * C)
        arrival = jnp.zeros((T + D, C), jnp.int32).at[:D].add(due)
        for j, delay in enumerate(self.fan_delays):
            arrival = arrival.at[delay:delay + T].add(per_send[:, (2 + j) * C:(3 + j) * C])
        act = event_matmul_csr(active * live[:, None], *arrays["neuron_core"], C)
        counters = {"synops": arrival[:T], "messages": per_send[:, :C], "hops": per_send[:, C:2 * C],
                    "active_updates": act, "idle_updates": arrays["neurons"] - act}
        return counters, jax.lax.dynamic_slice_in_dim(arrival, jnp.sum(live), D)

    def _scan(self, arrays, state, inputs, masked: bool = True):
        """One chunk: the input dendrites, the time loop, then the event counters."""
        injected, live = inputs
        pre = self._input_dendrites(arrays, state, injected)

        def step(carry, x):
            state, overflow = carry  # overflows per neuron, summed over the chunk's (live) steps
            injected, pre, live = x
            new, ovf, ys = self._step(arrays, state, injected, pre)
            new = (new, overflow + ovf)
            if not masked:
                return new, ys
            return jax.tree_util.tree_map(lambda a, b: jnp.where(live, a, b), new, carry), ys

        bounds = np.cumsum([0] + [g.size for batch in self.batches for g in batch])
        (end, per_neuron), (probes, events, active) = jax.lax.scan(
            step, (state, jnp.zeros(int(bounds[-1]), jnp.int32)), (injected, pre, live))
        overflow = jnp.asarray([jnp.sum(per_neuron[a:b]) for a, b in zip(bounds[:-1], bounds[1:])], jnp.int32)
        host = [(off, (injected[g] != 0).astype(jnp.int32)) for (g, _), off in self.chan_off.items() if off < self.S_in]
        events = jnp.concatenate([x for _, x in sorted(host, key=lambda h: h[0])] + [events], axis=1)
        counters, end["due"] = self._counters(arrays, state["due"], events, active, live)
        return end, (probes, counters, overflow)

    def _input_dendrites(self, arrays, state: dict, injected: dict) -> dict:
        """Dense synapses fed by host inputs, for every step of a chunk at once.

        The inputs are known before the chunk runs, so their dendritic sums need not wait for
        the time loop: one event-driven matmul per group (`kernels.event_matmul`: work only
        for the events that occur). What arrives in the first `delay` steps was sent before
        the chunk and comes from the message ring.
        """
        pre = {}
        ring, t0 = state["ring"], state["t"]
        for i, (so, n_src, mode, po, n_dst, narrow, delay, exp, from_input) in enumerate(self.dense_static):
            if not from_input:
                continue
            x = injected[self.dense_src[i]]
            before = jax.lax.dynamic_slice_in_dim(ring[(t0 - delay + jnp.arange(delay)) % self.D], so, n_src, axis=1)
            x = jnp.concatenate([before, x])[:x.shape[0]]
            pre[i] = event_matmul(x, arrays["dense"][i]["w"], integer_only=True)
        return pre

    def run(self, inputs: dict, num_steps: Optional[int] = None, state: Optional[dict] = None) -> tuple:
        """Run `num_steps` steps from `state` (default: the initial state); returns (Trace, state).

        `inputs`: input group name -> int array [steps, size] of payloads to inject (missing
        groups inject nothing). Payloads wider than the input group's declared bits are rejected.
        """
        names = {g.name: g for g in self.net.inputs()}
        unknown = sorted(set(inputs) - set(names))
        if unknown:
            raise NeurojaxError(f"no input group named {unknown[0]!r}; inputs are {sorted(names)}")
        if num_steps is None:
            lens = {np.shape(v)[0] for v in inputs.values()}
            if len(lens) != 1:
                raise NeurojaxError("give num_steps, or inputs of one length")
            num_steps = lens.pop()
        if not isinstance(num_steps, int) or num_steps < 1:
            raise NeurojaxError(f"num_steps must be a positive int, got {num_steps!r}")
        chunk = self.chunk_steps
        padded = -(-num_steps // chunk) * chunk
        xs = {}
        for name, g in names.items():
            v = np.asarray(inputs.get(name, np.zeros((num_steps, g.size), np.int64)))
            if v.shape != (num_steps, g.size):
                raise NeurojaxError(f"input {name!r} has shape {v.shape}, expected ({num_steps}, {g.size})")
            if g.kind == "binary" and v.size and (v.min() < 0 or v.max() > 1):
                raise NeurojaxError(f"input {name!r} is binary: inject only 0 (no spike) and 1 (spike)")
            lim = 2 ** (g.bits - 1)
            if g.kind == "graded" and v.size and (v.min() < -lim or v.max() >= lim):
                raise NeurojaxError(f"input {name!r} holds values beyond its {g.bits}-bit payload")
            xs[name] = np.zeros((padded, g.size), np.int32)
            xs[name][:num_steps] = v
        live = np.arange(padded) < num_steps  # padded steps leave the state unchanged
        state = self.initial_state() if state is None else state
        run = self._compiled(masked=padded != num_steps)  # the mask only where a chunk is partial
        chunks = []
        for c in range(padded // chunk):
            sl = slice(c * chunk, (c + 1) * chunk)
            state, ys = run(self.arrays, state, ({k: v[sl] for k, v in xs.items()}, live[sl]))
            chunks.append(ys)
        probes, counters = jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:num_steps], *[c[:2] for c in chunks])
        groups = [g.name for batch in self.batches for g in batch]
        total = np.sum([np.asarray(c[2], np.int64) for c in chunks], axis=0)
        trace = Trace(dict(probes), dict(counters), dict(zip(groups, (int(x) for x in total))))
        return trace, state
