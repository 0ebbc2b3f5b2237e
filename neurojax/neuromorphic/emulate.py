"""Run a compiled model on the interpreter, token by token, and check it against reference taps.

Execution modes:
- prefill: token t is injected at step t, so tokens are pipelined through the layers, one
  per step; token t's logits leave at step `depth + t`.
- generate: the next token is injected one step after the previous token's logits leave
  (`depth + 1` steps per token), as autoregressive decoding must wait for its own output.
`first_mismatch` compares the emulated taps with the integer model's and names the first
token, tap (so layer), neuron and step at which they differ.
"""
import dataclasses
from typing import Optional

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.neuromorphic.compiler import CompiledModel
from neurojax.neuromorphic.interpreter import Simulator, Trace

MODES = ("prefill", "generate")
# One step per compiled call: every run length is a whole number of chunks, so the compiled step
# needs no partial-chunk mask (which doubles the LM's compile time); dispatch costs ~1 ms a step.
EMULATION_CHUNK = 1


@dataclasses.dataclass
class Emulation:
    taps: dict  # tap name -> int32 [T, n]: the value each token produced there
    trace: Trace
    token_steps: np.ndarray  # step at which each token was injected
    num_steps: int
    mode: str


def simulator(compiled: CompiledModel) -> Simulator:
    """The compiled model's simulator (built and jitted once, then cached on the model)."""
    sim = getattr(compiled, "_simulator", None)
    if sim is None:
        probes = sorted({src for tap in compiled.taps.values() for src in tap.sources})
        sim = Simulator(compiled.network, compiled.chip, probes, compiled.placement, chunk_steps=EMULATION_CHUNK)
        compiled._simulator = sim
    return sim


def _inputs(compiled: CompiledModel, tokens: np.ndarray, starts: np.ndarray, num_steps: int) -> dict:
    embed = np.zeros((num_steps, compiled.d_model), np.int32)
    valid = np.zeros((num_steps, 1), np.int32)
    embed[starts] = compiled.embed[tokens]
    valid[starts] = 1
    return {"embed_in": embed, "valid": valid}


def run_tokens(compiled: CompiledModel, tokens, mode: str = "prefill") -> Emulation:
    """Emulate a sequence of token ids [T] from the initial state; returns every tap per token."""
    if mode not in MODES:
        raise NeurojaxError(f"mode must be one of {MODES}, got {mode!r}")
    tokens = np.asarray(tokens)
    vocab = compiled.embed.shape[0]
    if tokens.ndim != 1 or tokens.size == 0:
        raise NeurojaxError(f"tokens must be a non-empty 1-D sequence, got shape {tokens.shape}")
    if tokens.min() < 0 or tokens.max() >= vocab:
        raise NeurojaxError(f"token ids must be in [0, {vocab}), got [{tokens.min()}, {tokens.max()}]")
    period = 1 if mode == "prefill" else compiled.steps_per_token_generate
    starts = np.arange(tokens.size) * period
    num_steps = int(starts[-1]) + compiled.depth + 1
    trace, _ = simulator(compiled).run(_inputs(compiled, tokens, starts, num_steps), num_steps)
    taps = {}
    for name, tap in compiled.taps.items():
        rows = starts + tap.depth
        taps[name] = np.concatenate([trace.probes[src][rows] for src in tap.sources], axis=-1)
    return Emulation(taps, trace, starts, num_steps, mode)


def generate(compiled: CompiledModel, prompt, max_new_tokens: int) -> tuple:
    """Greedy autoregressive decoding on the emulated chip: the host reads each token's logits,
    takes the argmax and injects it. Returns (all tokens, steps used)."""
    prompt = [int(t) for t in np.asarray(prompt).reshape(-1)]
    if not prompt:
        raise NeurojaxError("the prompt must hold at least one token")
    sim = simulator(compiled)
    depth, period = compiled.depth, compiled.steps_per_token_generate
    logits_src = compiled.taps["logits"].sources[0]
    # prefill the prompt pipelined, then one token per `period` steps
    emu_steps = len(prompt) + depth
    trace, state = sim.run(_inputs(compiled, np.asarray(prompt), np.arange(len(prompt)), emu_steps), emu_steps)
    tokens, steps = list(prompt), emu_steps
    for _ in range(max_new_tokens):
        nxt = int(np.argmax(trace.probes[logits_src][-1]))
        tokens.append(nxt)
        trace, state = sim.run(_inputs(compiled, np.asarray([nxt]), np.asarray([0]), period), period, state)
        steps += period
    return tokens, steps


@dataclasses.dataclass
class Mismatch:
    token: int
    tap: str
    neuron: int
    step: int
    got: int
    want: int

    @property
    def layer(self) -> str:
        return self.tap.split("/")[0]

    def __str__(self):
        return (f"first mismatch at token {self.token}, {self.tap} (layer {self.layer!r}), neuron {self.neuron}, "
                f"step {self.step}: emulated {self.got}, integer model {self.want}")


def first_mismatch(compiled: CompiledModel, emu: Emulation, reference: dict) -> Optional[Mismatch]:
    """The earliest difference (by token, then pipeline depth) between emulated and reference taps.

    `reference`: tap name -> int array [T, n] (the integer model's values for the same tokens).
    """
    missing = sorted(set(emu.taps) - set(reference))
    if missing:
        raise NeurojaxError(f"the reference has no tap {missing[0]!r}")
    order = sorted(emu.taps, key=lambda k: compiled.taps[k].depth)
    T = emu.token_steps.size
    for t in range(T):
        for name in order:
            got, want = emu.taps[name][t], np.asarray(reference[name])[t]
            if got.shape != want.shape:
                raise NeurojaxError(f"tap {name!r}: emulated shape {got.shape}, reference {want.shape}")
            bad = np.flatnonzero(got != want)
            if bad.size:
                i = int(bad[0])
                return Mismatch(t, name, i, int(emu.token_steps[t] + compiled.taps[name].depth), int(got[i]),
                                int(want[i]))
    return None
