"""Test helpers: Hugging Face directories written and read with the `safetensors` package itself
(never with the module under test)."""
import json
import os

from safetensors import safe_open
from safetensors.numpy import save_file


def write_hf_dir(directory, tensors, hf_config, shards=None, metadata=None):
    """`config.json` plus one `model.safetensors`, or `shards` files and the index; returns `directory`."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)
    metadata = {"format": "pt"} if metadata is None else metadata
    if not shards:
        save_file(tensors, os.path.join(directory, "model.safetensors"), metadata=metadata)
        return directory
    keys = list(tensors)
    groups = [keys[i::shards] for i in range(shards)]
    weight_map = {}
    for i, group in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: tensors[k] for k in group}, os.path.join(directory, name), metadata=metadata)
        weight_map.update({k: name for k in group})
    total = sum(t.nbytes for t in tensors.values())
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return directory


def read_hf_dir(directory):
    """Every tensor of an HF directory (single or sharded): key -> array."""
    index = os.path.join(directory, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index)
             else ["model.safetensors"])
    out = {}
    for name in files:
        with safe_open(os.path.join(directory, name), framework="numpy") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k)
    return out
