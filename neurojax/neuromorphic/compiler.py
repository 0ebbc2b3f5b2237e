"""Compile the integer-only MatMul-free LM onto emulated neuromorphic cores.

Input: an integer model (anything with `.spec.model`, `.spec.quant` and `.params` in the
layout of `neurojax.fixedpoint.convert.IntModel`; only its data is read, none of its code).
Output: a `CompiledModel`, a pipelined `Network` of neuron groups and synapse groups.

Mapping (one token flows through the pipeline one step per stage):
- Vector stages hold one neuron per channel of an activation; scalar stages are one neuron
  per token that compute per-token quantities (block-floating-point shifts, 1/sqrt of the sum
  of squares, 1/max, output rescale factors) from reductions (max- or sum-accumulated
  synapses of weight 1) and broadcast them back (1 -> N synapses).
- A BitLinear is: [norm shift of its input] -> [RMSNorm weight, second norm shift] ->
  per-projection max and sum-of-squares reductions -> 8-bit activation codes -> ternary
  synapses (the only matrix; codes in 8-bit synapse mantissas) -> rescale in the output
  neurons, fused with what follows (SiLU, sigmoid and forget-gate floor, the g-norm product,
  the residual add).
- The MLGRU state h lives in a register of the recurrence neurons, updated only on steps that
  carry a token (a binary "valid" spike travels with the token).
- The embedding row is injected by the host (a table read, as on Loihi's embedded cores);
  logits leave the last stage as graded spikes.
The norm reductions carry products of two 15-bit activations (30 bits), so the mapping needs
wider graded spikes than Lava's 24 (`chip.payload_bits >= 30`; Loihi 2 allows 32): a clear
error otherwise.
"""
import dataclasses
import functools

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic import microcode as mc
from neurojax.neuromorphic.chip import ChipConfig
from neurojax.neuromorphic.graph import Edge, Graph
from neurojax.neuromorphic.isa import Program, ProgramBuilder
from neurojax.neuromorphic.placement import Placement, place
from neurojax.quant.fixed import sum_sq_shift
from neurojax.quant.intmath import sigmoid_lut

NORM_BITS = 15  # block-floating-point activations hold |v| < 2**14
HA = mc.HALF_AWAY
RESIDUAL_CHANNEL = "x"
PAYLOAD_BITS_NEEDED = 2 * NORM_BITS  # the widest message: a product of two normalized activations


@dataclasses.dataclass
class Tap:
    """Where an integer-model tap appears: groups/channels concatenated, at step depth + token."""

    sources: tuple  # ("group/channel", ...)
    depth: int


@dataclasses.dataclass
class CompiledModel:
    network: object  # Network
    chip: ChipConfig
    placement: Placement
    taps: dict  # integer-model tap name -> Tap
    embed: np.ndarray  # int [V, d]: the host's embedding table
    depth: int  # pipeline depth: steps from injecting a token to its logits
    d_model: int
    num_layers: int

    @property
    def steps_per_token_generate(self) -> int:
        """Autoregressive: the next token is injected the step after the previous logits leave."""
        return self.depth + 1

    def report(self) -> dict:
        net = self.network
        return {**self.placement.summary(), "neuron_groups": len(net.neuron_groups()),
                "synapse_groups": len(net.synapses),
                "synapses": int(sum(s.nnz() for s in net.synapses)),
                "pipeline_depth_steps": self.depth,
                "steps_per_token_prefill": 1, "steps_per_token_generate": self.steps_per_token_generate,
                "max_program_length": max(len(g.program.instrs) for g in net.neuron_groups())}


# ----------------------------------------------------------------------------- programs

def _send_with_complement(b: ProgramBuilder, reg: str, channel: str = RESIDUAL_CHANNEL) -> None:
    """Send `reg` and its complement ~reg (the second feeds max reductions of -x)."""
    b.channel(channel)
    b.channel("n" + channel)
    b.send(channel, reg)
    with b.scratch():
        t = b.tmp(b._regs[reg].bits)
        b.not_(t, reg)
        b.send("n" + channel, t)


@functools.lru_cache(maxsize=None)
def forward_program(bits: int) -> Program:
    """Receive a vector and send it on (with its complement): the embedding's entry stage."""
    b = ProgramBuilder(f"forward{bits}")
    b.port("x")
    b.reg("v", bits)
    b.mov("v", "x")
    _send_with_complement(b, "v")
    return b.build()


def _shift_from_extremes(b: ProgramBuilder) -> str:
    """Ports pm / nm (max-reduced x and ~x of a vector) -> the register holding its norm shift."""
    b.port("pm", "max")
    b.port("nm", "max")
    return mc.norm_shift(b, "pm", "nm", NORM_BITS)


@functools.lru_cache(maxsize=None)
def norm_scalar_program() -> Program:
    """Per-token block-floating-point shift of a vector from its max and max-of-complement."""
    b = ProgramBuilder("norm_shift")
    k = _shift_from_extremes(b)
    b.channel("k")
    b.send("k", k)
    return b.build()


@functools.lru_cache(maxsize=None)
def prenorm_program() -> Program:
    """v0 = round(x / 2**k); send v0 and the extremes of v0 * norm (the folded block RMSNorm weight)."""
    b = ProgramBuilder("prenorm")
    b.port("x")
    b.port("k")
    b.param("w", 12)
    b.reg("v", NORM_BITS)
    b.reg("y", 27)
    b.shr("v", "x", "k", mode=HA)
    b.mul("y", "v", "w")
    b.channel("v")
    b.send("v", "v")
    _send_with_complement(b, "y", "y")
    return b.build()


@functools.lru_cache(maxsize=None)
def input_program(prenorm: bool, num_proj: int, sq_shift: int) -> Program:
    """The normalized BitLinear input v: squares for 1/rms, extremes of v * norm_p per projection."""
    b = ProgramBuilder(f"bl_input_{int(prenorm)}_{num_proj}_{sq_shift}")
    b.port("x")
    b.port("k")
    b.reg("v", NORM_BITS)
    if prenorm:
        b.param("w", 12)
        y, v0 = b.reg("y0", 27), b.reg("v0", NORM_BITS)
        b.mov(v0, "x")
        b.mul(y, v0, "w")
        b.shr("v", y, "k", mode=HA)
    else:
        b.shr("v", "x", "k", mode=HA)
    b.channel("v")
    b.send("v", "v")
    sq = b.reg("sq", 2 * NORM_BITS - 1)
    with b.scratch():
        v2 = b.tmp(NORM_BITS)
        b.shr(v2, "v", sq_shift, mode=HA)
        b.mul(sq, v2, v2)
    b.channel("sq")
    b.send("sq", sq)
    for p in range(num_proj):
        b.param(f"n{p}", 12)
        y = b.reg(f"y{p + 1}", 27)
        b.mul(y, "v", f"n{p}")
        _send_with_complement(b, y, f"y{p}")
    return b.build()


@functools.lru_cache(maxsize=None)
def inv_rms_program() -> Program:
    """1/sqrt of the per-token sum of squares, as a 15-bit mantissa and an exponent."""
    b = ProgramBuilder("inv_rms")
    b.port("sq")
    m, e = mc.inv_sqrt(b, "sq")
    b.channel("mi")
    b.channel("ei")
    b.send("mi", m)
    b.send("ei", e)
    return b.build()


@functools.lru_cache(maxsize=None)
def code_scale_program() -> Program:
    """From the extremes of y = v * norm: its shift kz, m = max|z| and 1/m for the activation codes."""
    b = ProgramBuilder("code_scale")
    k = _shift_from_extremes(b)
    m = b.reg("m", 16)
    with b.scratch():
        t = b.tmp()
        b.add(t, "nm", 1)
        b.max(t, t, "pm")
        b.shr(t, t, k, mode=HA)
        b.max(m, t, 1)
    rm, re = mc.reciprocal(b, m)
    for ch, reg in (("kz", k), ("rm", rm), ("re", re), ("m", m)):
        b.channel(ch)
        b.send(ch, reg)
    return b.build()


@functools.lru_cache(maxsize=None)
def codes_program(act_bits: int) -> Program:
    """8-bit activation codes q = clip(round(qmax * z / m)) with z = round(v * norm / 2**kz)."""
    qmax = 2 ** (act_bits - 1) - 1
    b = ProgramBuilder(f"codes{act_bits}")
    for p in ("v", "kz", "rm", "re"):
        b.port(p)
    b.param("w", 12)
    q = b.reg("q", act_bits)
    with b.scratch():
        v, y, rm, sh, t = b.tmp(NORM_BITS), b.tmp(27), b.tmp(17), b.tmp(8), b.tmp()
        b.mov(v, "v")
        b.mul(y, v, "w")
        b.shr(y, y, "kz", mode=HA)
        b.mov(rm, "rm")
        b.sub(sh, "re", mc.MANTISSA_BITS - 1)
        b.mulsh(t, y, rm, sh, mode=HA)
        b.mulsh(t, t, qmax, mc.MANTISSA_BITS - 1, mode=HA)
        b.clip(q, t, -qmax - 1, qmax)
    b.channel("q")
    b.send("q", q)
    return b.build()


@functools.lru_cache(maxsize=None)
def out_scale_program() -> Program:
    """Per-token output rescale of a BitLinear: (max|z| / rms) * static multiplier, as mantissa and shift."""
    b = ProgramBuilder("out_scale")
    for p in ("m", "kz", "mi", "ei"):
        b.port(p)
    b.param("mult", 16)
    b.param("shift", 8)
    b.param("ksq", 8)
    p2 = b.reg("p2", 17)
    sh = b.reg("sh", 10)
    with b.scratch():
        m, mi, p1 = b.tmp(16), b.tmp(16), b.tmp()
        b.mov(m, "m")
        b.mov(mi, "mi")
        b.mul(p1, m, mi)
        a, k1 = mc.scalar_norm(b, p1)
        b.mulsh(p1, a, "mult", 0, mode=HA)
        a, k2 = mc.scalar_norm(b, p1)
        b.mov(p2, a)
        b.add(sh, "ksq", "ei")
        b.add(sh, sh, "shift")
        b.sub(sh, sh, "kz")
        b.sub(sh, sh, k1)
        b.sub(sh, sh, k2)
    b.channel("p2")
    b.channel("sh")
    b.send("p2", p2)
    b.send("sh", sh)
    return b.build()


def _rescale_acc(b: ProgramBuilder, dst: str, bits: int) -> str:
    """dst = the BitLinear output: ternary accumulator times the per-token scale."""
    for p in ("acc", "p2", "sh"):
        b.port(p)
    b.reg(dst, bits)
    with b.scratch():
        mant = b.tmp(17)
        b.mov(mant, "p2")
        mc.apply_scale(b, dst, "acc", mant, "sh", bits)
    return dst


# what follows each projection's rescale, fused into its output neurons
OUTPUT_KINDS = {"i": "silu", "gate": "silu", "f": "forget", "g": "gnorm", "up": "plain", "o": "residual",
                "down": "residual", "logits": "logits"}


@functools.lru_cache(maxsize=None)
def output_program(kind: str, bits: int, gate_frac: int, lut_in_frac: int) -> Program:
    """The output neurons of a projection (value on channel "y"), with what follows fused in."""
    lut = sigmoid_lut(lut_in_frac, gate_frac)
    b = ProgramBuilder(f"out_{kind}")
    y = _rescale_acc(b, "y", bits)
    if kind in ("plain", "logits"):  # the value itself (with its complement for a following norm)
        if kind == "plain":
            _send_with_complement(b, y, "y")
        else:
            b.channel("y")
            b.send("y", y)
        return b.build()
    b.channel("y")
    b.send("y", y)  # the integer model's tap of this projection
    if kind == "silu":
        b.param("lut_m", 16)
        b.param("lut_s", 8)
        s = b.reg("s", bits)
        with b.scratch():
            b.mov(s, mc.silu(b, y, "lut_m", "lut_s", lut, gate_frac, bits))
        _send_with_complement(b, s, "s")
    elif kind == "forget":  # sigmoid, then the layer's lower bound
        b.param("lb", 17)
        f = b.reg("fg", 17)
        with b.scratch():
            g = mc.sigmoid(b, y, 1 << 14, 14, lut)
            t = b.tmp(17)
            b.sub(t, 1 << gate_frac, "lb")
            b.mulsh(t, t, g, gate_frac, mode=HA)
            b.add(f, "lb", t)
        b.channel("fg")
        b.send("fg", f)
    elif kind == "gnorm":  # output gate times the g-norm weight
        b.param("w", 12)
        gg = b.reg("gg", 28)
        b.mul(gg, y, "w")
        _send_with_complement(b, gg, "gg")
    elif kind == "residual":  # the earlier stream rescaled, plus this output
        b.port("r")
        b.param("res_m", 16)
        b.param("res_s", 8)
        out = b.reg("out", bits)
        with b.scratch():
            r = b.tmp(bits)
            mc.apply_scale(b, r, "r", "res_m", "res_s", bits)
            b.add(out, r, y)
        _send_with_complement(b, out)
    else:
        raise NeurojaxError(f"unknown output kind {kind!r}")
    return b.build()


@functools.lru_cache(maxsize=None)
def recurrence_program(state_bits: int, gate_frac: int, lut_in_frac: int) -> Program:
    """MLGRU: c = silu(i) * (1 - f) rescaled to h's scale; h = sat(round(f * h) + c) on valid steps."""
    lut = sigmoid_lut(lut_in_frac, gate_frac)
    b = ProgramBuilder("mlgru")
    for p in ("fg", "si", "valid"):
        b.port(p)
    for p in ("c_m", "h_m"):
        b.param(p, 16)
    for p in ("c_s", "h_s"):
        b.param(p, 8)
    h = b.reg("h", state_bits)
    sh = b.reg("sh", state_bits)
    with b.scratch():
        f, t, c, hn = b.tmp(17), b.tmp(17), b.tmp(), b.tmp(state_bits)
        b.mov(f, "fg")
        b.sub(t, 1 << gate_frac, f)
        b.mulsh(c, "si", t, gate_frac, mode=HA)
        mc.apply_scale(b, hn, c, "c_m", "c_s", state_bits)
        b.mulsh(c, h, f, gate_frac, mode=HA)
        b.add(hn, c, hn)
        b.sel(h, "valid", hn, h)
    b.channel("h")
    b.send("h", h)
    with b.scratch():
        b.mov(sh, mc.silu(b, h, "h_m", "h_s", lut, gate_frac, state_bits))
    _send_with_complement(b, sh, "sh")
    return b.build()


@functools.lru_cache(maxsize=None)
def product_program(a_bits: int, b_bits: int) -> Program:
    """o = norm(a) * norm(b) elementwise, from two vectors and their per-token shifts."""
    b = ProgramBuilder(f"product_{a_bits}_{b_bits}")
    for p in ("a", "ka", "b", "kb"):
        b.port(p)
    o = b.reg("o", 2 * NORM_BITS)
    with b.scratch():
        x, y = b.tmp(NORM_BITS), b.tmp(NORM_BITS)
        b.shr(x, "a", "ka", mode=HA)
        b.shr(y, "b", "kb", mode=HA)
        b.mul(o, x, y)
    _send_with_complement(b, o, "o")
    return b.build()


# ----------------------------------------------------------------------------- the graph

def _reduce_norm(g: Graph, name: str, src: str, ch: str) -> str:
    """A scalar stage computing the norm shift of `src`'s channel `ch` (sent with its complement)."""
    return g.group(name, 1, norm_scalar_program(),
                   [Edge(src, ch, "pm", "reduce"), Edge(src, "n" + ch, "nm", "reduce")])


def _bitlinear(g: Graph, prefix: str, src: str, ch: str, projections: dict, qc, prenorm=None) -> dict:
    """Build a BitLinear (or several sharing one input); returns {role: output group}.

    `projections`: role -> {"p": the projection's integer params, "bits": output width,
    "outputs": [(output role, row slice of the codes)], optionally "edges": {output role: extra
    input edges} and "params": {output role: extra group params}}. `prenorm` folds a preceding
    RMSNorm weight into the input.
    """
    d = g.net.groups[src].size
    s_a = _reduce_norm(g, f"{prefix}/in_shift", src, ch)
    x_src, x_ch = src, ch
    if prenorm is not None:
        pre = g.group(f"{prefix}/prenorm", d, prenorm_program(),
                      [Edge(src, ch, "x"), Edge(s_a, "k", "k", "broadcast")], {"w": prenorm})
        s_a = _reduce_norm(g, f"{prefix}/prenorm_shift", pre, "y")
        x_src, x_ch = pre, "v"
    roles = list(projections)
    params = {f"n{i}": projections[r]["p"]["norm"] for i, r in enumerate(roles)}
    if prenorm is not None:
        params["w"] = prenorm
    inp = g.group(f"{prefix}/input", d, input_program(prenorm is not None, len(roles), sum_sq_shift(d, NORM_BITS)),
                  [Edge(x_src, x_ch, "x"), Edge(s_a, "k", "k", "broadcast")], params)
    rms = g.group(f"{prefix}/inv_rms", 1, inv_rms_program(), [Edge(inp, "sq", "sq", "reduce")])
    outs = {}
    for i, role in enumerate(roles):
        spec = projections[role]
        p = spec["p"]
        cs = g.group(f"{prefix}/{role}/code_scale", 1, code_scale_program(),
                     [Edge(inp, f"y{i}", "pm", "reduce"), Edge(inp, f"ny{i}", "nm", "reduce")])
        codes = g.group(f"{prefix}/{role}/codes", d, codes_program(qc.act_bits),
                        [Edge(inp, "v", "v")] + [Edge(cs, c, c, "broadcast") for c in ("kz", "rm", "re")],
                        {"w": p["norm"]})
        sc = g.group(f"{prefix}/{role}/out_scale", 1, out_scale_program(),
                     [Edge(cs, "m", "m"), Edge(cs, "kz", "kz"), Edge(rms, "mi", "mi"), Edge(rms, "ei", "ei")],
                     {"mult": int(p["mult"]), "shift": int(p["shift"]), "ksq": sum_sq_shift(d, NORM_BITS)})
        w = np.asarray(p["codes"], np.int8)
        for out_role, rows in spec["outputs"]:
            prog = output_program(OUTPUT_KINDS[out_role], spec["bits"], qc.gate_frac, qc.lut_in_frac)
            edges = [Edge(codes, "q", "acc", "dense", w[rows]), Edge(sc, "p2", "p2", "broadcast"),
                     Edge(sc, "sh", "sh", "broadcast")] + spec.get("edges", {}).get(out_role, [])
            outs[out_role] = g.group(f"{prefix}/{out_role}", w[rows].shape[0], prog, edges,
                                     spec.get("params", {}).get(out_role, {}))
    return outs


def _k(layer: dict, name: str) -> tuple:
    m, s = (int(v) for v in np.asarray(layer["k"][name]))
    return m, s


def _block(g: Graph, l: int, p: dict, x: str, qc, valid: str) -> tuple:
    """One MatMul-free block; returns (output group, {tap: (sources, group)})."""
    pre = f"layers_{l}"
    d = g.net.groups[x].size
    im, is_ = _k(p, "i_lut")
    one = slice(None)
    attn = _bitlinear(g, f"{pre}/attn", x, RESIDUAL_CHANNEL, {
        "i": {"p": p["i"], "bits": qc.mid_bits, "outputs": [("i", one)], "params": {"i": {"lut_m": im, "lut_s": is_}}},
        "f": {"p": p["f"], "bits": qc.mid_bits, "outputs": [("f", one)], "params": {"f": {"lb": p["lb"]}}},
        "g": {"p": p["g"], "bits": qc.mid_bits, "outputs": [("g", one)], "params": {"g": {"w": p["g_norm"]}}},
    }, qc, prenorm=p["attn_norm"])
    cm, cs = _k(p, "c_to_h")
    hm, hs = _k(p, "h_lut")
    rec = g.group(f"{pre}/attn/mlgru", d, recurrence_program(qc.state_bits, qc.gate_frac, qc.lut_in_frac),
                  [Edge(attn["f"], "fg", "fg"), Edge(attn["i"], "s", "si"), Edge(valid, "out", "valid", "broadcast")],
                  {"c_m": cm, "c_s": cs, "h_m": hm, "h_s": hs})
    kg = _reduce_norm(g, f"{pre}/attn/g_shift", attn["g"], "gg")
    kh = _reduce_norm(g, f"{pre}/attn/h_shift", rec, "sh")
    prod = g.group(f"{pre}/attn/gated", d, product_program(28, qc.state_bits),
                   [Edge(attn["g"], "gg", "a"), Edge(kg, "k", "ka", "broadcast"),
                    Edge(rec, "sh", "b"), Edge(kh, "k", "kb", "broadcast")])
    rm, rs = _k(p, "in_to_r")
    # The o_proj input norm(o) is already < 2**14 in magnitude, so its own norm shift is 0: the
    # product's shift stage doubles as o_proj's input stage (no extra reduction round trip).
    o = _bitlinear_from_product(g, f"{pre}/attn/o", prod, "o", p["o"], qc, qc.residual_bits, "o",
                                [Edge(x, RESIDUAL_CHANNEL, "r")], {"res_m": rm, "res_s": rs})
    gate_rows, up_rows = slice(0, p["gate"]["codes"].shape[0] // 2), slice(p["gate"]["codes"].shape[0] // 2, None)
    gm, gs = _k(p, "gate_lut")
    mlp = _bitlinear(g, f"{pre}/mlp", o, RESIDUAL_CHANNEL, {
        "gate": {"p": p["gate"], "bits": qc.mid_bits, "outputs": [("gate", gate_rows), ("up", up_rows)],
                 "params": {"gate": {"lut_m": gm, "lut_s": gs}}},
    }, qc, prenorm=p["mlp_norm"])
    ks = _reduce_norm(g, f"{pre}/mlp/gate_shift", mlp["gate"], "s")
    ku = _reduce_norm(g, f"{pre}/mlp/up_shift", mlp["up"], "y")
    prod2 = g.group(f"{pre}/mlp/gated", g.net.groups[mlp["gate"]].size, product_program(qc.mid_bits, qc.mid_bits),
                    [Edge(mlp["gate"], "s", "a"), Edge(ks, "k", "ka", "broadcast"),
                     Edge(mlp["up"], "y", "b"), Edge(ku, "k", "kb", "broadcast")])
    om, os_ = _k(p, "r_to_out")
    down = _bitlinear(g, f"{pre}/mlp/down_in", prod2, "o", {
        "down": {"p": p["down"], "bits": qc.residual_bits, "outputs": [("down", one)],
                 "edges": {"down": [Edge(o, RESIDUAL_CHANNEL, "r")]}, "params": {"down": {"res_m": om, "res_s": os_}}},
    }, qc)
    taps = {f"{pre}/attn/i": ((f"{attn['i']}/y",), attn["i"]), f"{pre}/attn/f": ((f"{attn['f']}/y",), attn["f"]),
            f"{pre}/attn/g": ((f"{attn['g']}/y",), attn["g"]), f"{pre}/attn/h": ((f"{rec}/h",), rec),
            f"{pre}/resid_mid": ((f"{o}/{RESIDUAL_CHANNEL}",), o),
            f"{pre}/mlp/gate_up": ((f"{mlp['gate']}/y", f"{mlp['up']}/y"), mlp["gate"]),
            f"{pre}/resid_out": ((f"{down['down']}/{RESIDUAL_CHANNEL}",), down["down"])}
    return down["down"], taps


def _bitlinear_from_product(g: Graph, prefix: str, prod: str, ch: str, p: dict, qc, bits: int, role: str,
                            extra_edges: list, extra_params: dict) -> str:
    """A BitLinear whose input is a product of two normalized vectors: one norm shift, no RMS pre-norm."""
    return _bitlinear(g, prefix, prod, ch, {
        role: {"p": p, "bits": bits, "outputs": [(role, slice(None))], "edges": {role: extra_edges},
               "params": {role: extra_params}},
    }, qc)[role]


def compile_model(int_model, chip: ChipConfig) -> CompiledModel:
    """Map an integer MatMul-free LM onto `chip`; raises `NeurojaxError` naming what does not fit."""
    spec = int_model.spec
    cfg, qc = spec.model, spec.quant
    if chip.payload_bits < PAYLOAD_BITS_NEEDED:
        raise NeurojaxError(f"the MatMul-free mapping sends {PAYLOAD_BITS_NEEDED}-bit graded spikes (norm "
                            f"reductions of products of two 15-bit activations); the chip's payload is "
                            f"{chip.payload_bits} bits: use a chip with payload_bits >= {PAYLOAD_BITS_NEEDED} "
                            "(e.g. chip 'loihi2_32bit')")
    params = int_model.params
    g = Graph(chip)
    d = cfg.d_model
    g.input("embed_in", d, qc.residual_bits)
    valid = g.input("valid", 1, 1, "binary")
    x = g.group("embed", d, forward_program(qc.residual_bits), [Edge("embed_in", "out", "x")])
    taps = {"embed": ((f"{x}/{RESIDUAL_CHANNEL}",), x)}
    for l, layer in enumerate(params["layers"]):
        x, layer_taps = _block(g, l, layer, x, qc, valid)
        taps.update(layer_taps)
    head = _bitlinear(g, "head", x, RESIDUAL_CHANNEL, {
        "logits": {"p": params["head"], "bits": qc.logit_bits, "outputs": [("logits", slice(None))]},
    }, qc, prenorm=params["final_norm"])["logits"]
    taps["logits"] = ((f"{head}/y",), head)
    net = g.net
    net.validate(chip)
    placement = place(net, chip)
    return CompiledModel(net, chip, placement, {k: Tap(src, g.depth[grp]) for k, (src, grp) in taps.items()},
                         np.asarray(params["embed"]), g.depth[head], d, cfg.num_layers)
