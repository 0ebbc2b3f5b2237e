"""Device meshes and sharding rules: one training step on 1 or N devices, same code.

A run config's `mesh` section names three axes (`MESH_AXES`), each a size (`-1`: all the devices
the others leave; at most one axis may say so):

- `data`: data parallel (the batch is split; parameters replicated over it),
- `fsdp`: fully-sharded data parallel (the batch is split *and* every large parameter and its
  optimizer state is split along one dimension; gathered by XLA where used),
- `tensor`: tensor parallel (projections split along their features, Megatron-style).

Rules for parameters (`param_spec`), by the name of the module that owns them (PyTorch layout
`[out, in]` for projections, as the MMfreeLM checkpoint):
  column-parallel projections (`COLUMN`: i/f/g, gate/up, q/k/v)  `[out, in]` -> (tensor, fsdp)
  row-parallel projections (`ROW`: o, down)                       `[out, in]` -> (fsdp, tensor)
  embeddings and the LM head                                      `[vocab, d]` -> (tensor, fsdp)
  everything else (norm weights, lower bounds, ...)               replicated
so the MLGRU's gates and state are split along features (element-wise: no communication in its
scan), and each BitLinear's absmean / absmax reductions and the RMSNorms become all-reduces.
Optimizer state follows its parameter; scalars are replicated. A dimension that its axis does not
divide is an error naming the parameter, the axis and the dimension (for tensor parallelism the
byte vocabulary 259 needs `model.vocab_size` padded, e.g. 264: ids above 258 never occur).

The mesh is how a run executes, not what it computes: it is not part of the run's identity
(`config.json`), and a checkpoint (global arrays, orbax) restores onto any mesh.
"""
from typing import Any, Mapping, Optional

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from neurojax.errors import NeurojaxError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
COLUMN = ("i_proj", "f_proj", "g_proj", "gate_proj", "up_proj", "q_proj", "k_proj", "v_proj")
ROW = ("o_proj", "down_proj")
TABLES = ("embeddings", "embed_tokens", "lm_head")


def mesh_section() -> dict:
    """The default `mesh` section: every device data parallel."""
    return {"data": -1, "fsdp": 1, "tensor": 1}


def mesh_shape(section: Mapping[str, Any], num_devices: int) -> tuple:
    """The (data, fsdp, tensor) sizes of `section` on `num_devices` devices (one -1 resolved)."""
    unknown = sorted(set(section) - set(MESH_AXES))
    if unknown:
        raise NeurojaxError(f"mesh.{unknown[0]} is not a mesh axis; the axes are {MESH_AXES}")
    sizes = []
    for axis in MESH_AXES:
        v = section.get(axis, 1)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or (v < 1 and v != -1):
            raise NeurojaxError(f"mesh.{axis} must be a positive int or -1 (the rest of the devices), got {v!r}")
        sizes.append(int(v))
    if sizes.count(-1) > 1:
        raise NeurojaxError("at most one mesh axis may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if num_devices % known:
            raise NeurojaxError(f"the mesh's fixed axes ({known} devices) do not divide the {num_devices} devices")
        sizes[sizes.index(-1)] = num_devices // known
    if int(np.prod(sizes)) != num_devices:
        shape = dict(zip(MESH_AXES, sizes))
        raise NeurojaxError(f"mesh {shape} needs {int(np.prod(sizes))} devices, but {num_devices} are in use "
                            "(jax.devices(); set one axis to -1 to take the rest)")
    return tuple(sizes)


def make_mesh(section: Optional[Mapping[str, Any]] = None, devices: Optional[list] = None) -> Mesh:
    """A `Mesh` over `devices` (default: all) with the axes of `section` (default: `mesh_section()`)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = mesh_shape(dict(mesh_section() if section is None else section), len(devices))
    return Mesh(np.asarray(devices, dtype=object).reshape(shape), MESH_AXES)


def _names(path) -> list:
    return [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]


def param_spec(names: list, shape: tuple) -> P:
    """The `PartitionSpec` of one parameter (module doc) from its path names and shape."""
    if len(shape) != 2:
        return P()
    owners = set(names[:-1])
    if owners & set(TABLES) or owners & set(COLUMN):
        return P("tensor", "fsdp")
    if owners & set(ROW):
        return P("fsdp", "tensor")
    return P()


def _check(name: str, shape: tuple, spec: P, mesh: Mesh) -> None:
    for dim, axes in enumerate(spec):
        if axes is None:
            continue
        size = int(np.prod([mesh.shape[a] for a in (axes if isinstance(axes, tuple) else (axes,))]))
        if shape[dim] % size:
            raise NeurojaxError(f"parameter {name}: dimension {dim} (size {shape[dim]}) is not divisible by mesh "
                                f"axis {axes!r} ({size} devices); change the mesh or the model size")


def param_shardings(abstract_params: Any, mesh: Mesh) -> Any:
    """`NamedSharding`s for a parameter tree (arrays or `ShapeDtypeStruct`s), checked for divisibility."""
    def one(path, leaf):
        names = _names(path)
        spec = param_spec(names, tuple(leaf.shape))
        _check("/".join(names), tuple(leaf.shape), spec, mesh)
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(one, abstract_params)


def state_shardings(abstract_state: dict, mesh: Mesh) -> dict:
    """Shardings of a train state `{params, opt_state, step, rng}`: optimizer leaves follow the
    parameter whose path they end with (Adam's mu / nu), everything else is replicated."""
    params = param_shardings(abstract_state["params"], mesh)
    by_path = {tuple(_names(p)): (s, tuple(leaf.shape)) for (p, s), (_, leaf) in zip(
        jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves_with_path(abstract_state["params"]))}
    replicated = NamedSharding(mesh, P())

    def follow(path, leaf):
        names = tuple(_names(path))
        for start in range(len(names)):
            hit = by_path.get(names[start:])
            if hit is not None and hit[1] == tuple(leaf.shape):
                return hit[0]
        return replicated

    out = {k: jax.tree_util.tree_map(lambda _: replicated, v) for k, v in abstract_state.items() if k != "params"}
    out["params"] = params
    out["opt_state"] = jax.tree_util.tree_map_with_path(follow, abstract_state["opt_state"])
    return out


def batch_sharding(mesh: Mesh, batch_size: int) -> NamedSharding:
    """Batches `[B, ...]` split over the data and fsdp axes (B must be divisible by their product)."""
    n = mesh.shape["data"] * mesh.shape["fsdp"]
    if batch_size % n:
        raise NeurojaxError(f"train.batch_size={batch_size} is not divisible by the mesh's data x fsdp = {n} devices")
    return NamedSharding(mesh, P(BATCH_AXES))


def logits_sharding(mesh: Mesh) -> NamedSharding:
    """Logits `[B, T, V]`: the batch as the input's, the vocabulary split over the tensor axis
    (the LM head's rows), so the softmax's reductions are the only communication there."""
    return NamedSharding(mesh, P(BATCH_AXES, None, "tensor"))


def shard_batch(batch: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A host batch as a global array: each process builds only the shards of its own devices
    (every process holds the same global batch, a pure function of (seed, step))."""
    batch = np.asarray(batch)
    return jax.make_array_from_callback(batch.shape, sharding, lambda index: batch[index])


def with_shardings(abstract: Any, shardings: Any) -> Any:
    """`ShapeDtypeStruct`s carrying `shardings` (what orbax restores onto, and `jit` builds into)."""
    return jax.tree_util.tree_map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def per_device_bytes(tree: Any) -> int:
    """The largest number of bytes that `tree`'s arrays occupy on any one device."""
    totals: dict = {}
    for leaf in jax.tree_util.tree_leaves(tree):
        for shard in leaf.addressable_shards:
            totals[shard.device] = totals.get(shard.device, 0) + shard.data.nbytes
    return max(totals.values()) if totals else 0
