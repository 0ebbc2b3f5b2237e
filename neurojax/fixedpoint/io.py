"""Save and load an integer model: `int_model.npz` (integer tensors) + `int_model.json` (spec, scales)."""
import dataclasses
import json
import os

import flax
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.fixedpoint.config import IntQuantConfig
from neurojax.fixedpoint.convert import IntModel, IntModelSpec
from neurojax.nn.config import ModelConfig
from neurojax.files import write_json_atomic

TENSORS, META = "int_model.npz", "int_model.json"


def _flatten(params: dict) -> dict:
    layers = params["layers"]
    tree = {**{k: v for k, v in params.items() if k != "layers"}, "layers": {str(i): p for i, p in enumerate(layers)}}
    return {"/".join(k): np.asarray(v) for k, v in flax.traverse_util.flatten_dict(tree).items()}


def _unflatten(flat: dict) -> dict:
    tree = flax.traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
    tree["layers"] = [tree["layers"][str(i)] for i in range(len(tree["layers"]))]
    return tree


def save_int_model(model: IntModel, directory: str) -> str:
    """Write the model atomically (temporary files, then rename); returns the directory."""
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{TENSORS}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **_flatten(model.params))
    os.replace(tmp, os.path.join(directory, TENSORS))
    write_json_atomic(os.path.join(directory, META), {
        "model": model.spec.model.to_dict(), "quant": dataclasses.asdict(model.spec.quant), "scales": model.scales})
    return directory


def load_int_model(directory: str) -> IntModel:
    paths = [os.path.join(directory, name) for name in (TENSORS, META)]
    if not all(os.path.exists(p) for p in paths):
        raise NeurojaxError(f"no integer model in {directory!r}: run experiments/quantize.py first")
    try:
        meta = json.load(open(paths[1], encoding="utf-8"))
        with np.load(paths[0]) as f:
            params = _unflatten({k: f[k] for k in f.files})
        spec = IntModelSpec(ModelConfig.from_dict(meta["model"]), IntQuantConfig(**meta["quant"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NeurojaxError(f"integer model in {directory!r} is unreadable ({type(e).__name__}: {e})") from e
    if len(params["layers"]) != spec.model.num_layers:
        raise NeurojaxError(f"integer model in {directory!r} has {len(params['layers'])} layers, its spec says "
                            f"{spec.model.num_layers}")
    return IntModel(spec, params, meta["scales"])
