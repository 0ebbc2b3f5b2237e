"""Scaling report: the training step on 1..N forced host devices, collectives from the compiled HLO,
and an estimate for 8-64 accelerators.

    python -m experiments.bench_sharding                          # tiny preset, 1/2/4/8 devices
    python -m experiments.bench_sharding --preset=micro --devices=1,8 --repeats=3

For each device count n and layout (`data`: (n, 1, 1), `fsdp`: (1, n, 1), `hybrid`: data x fsdp x
tensor with tensor = 2 where n >= 4), one subprocess with `XLA_FLAGS=--xla_force_host_platform_
device_count=n` compiles and times the same global batch (`neurojax.train.mesh_probe`). Measured:
compile time, median step time, tokens/s, XLA's FLOP count of the partitioned step (per device), the
number of each collective per step and the bytes they return. Forced host devices share this
machine's cores, so the measured step time shows the partitioning's overhead, not a speed-up.

Estimated (cost model, named constants below, weak scaling at the measured per-device batch):
step time on N accelerators = per-device FLOPs / (ACCEL_FLOPS * MFU) + communication, where data
parallelism all-reduces the gradients (ring: 2 (N - 1) / N x parameter bytes) and FSDP adds an
all-gather of the parameters in the forward and backward passes and a reduce-scatter of the
gradients (3 (N - 1) / N x parameter bytes), over LINK_BYTES_PER_S per device, not overlapped.
"""
import json
import os
import subprocess
import sys

import numpy as np
from absl import flags

from experiments import _cli
from neurojax.errors import NeurojaxError
from neurojax.train import run_config

ACCEL_FLOPS = 989e12  # dense bf16 peak of one H100 SXM (FLOP/s), a stated assumption
MFU = 0.4  # assumed model FLOP utilisation
LINK_BYTES_PER_S = 100e9  # assumed per-device interconnect bandwidth (bytes/s)

_PRESET = flags.DEFINE_string("preset", "tiny", "Model preset (MatMul-free).")
_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Forced host device counts.")
_LAYOUTS = flags.DEFINE_list("layouts", ["data", "fsdp", "hybrid"], "Mesh layouts: data, fsdp, hybrid.")
_BATCH = flags.DEFINE_integer("batch_size", 16, "Global batch (sequences); divisible by every data x fsdp.")
_SEQ = flags.DEFINE_integer("seq_len", 128, "Tokens per sequence.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps (median) after 2 warm-up steps.")
_ACCELERATORS = flags.DEFINE_list("accelerators", ["8", "16", "32", "64"], "Accelerator counts to estimate.")
_VOCAB = flags.DEFINE_integer("vocab_size", 264, "Vocabulary padded so tensor parallelism divides it (259 bytes + pad).")


def layout(name: str, n: int) -> dict:
    """The mesh of layout `name` on `n` devices."""
    if name == "data":
        return {"data": n, "fsdp": 1, "tensor": 1}
    if name == "fsdp":
        return {"data": 1, "fsdp": n, "tensor": 1}
    if name == "hybrid":
        tensor = 2 if n >= 4 else 1
        fsdp = 2 if n // tensor >= 2 else 1
        return {"data": n // (tensor * fsdp), "fsdp": fsdp, "tensor": tensor}
    raise NeurojaxError(f"unknown layout {name!r}; known: data, fsdp, hybrid")


def profile(cfg, mesh: dict, n: int, repeats: int) -> dict:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    request = json.dumps({"probe": "step", "config": cfg.to_dict(), "mesh": mesh, "repeats": repeats})
    r = subprocess.run([sys.executable, "-m", "neurojax.train.mesh_probe", request], env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        tail = [line for line in r.stderr.strip().splitlines() if line.strip()][-1:] or ["(no output)"]
        raise NeurojaxError(f"profiling mesh {mesh} on {n} devices failed: {tail[0]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def estimate_s(flops_per_device: float, param_bytes: int, n: int, fsdp: bool) -> float:
    """Cost-model step time on n accelerators (module doc)."""
    comm = (3.0 if fsdp else 2.0) * (n - 1) / n * param_bytes
    return flops_per_device / (ACCEL_FLOPS * MFU) + comm / LINK_BYTES_PER_S


def main(argv):
    try:
        counts = sorted({int(d) for d in _DEVICES.value})
        accels = [int(a) for a in _ACCELERATORS.value]
    except ValueError:
        raise NeurojaxError("--devices and --accelerators take comma-separated integers") from None
    if not counts or min(counts) < 1 or min(accels, default=1) < 1:
        raise NeurojaxError("device and accelerator counts must be >= 1")
    cfg = run_config(_PRESET.value)
    cfg.model.vocab_size = max(cfg.model.vocab_size, _VOCAB.value)
    cfg.train.batch_size, cfg.train.seq_len = _BATCH.value, _SEQ.value
    rows = []
    for n in counts:
        for name in _LAYOUTS.value if n > 1 else ["data"]:
            mesh = layout(name, n)
            _cli.say(f"profiling {name} mesh {mesh} on {n} forced host devices ...")
            p = profile(cfg, mesh, n, _REPEATS.value)
            rows.append((name, p))
    base = rows[0][1]["step_s"]
    _cli.say(f"\n{_PRESET.value} preset, global batch {_BATCH.value} x {_SEQ.value} tokens "
             "(measured on forced host devices sharing this CPU)")
    _cli.say("| devices | layout | mesh (data, fsdp, tensor) | compile s | step ms | tokens/s | vs 1 device "
             "| all-reduce | all-gather | reduce-scatter | permute | all-to-all | collective MB/step |")
    _cli.say("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, p in rows:
        c, m = p["collectives"], p["mesh"]
        _cli.say(f"| {p['devices']} | {name} | ({m['data']}, {m['fsdp']}, {m['tensor']}) | {p['compile_s']:.1f} | "
                 f"{p['step_s'] * 1e3:.1f} | {p['tokens'] / p['step_s']:,.0f} | {base / p['step_s']:.2f}x | "
                 f"{c['all-reduce']} | {c['all-gather']} | {c['reduce-scatter']} | {c['collective-permute']} | "
                 f"{c['all-to-all']} | {p['collective_bytes'] / 1e6:.2f} |")
    one = rows[0][1]
    per_device_batch_flops = one["flops"]  # the 1-device step: one device's share at this per-device batch
    _cli.say(f"\nestimate (cost model: {ACCEL_FLOPS / 1e12:.0f} TFLOP/s x MFU {MFU}, {LINK_BYTES_PER_S / 1e9:.0f} GB/s "
             f"per device, weak scaling at {_BATCH.value} sequences per device; FLOPs {one['flops']:.3g} per step "
             f"from XLA's cost analysis, parameters {one['param_bytes'] / 1e6:.2f} MB)")
    _cli.say("| accelerators | data-parallel step ms | FSDP step ms | tokens/s (data) | communication share (data) |")
    _cli.say("|---|---|---|---|---|")
    compute = per_device_batch_flops / (ACCEL_FLOPS * MFU)
    for n in accels:
        d, f = estimate_s(per_device_batch_flops, one["param_bytes"], n, False), \
            estimate_s(per_device_batch_flops, one["param_bytes"], n, True)
        _cli.say(f"| {n} | {d * 1e3:.3f} | {f * 1e3:.3f} | {n * one['tokens'] / d:,.0f} | {1 - compute / d:.0%} |")
    if np.isfinite(base):
        _cli.say("(estimated: not measured on accelerators; the constants are named in experiments/bench_sharding.py)")


if __name__ == "__main__":
    _cli.run(main)
