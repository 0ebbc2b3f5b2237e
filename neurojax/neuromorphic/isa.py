"""The neuron microcode: a small integer instruction set, programs, and a validating builder.

A program runs once per neuron per time step over that neuron's registers. Operands are
register names, input-port names (the dendritic sums or maxima of this step), per-neuron
parameter names (read-only constants of the neuron group) or Python-int immediates.

Semantics (every value is a signed integer; the interpreter holds it in int32):
- A write to a register brings the result into the register's declared width with the
  register's overflow policy ("saturate" or "wrap") and counts one overflow per neuron whose
  result did not fit. Add / sub / neg / abs results that leave int32 are also counted.
- Rounding of right shifts and scaled products is named per instruction (`quant.fixed.ROUNDING`).
- Shift amounts held in registers are clamped to [0, 31] (`shr`, `shl`) or [0, 62] (`mulsh`).

Instruction set (`d` destination register; `a`, `b`, `c` operands):
    mov d, a            d = a
    add d, a, b         d = a + b
    sub d, a, b         d = a - b
    mul d, a, b         d = a * b            (widths of a and b must add to <= 32)
    mulsh d, a, b, n    d = round(a * b / 2**n), exact   (|b| <= 2**16: b at most 17 bits; the
                        rounded result must fit int32: beyond it wraps, uncounted)
    shr d, a, n         d = round(a / 2**n)
    shl d, a, n         d = a * 2**n
    and d, a, b         bitwise and;  not d, a: bitwise complement (-a - 1)
    neg d, a;  abs d, a
    min d, a, b;  max d, a, b
    clip d, a, lo, hi   d = min(max(a, lo), hi)
    sat d, a, bits      saturate to a signed `bits`-wide range (counted as an overflow)
    bitlen d, a         number of bits of a >= 0 (0 for 0)
    lt / le / gt / ge / eq / ne d, a, b      d = 1 if the comparison holds else 0
    sel d, c, a, b      d = a if c != 0 else b
    lut d, T, i         d = T[clip(i, 0, len(T) - 1)] for a program table T
    send ch, a          output channel `ch` carries a this step (graded: the payload, sent only
                        when non-zero; binary: a spike when a != 0)
"""
import contextlib
import dataclasses
from typing import Optional, Union

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.quant.fixed import OVERFLOW, ROUNDING

Operand = Union[str, int]

# op -> (number of source operands, needs a rounding mode)
OPS = {
    "mov": (1, False), "add": (2, False), "sub": (2, False), "mul": (2, False), "mulsh": (3, True),
    "shr": (2, True), "shl": (2, False), "and": (2, False), "not": (1, False), "neg": (1, False),
    "abs": (1, False), "min": (2, False), "max": (2, False), "clip": (3, False), "sat": (2, False),
    "bitlen": (1, False), "lt": (2, False), "le": (2, False), "gt": (2, False), "ge": (2, False),
    "eq": (2, False), "ne": (2, False), "sel": (3, False), "lut": (2, False), "send": (1, False),
}
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
ACCUMULATE = ("sum", "max")
CHANNEL_KINDS = ("graded", "binary")
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1
PORT_BITS = 32  # dendritic accumulators are int32


class AssemblyError(NeurojaxError):
    """A program that cannot run as written: the message names the program and instruction."""


@dataclasses.dataclass(frozen=True)
class Register:
    name: str
    bits: int
    overflow: str = "saturate"


@dataclasses.dataclass(frozen=True)
class Instr:
    op: str
    dst: str  # a register, or the channel of a `send`
    srcs: tuple  # operands; for `lut` the first is the table's name
    mode: Optional[str] = None  # rounding of `shr` / `mulsh`

    def __str__(self):
        args = ", ".join(str(s) for s in (self.dst,) + self.srcs)
        return f"{self.op}{'.' + self.mode if self.mode else ''} {args}"


def imm_bits(v: int) -> int:
    """Signed width of an immediate."""
    v = int(v)
    return (v.bit_length() if v >= 0 else (-v - 1).bit_length()) + 1


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A validated neuron program (build it with `ProgramBuilder`)."""

    name: str
    instrs: tuple
    registers: dict  # name -> Register (`persistent()` ones carry state across steps)
    ports: dict  # name -> accumulate mode ("sum" or "max")
    params: dict  # name -> bits of a per-neuron read-only constant
    tables: dict  # name -> read-only int32 np.ndarray
    channels: dict  # name -> (kind, width in bits of the widest value sent)

    def width(self, operand: Operand) -> int:
        """Static signed width of an operand."""
        if isinstance(operand, (int, np.integer)):
            return imm_bits(operand)
        if operand in self.registers:
            return self.registers[operand].bits
        if operand in self.params:
            return self.params[operand]
        return PORT_BITS

    def result_width(self, ins: "Instr") -> int:
        """A static bound on the signed width of an instruction's exact result (32 when unknown).

        The interpreter skips the destination's range check where this bound already fits it.
        """
        w = [self.width(x) for x in (ins.srcs[1:] if ins.op == "lut" else ins.srcs)]
        op = ins.op
        if op in COMPARISONS:
            return 2
        if op == "bitlen":
            return 7
        if op in ("mov", "not", "shr"):
            return w[0]
        if op in ("add", "sub"):
            return min(max(w) + 1, 33)
        if op in ("neg", "abs"):
            return min(w[0] + 1, 33)
        if op == "mul":
            return w[0] + w[1]
        if op in ("min", "max"):
            return max(w)
        if op == "clip":
            return min(max(w), max(w[1:]))
        if op == "sat":
            return int(ins.srcs[1])
        if op == "sel":
            return max(w[1:])
        if op == "and":
            return max(w)
        if op == "lut":
            t = self.tables[ins.srcs[0]]
            return max(imm_bits(int(t.min())), imm_bits(int(t.max())))
        return 33  # shl, mulsh: not bounded statically

    def listing(self) -> str:
        return "\n".join(f"{i:4d}  {ins}" for i, ins in enumerate(self.instrs))

    def check_fits(self, chip) -> None:
        """Raise `AssemblyError` if the program exceeds the chip's microcode or register limits."""
        if len(self.instrs) > chip.program_length:
            raise AssemblyError(f"program {self.name!r} has {len(self.instrs)} instructions; the chip allows "
                                f"{chip.program_length} (ChipConfig.program_length)")
        if len(self.registers) > chip.registers_per_neuron:
            raise AssemblyError(f"program {self.name!r} uses {len(self.registers)} registers; the chip allows "
                                f"{chip.registers_per_neuron} (ChipConfig.registers_per_neuron)")
        wide = [r for r in self.registers.values() if r.bits > chip.register_bits]
        if wide:
            raise AssemblyError(f"program {self.name!r}: register {wide[0].name!r} is {wide[0].bits} bits; "
                                f"the chip's registers hold {chip.register_bits}")

    def persistent(self) -> tuple:
        """Registers read before they are written in a step: the neuron's state between steps.

        The others are scratch: every step overwrites them before use, so the interpreter
        neither keeps them between steps nor exposes them in its state.
        """
        written, live = set(), []
        for ins in self.instrs:
            for o in ins.srcs[1:] if ins.op == "lut" else ins.srcs:  # a lut's first operand is a table
                if isinstance(o, str) and o in self.registers and o not in written and o not in live:
                    live.append(o)
            if ins.op != "send":
                written.add(ins.dst)
        return tuple(r for r in self.registers if r in live or r not in written)

    def state_bits(self) -> int:
        return sum(r.bits for r in self.registers.values())


class ProgramBuilder:
    """Builds a `Program` instruction by instruction, validating every operand as it goes.

    Declare ports, parameters, registers and tables first (or as needed), then call the
    instruction methods (`b.add("d", "a", 3)`); `tmp(bits)` allocates a fresh register.
    """

    def __init__(self, name: str):
        self.name = name
        self._instrs: list = []
        self._regs: dict = {}
        self._ports: dict = {}
        self._params: dict = {}
        self._tables: dict = {}
        self._channels: dict = {}
        self._ntmp = 0
        self._free: dict = {}
        self._scopes: list = []

    # ------------------------------------------------------------------ declarations
    def _fresh(self, name: str) -> str:
        if not isinstance(name, str) or not name.isidentifier():
            raise AssemblyError(f"{self.name}: name {name!r} must be an identifier")
        if name in self._regs or name in self._ports or name in self._params or name in self._tables:
            raise AssemblyError(f"{self.name}: {name!r} is declared twice")
        return name

    def reg(self, name: str, bits: int = 32, overflow: str = "saturate") -> str:
        if not isinstance(bits, int) or not 1 <= bits <= 32:
            raise AssemblyError(f"{self.name}: register {name!r} width {bits!r} must be in [1, 32]")
        if overflow not in OVERFLOW:
            raise AssemblyError(f"{self.name}: register {name!r} overflow {overflow!r} must be one of {OVERFLOW}")
        self._regs[self._fresh(name)] = Register(name, bits, overflow)
        return name

    def tmp(self, bits: int = 32, overflow: str = "saturate") -> str:
        """A scratch register: reused from an ended `scratch()` scope when one of its kind is free."""
        pool = self._free.get((bits, overflow))
        if pool:
            name = pool.pop()
        else:
            self._ntmp += 1
            name = self.reg(f"t{self._ntmp}", bits, overflow)
        if self._scopes:
            self._scopes[-1].append(name)
        return name

    @contextlib.contextmanager
    def scratch(self):
        """Temporaries allocated inside the block are free for reuse after it (results: allocate before)."""
        self._scopes.append([])
        try:
            yield
        finally:
            for name in self._scopes.pop():
                r = self._regs[name]
                self._free.setdefault((r.bits, r.overflow), []).append(name)

    def port(self, name: str, accumulate: str = "sum") -> str:
        if accumulate not in ACCUMULATE:
            raise AssemblyError(f"{self.name}: port {name!r} accumulate {accumulate!r} must be one of {ACCUMULATE}")
        self._ports[self._fresh(name)] = accumulate
        return name

    def param(self, name: str, bits: int) -> str:
        if not isinstance(bits, int) or not 1 <= bits <= 32:
            raise AssemblyError(f"{self.name}: parameter {name!r} width {bits!r} must be in [1, 32]")
        self._params[self._fresh(name)] = bits
        return name

    def table(self, name: str, values) -> str:
        t = np.asarray(values)
        if t.ndim != 1 or t.size < 1 or not np.issubdtype(t.dtype, np.integer):
            raise AssemblyError(f"{self.name}: table {name!r} must be a non-empty 1-D integer array")
        if t.min() < INT32_MIN or t.max() > INT32_MAX:
            raise AssemblyError(f"{self.name}: table {name!r} values must fit int32")
        t = np.array(t, np.int32)
        t.setflags(write=False)
        self._tables[self._fresh(name)] = t
        return name

    # ------------------------------------------------------------------ validation
    def _where(self) -> str:
        return f"{self.name}[{len(self._instrs)}]"

    def _width(self, o: Operand) -> int:
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            if not INT32_MIN <= int(o) <= INT32_MAX:
                raise AssemblyError(f"{self._where()}: immediate {o} does not fit int32")
            return imm_bits(o)
        if isinstance(o, str):
            if o in self._regs:
                return self._regs[o].bits
            if o in self._params:
                return self._params[o]
            if o in self._ports:
                return PORT_BITS
        raise AssemblyError(f"{self._where()}: operand {o!r} is not a declared register, port or parameter")

    def _dst(self, d: str) -> Register:
        if d not in self._regs:
            kind = "a port" if d in self._ports else "a parameter" if d in self._params else "undefined"
            raise AssemblyError(f"{self._where()}: destination {d!r} is {kind}; only registers can be written")
        return self._regs[d]

    def emit(self, op: str, dst: str, *srcs: Operand, mode: Optional[str] = None) -> str:
        """Append one instruction after checking operands, widths and the rounding mode."""
        if op not in OPS:
            raise AssemblyError(f"{self._where()}: unknown instruction {op!r}")
        n_src, needs_mode = OPS[op]
        if len(srcs) != n_src:
            raise AssemblyError(f"{self._where()}: {op} takes {n_src} source operands, got {len(srcs)}")
        if needs_mode and mode not in ROUNDING:
            raise AssemblyError(f"{self._where()}: {op} needs a rounding mode in {ROUNDING}, got {mode!r}")
        if not needs_mode and mode is not None:
            raise AssemblyError(f"{self._where()}: {op} takes no rounding mode")
        if op == "lut":
            if srcs[0] not in self._tables:
                raise AssemblyError(f"{self._where()}: lut table {srcs[0]!r} is not declared")
            widths = [self._width(srcs[1])]
        else:
            widths = [self._width(s) for s in srcs]
        if op == "send":
            kind, width = self._channels.get(dst, (None, 0))
            if kind is None:
                raise AssemblyError(f"{self._where()}: channel {dst!r} is not declared (use channel())")
            self._channels[dst] = (kind, max(width, widths[0] if kind == "graded" else 1))
        else:
            reg = self._dst(dst)
            self._check_static(op, reg, srcs, widths)
        self._instrs.append(Instr(op, dst, tuple(srcs), mode))
        return dst

    def _check_static(self, op, reg: Register, srcs, widths) -> None:
        where = self._where()
        if op == "mul" and sum(widths) > 32:
            raise AssemblyError(f"{where}: mul of {widths[0]}-bit by {widths[1]}-bit operands may exceed 32 bits; "
                                "narrow an operand or use mulsh")
        if op == "mulsh":
            b = srcs[1]
            if (isinstance(b, int) and abs(b) > 2 ** 16) or (not isinstance(b, int) and widths[1] > 17):
                raise AssemblyError(f"{where}: mulsh multiplier {b!r} must satisfy |b| <= 2**16 (at most 17 bits)")
            if isinstance(srcs[2], int) and not 0 <= srcs[2] <= 62:
                raise AssemblyError(f"{where}: mulsh shift {srcs[2]} must be in [0, 62]")
        if op in ("shr", "shl") and isinstance(srcs[1], int) and not 0 <= srcs[1] <= 31:
            raise AssemblyError(f"{where}: shift {srcs[1]} must be in [0, 31]")
        if op == "sat" and not (isinstance(srcs[1], int) and 1 <= srcs[1] <= 32):
            raise AssemblyError(f"{where}: sat width must be an immediate in [1, 32]")
        if op == "mov" and isinstance(srcs[0], int) and imm_bits(srcs[0]) > reg.bits:
            raise AssemblyError(f"{where}: immediate {srcs[0]} does not fit the {reg.bits}-bit register {reg.name!r}")
        if op == "clip":
            for bound in srcs[1:]:
                if isinstance(bound, int) and imm_bits(bound) > reg.bits:
                    raise AssemblyError(f"{where}: clip bound {bound} does not fit the {reg.bits}-bit "
                                        f"register {reg.name!r}")
        if op == "lut":
            t = self._tables[srcs[0]]
            if max(imm_bits(int(t.min())), imm_bits(int(t.max()))) > reg.bits:
                raise AssemblyError(f"{where}: table {srcs[0]!r} values do not fit the {reg.bits}-bit "
                                    f"register {reg.name!r}")

    def channel(self, name: str, kind: str = "graded") -> str:
        if kind not in CHANNEL_KINDS:
            raise AssemblyError(f"{self.name}: channel {name!r} kind {kind!r} must be one of {CHANNEL_KINDS}")
        if name in self._channels:
            raise AssemblyError(f"{self.name}: channel {name!r} is declared twice")
        self._channels[name] = (kind, 0)
        return name

    def build(self) -> Program:
        unsent = [c for c, (_, w) in self._channels.items() if w == 0]
        if unsent:
            raise AssemblyError(f"{self.name}: channel {unsent[0]!r} is declared but never sent")
        return Program(self.name, tuple(self._instrs), dict(self._regs), dict(self._ports), dict(self._params),
                       dict(self._tables), dict(self._channels))

    def __getattr__(self, op: str):
        # b.add(d, a, b), b.shr(d, a, n, mode="floor"), b.and_(...) for the keyword op.
        name = op.rstrip("_")
        if name in OPS:
            return lambda dst, *srcs, mode=None: self.emit(name, dst, *srcs, mode=mode)
        raise AttributeError(op)
