"""Facts about a mesh measured in this process: per-device state memory, collectives in compiled HLO,
a checkpoint restored onto a mesh (what the sharding tests and `experiments.bench_sharding` read).

Run as `python -m neurojax.train.mesh_probe '<json request>'` in a process whose device count is
set (e.g. `XLA_FLAGS=--xla_force_host_platform_device_count=8`); prints one JSON line.
"""
import hashlib
import json
import re
import sys
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from neurojax.train.checkpoint import Checkpointer
from neurojax.train.model_factory import build_model, train_state_initializer
from neurojax.train.optim import make_optimizer
from neurojax.train.sharding import make_mesh, per_device_bytes, state_shardings, with_shardings
from neurojax.train.workdir import read_run_config

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all")


_COLLECTIVE_LINE = re.compile(r"^\s*(?:ROOT\s+)?%\S+ = (.*?)\b(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
DTYPE_BYTES = {"f64": 8, "s64": 8, "u64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
               "s8": 1, "u8": 1, "pred": 1}


def _collectives(hlo_text: str):
    """(kind, result shape text) of every collective instruction (an async pair counted once)."""
    for line in hlo_text.splitlines():
        m = _COLLECTIVE_LINE.match(line)
        if m:
            yield m.group(2), m.group(1)


def count_collectives(hlo_text: str) -> dict:
    """How many instructions of each collective kind a compiled HLO module holds."""
    counts = dict.fromkeys(COLLECTIVES, 0)
    for kind, _ in _collectives(hlo_text):
        counts[kind] += 1
    return counts


def collective_bytes(hlo_text: str) -> int:
    """Bytes of the results of every collective in a compiled HLO module (what crosses the links,
    up to the algorithm's factor: a ring all-reduce moves 2 (n - 1) / n of it per device)."""
    total = 0
    for _, result in _collectives(hlo_text):
        for dtype, dims in re.findall(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]", result):
            n = int(np.prod([int(d) for d in dims.split(",") if d])) if dims else 1
            total += n * DTYPE_BYTES.get(dtype, 4)
    return total


def _state(cfg: ml_collections.ConfigDict, mesh_section: dict):
    model, model_cfg = build_model(cfg)
    t = cfg.train
    new_state = train_state_initializer(model, model_cfg, make_optimizer(t), t.seed, t.seq_len)
    abstract = jax.eval_shape(new_state)
    mesh = make_mesh(mesh_section)
    return new_state, abstract, state_shardings(abstract, mesh), mesh


def state_memory(cfg: ml_collections.ConfigDict, mesh_section: dict) -> dict:
    """Bytes of params + optimizer state on the busiest device, and in total, for a fresh state."""
    new_state, abstract, shardings, mesh = _state(cfg, mesh_section)
    state = jax.jit(new_state, out_shardings=shardings)()
    parts = {"params": state["params"], "opt_state": state["opt_state"]}
    total = sum(x.nbytes for x in jax.tree_util.tree_leaves(parts))
    return {"per_device_bytes": per_device_bytes(parts), "total_bytes": int(total), "devices": mesh.size}


def restore_digest(workdir: str, mesh_section: dict) -> dict:
    """Restore the latest checkpoint of `workdir` onto a mesh; a digest of every value and the shardings."""
    cfg = ml_collections.ConfigDict(read_run_config(workdir))
    _, abstract, shardings, mesh = _state(cfg, mesh_section)
    target = with_shardings(abstract, shardings)
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        params, rest, meta = ckpt.restore(target["params"], {k: v for k, v in target.items() if k != "params"})
    finally:
        ckpt.close()
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves({"params": params, "train": rest}):
        digest.update(np.asarray(leaf).tobytes())
    specs = sorted({str(x.sharding.spec) for x in jax.tree_util.tree_leaves(params)})
    return {"digest": digest.hexdigest(), "step": int(meta["step"]), "specs": specs, "devices": mesh.size}


def recurrence_collectives(batch: int, steps: int, features: int) -> dict:
    """Collectives in the compiled MLGRU recurrence (forward and backward) with the features split
    over every device, and with the batch split."""
    from neurojax.kernels.linear_recurrence import linear_recurrence

    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": -1})
    out = {}
    for name, spec in (("features", P(None, None, "tensor")), ("batch", P("tensor", None, None))):
        seq = NamedSharding(mesh, spec)
        st = NamedSharding(mesh, P(spec[0], spec[2]))

        def fwd_bwd(a, b, h0, g):  # the scan and its reverse-scan VJP, no reduction added around them
            (h, last), vjp = jax.vjp(linear_recurrence, a, b, h0)
            return h, last, vjp((g, jnp.zeros_like(last)))

        fn = jax.jit(fwd_bwd, in_shardings=(seq, seq, st, seq), out_shardings=(seq, st, (seq, seq, st)))
        a = jax.ShapeDtypeStruct((batch, steps, features), jnp.float32)
        h0 = jax.ShapeDtypeStruct((batch, features), jnp.float32)
        out[name] = count_collectives(fn.lower(a, a, h0, a).compile().as_text())
    # positive control: a sum over the split features must all-reduce
    control = jax.jit(lambda a: jnp.sum(a, axis=-1), in_shardings=NamedSharding(mesh, P(None, None, "tensor")))
    out["control"] = count_collectives(control.lower(a).compile().as_text())
    return out


def step_profile(cfg: ml_collections.ConfigDict, mesh_section: dict, repeats: int = 5) -> dict:
    """Compile and time the training step of `cfg` on a mesh: compile seconds, median step
    seconds over `repeats` steps after 2 warm-up steps, XLA's FLOP count, and the collectives."""
    import time

    from neurojax.train.sharding import batch_sharding, shard_batch
    from neurojax.train.step import make_train_step

    model, _ = build_model(cfg)
    t = cfg.train
    new_state, _, shardings, mesh = _state(cfg, mesh_section)
    batches = batch_sharding(mesh, t.batch_size)
    step = make_train_step(model, make_optimizer(t), shardings, batches)
    state = jax.jit(new_state, out_shardings=shardings)()
    rng = np.random.default_rng(0)
    batch = shard_batch(rng.integers(0, cfg.model.vocab_size, (t.batch_size, t.seq_len + 1)).astype(np.int32), batches)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    hlo = compiled.as_text()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    times = []
    for i in range(2 + repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics["loss"])
        if i >= 2:
            times.append(time.perf_counter() - t0)
    param_bytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(state["params"]))
    return {"devices": mesh.size, "mesh": dict(mesh.shape), "compile_s": compile_s,
            "step_s": float(np.median(times)), "tokens": t.batch_size * t.seq_len,
            "flops": float(cost.get("flops", 0.0)) if cost else 0.0, "param_bytes": int(param_bytes),
            "collectives": count_collectives(hlo), "collective_bytes": collective_bytes(hlo)}


def main(argv: list) -> None:
    request: dict[str, Any] = json.loads(argv[1])
    kind = request.pop("probe")
    if kind == "memory":
        cfg = ml_collections.ConfigDict(request["config"])
        result = state_memory(cfg, request["mesh"])
    elif kind == "restore":
        result = restore_digest(request["workdir"], request["mesh"])
    elif kind == "step":
        result = step_profile(ml_collections.ConfigDict(request["config"]), request["mesh"], request.get("repeats", 5))
    elif kind == "recurrence":
        result = recurrence_collectives(**request)
    else:
        raise SystemExit(f"unknown probe {kind!r}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
