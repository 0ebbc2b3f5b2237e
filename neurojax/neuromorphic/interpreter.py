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
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.isa import INT32_MAX, INT32_MIN, Program
from neurojax.neuromorphic.network import InputGroup, Network
from neurojax.neuromorphic.placement import Placement, place
from neurojax.quant.fixed import bit_length, fit, mul_shift, mul_shift_wide, overflows, saturate, shift_right

COUNTERS = ("synops", "messages", "hops", "active_updates", "idle_updates")


# ----------------------------------------------------------------------------- one program

def _add_overflow(a, b, r):
    """Where int32 `r = a + b` wrapped (operands of one sign, result of the other)."""
    return ((a ^ r) & (b ^ r)) < 0


def execute(prog: Program, regs: dict, ports: dict, params: dict) -> tuple:
    """Run `prog` once for every neuron: returns (registers, channel values, overflows per neuron).

    `regs`, `ports`, `params` map names to int32 arrays of one shape (the neurons); the
    function is pure and traceable.
    """
    regs = dict(regs)
    out = {}
    like = next(iter(regs.values())) if regs else next(iter(ports.values()))
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
        # message slots: every (group, channel) that feeds a synapse group
        self.chan_off, S = {}, 0
        for syn in net.synapses:
            if syn.src not in self.chan_off:
                self.chan_off[syn.src] = S
                S += net.groups[syn.src[0]].size
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
            if syn.sparse and syn.exp == 0:
                coo[mode].append((so + si, po + d, w, np.full(d.shape, syn.delay), dcore))
                continue
            fan_cores = np.unique(dcore) if d.size else np.zeros(1, np.int64)
            fan = np.zeros((src.size, fan_cores.size), np.int32)
            np.add.at(fan, (si, np.searchsorted(fan_cores, dcore)), 1)
            W = np.zeros((dst.size, src.size), np.int64)
            np.add.at(W, (d, si), w)
            narrow = bool(np.abs(W).max(initial=0) < 128 and src.channels()[syn.src[1]][1] <= 8)
            dense.append({"w": jnp.asarray(W, jnp.int8 if narrow else jnp.int32), "fan": jnp.asarray(fan),
                          "fan_cores": jnp.asarray(fan_cores, jnp.int32)})
            from_input = isinstance(src, InputGroup) and mode == "sum"
            dense_static.append((so, src.size, mode, po, dst.size, narrow, syn.delay, syn.exp, from_input))
            self.dense_src.append(src.name)
        self.dense_static = tuple(dense_static)
        arrays = {"dense": dense, "coo": {}}
        for mode, parts in coo.items():
            if parts:
                arrays["coo"][mode] = tuple(jnp.asarray(np.concatenate(x), jnp.int32) for x in zip(*parts))
        arrays["chan_core"] = jnp.asarray(chan_core, jnp.int32)
        arrays["msgs"], arrays["hops"] = jnp.asarray(msgs, jnp.int32), jnp.asarray(hops, jnp.int32)
        arrays["neuron_core"] = jnp.asarray(np.concatenate(
            [pl.core_of[g.name] for batch in self.batches for g in batch] + [np.zeros(0, np.int64)]), jnp.int32)
        arrays["neurons"] = jnp.asarray(pl.neurons, jnp.int32)
        arrays["params"] = [{name: jnp.asarray(np.concatenate([g.param_array(name) for g in batch]))
                             for name in batch[0].program.params} for batch in self.batches]
        self._signature = (
            tuple((id(b[0].program), tuple((g.name, g.size) for g in b)) for b in self.batches),
            tuple(sorted(self.chan_off.items())), tuple(sorted(self.port_off.items())), self.S, self.D,
            tuple(sorted(self.P.items())), C, self.dense_static,
            tuple((m, int(a[0].shape[0])) for m, a in sorted(arrays["coo"].items())),
            tuple((g.name, g.size) for g in net.inputs()), self.probes)
        return arrays

    def initial_state(self) -> dict:
        """Registers (initial values of every group), an empty message ring buffer, step 0."""
        regs = []
        for batch in self.batches:
            regs.append({name: jnp.asarray(np.concatenate([
                np.broadcast_to(np.asarray(g.init.get(name, 0), np.int32), (g.size,)) for g in batch]))
                for name in batch[0].program.registers})
        return {"regs": regs, "ring": jnp.zeros((self.D, self.S), jnp.int32), "t": jnp.int32(0)}

    def _dendrites(self, arrays, ring, t, pre) -> tuple:
        """Flat port accumulators and the synaptic ops per core of the messages delivered at step t."""
        C = self.num_cores
        acc = {"sum": jnp.zeros(self.P["sum"], jnp.int32), "max": jnp.zeros(self.P["max"], jnp.int32)}
        synops = jnp.zeros(C, jnp.int32)
        flat = ring.reshape(-1)
        for mode, (src, dst, w, delay, core) in arrays["coo"].items():
            vals = flat[((t - delay) % self.D) * self.S + src]
            contrib = w * vals
            if mode == "sum":
                acc[mode] = acc[mode] + jax.ops.segment_sum(contrib, dst, num_segments=self.P[mode])
            else:
                acc[mode] = jnp.maximum(acc[mode], jax.ops.segment_max(contrib, dst, num_segments=self.P[mode]))
            synops = synops + jax.ops.segment_sum((vals != 0).astype(jnp.int32), core, num_segments=C)
        for i, (e, (so, n_src, mode, po, n_dst, narrow, delay, exp, from_input)) in enumerate(
                zip(arrays["dense"], self.dense_static)):
            if from_input:  # computed for the whole run before the scan (`_input_dendrites`)
                a, ops = pre[i]
                a = jnp.left_shift(a, exp) if exp > 0 else jnp.right_shift(a, -exp) if exp < 0 else a
                sl = acc[mode][po:po + n_dst]
                acc[mode] = acc[mode].at[po:po + n_dst].set(sl + a)
                synops = synops.at[e["fan_cores"]].add(ops)
                continue
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
            synops = synops.at[e["fan_cores"]].add((p != 0).astype(jnp.int32) @ e["fan"])
        acc["max"] = jnp.maximum(acc["max"], 0)  # an empty max is 0, like a missing message
        return acc, synops

    def _step(self, arrays, state: dict, injected: dict, pre: dict) -> tuple:
        C = self.num_cores
        ring, t = state["ring"], state["t"]
        acc, synops = self._dendrites(arrays, ring, t, pre)
        sent, new_regs, overflow, active = {}, [], [], []
        for batch, regs, params in zip(self.batches, state["regs"], arrays["params"]):
            prog = batch[0].program
            ports = {name: jnp.concatenate([acc[mode][self.port_off[(g.name, name)][1]:][:g.size] for g in batch])
                     for name, mode in prog.ports.items()}
            regs, outs, ovf = execute(prog, regs, ports, params)
            new_regs.append(regs)
            act = jnp.zeros(ovf.shape, bool)
            for v in list(ports.values()) + list(outs.values()):
                act = act | (v != 0)
            active.append(act)
            start = 0
            for g in batch:
                overflow.append(jnp.sum(ovf[start:start + g.size]))
                for ch, v in outs.items():
                    sent[(g.name, ch)] = v[start:start + g.size]
                start += g.size
        for g in self.net.inputs():
            sent[(g.name, "out")] = injected[g.name]
        flat_sent = jnp.zeros(self.S, jnp.int32)
        for key, off in self.chan_off.items():
            flat_sent = jax.lax.dynamic_update_slice(flat_sent, sent[key], (off,))
        events = (flat_sent != 0).astype(jnp.int32)
        counters = {
            "synops": synops,
            "messages": jax.ops.segment_sum(events * arrays["msgs"], arrays["chan_core"], num_segments=C),
            "hops": jax.ops.segment_sum(events * arrays["hops"], arrays["chan_core"], num_segments=C),
        }
        active = jnp.concatenate(active + [jnp.zeros(0, bool)]).astype(jnp.int32)
        counters["active_updates"] = jax.ops.segment_sum(active, arrays["neuron_core"], num_segments=C)
        counters["idle_updates"] = arrays["neurons"] - counters["active_updates"]
        ring = ring.at[t % self.D].set(flat_sent)
        probes = {p: sent[tuple(p.rsplit("/", 1))] for p in self.probes}
        overflow = jnp.stack(overflow) if overflow else jnp.zeros(0, jnp.int32)
        return {"regs": new_regs, "ring": ring, "t": t + 1}, (probes, counters, overflow)

    def _scan(self, arrays, state, inputs, masked: bool = True):
        def step(state, x):
            injected, pre, live = x
            new, ys = self._step(arrays, state, injected, pre)
            if not masked:
                return new, ys
            return jax.tree_util.tree_map(lambda a, b: jnp.where(live, a, b), new, state), ys

        return jax.lax.scan(step, state, inputs)

    def _input_weights(self, i: int, e: dict) -> tuple:
        """(max |w|, w.T as float32) of dense synapse group i, converted once per simulator."""
        cache = self.__dict__.setdefault("_weights_t", {})
        if i not in cache:
            w = np.asarray(e["w"])
            cache[i] = (float(np.abs(w).max(initial=0)), jnp.asarray(w.T, jnp.float32))
        return cache[i]

    def _input_dendrites(self, state: dict, xs: dict, steps: int) -> dict:
        """Dense synapses fed by host inputs, for every step of the run at once (one matmul each).

        The inputs are known before the run, so their dendritic sums need not wait for the
        scan; messages sent before this run (delay > step) come from the state's ring buffer.
        Float32 is used only where every partial sum is an integer below 2**24 (exact).
        """
        pre = {}
        ring = None
        t0 = int(state["t"])
        for i, (e, (so, n_src, mode, po, n_dst, narrow, delay, exp, from_input)) in enumerate(
                zip(self.arrays["dense"], self.dense_static)):
            if not from_input:
                continue
            x = xs[self.dense_src[i]][:steps]
            if ring is None:
                ring = np.asarray(state["ring"])
            before = np.stack([ring[(t0 - delay + k) % self.D, so:so + n_src] for k in range(delay)])
            x = np.concatenate([before, x])[:steps]
            w_max, w_t = self._input_weights(i, e)
            bound = w_max * max(float(x.max(initial=0)), -float(x.min(initial=0))) * n_src
            if bound < 2 ** 24:
                a = (jnp.asarray(x, jnp.float32) @ w_t).astype(jnp.int32)
            else:
                a = jnp.dot(jnp.asarray(x, jnp.int32), w_t.astype(jnp.int32), preferred_element_type=jnp.int32)
            ops = (jnp.asarray(x != 0, jnp.float32) @ e["fan"].astype(jnp.float32)).astype(jnp.int32)
            pre[i] = (a, ops)
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
        pre = self._input_dendrites(state, xs, padded)
        run = self._compiled(masked=padded != num_steps)  # the mask only where a chunk is partial
        chunks = []
        for c in range(padded // chunk):
            sl = slice(c * chunk, (c + 1) * chunk)
            state, ys = run(self.arrays, state, ({k: jnp.asarray(v[sl]) for k, v in xs.items()},
                                                 {i: (a[sl], o[sl]) for i, (a, o) in pre.items()}, jnp.asarray(live[sl])))
            chunks.append(ys)
        probes, counters, overflow = jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:num_steps], *chunks)
        groups = [g.name for batch in self.batches for g in batch]
        total = np.asarray(overflow).sum(axis=0)
        trace = Trace(dict(probes), dict(counters), dict(zip(groups, (int(x) for x in total))))
        return trace, state
