"""Hugging Face safetensors checkpoints <-> neurojax workdirs, for every architecture neurojax can hold.

    import_hf("SmolLM2-135M/", "workdir/smollm2")    # model_type picks the architecture (llama, qwen2, hgrn_bit)
    export_hf("workdir/smollm2", "out/")             # the same layout back, tensor bytes identical

An `Architecture` (registered per `model_type` by `hf_mmfree` and `hf_llama`) says how a
`config.json` maps onto a neurojax model config and which tensor sits under which key; everything
else is shared here. Import validates everything first (config fields, every key present and
expected, every shape, every dtype, every file complete, the tokenizer's vocabulary) and only then
writes, into a temporary directory renamed into place at the end, so a bad input leaves nothing behind.

Memory: tensors are read one at a time with plain file reads into aligned buffers that JAX adopts
without copying (nothing stays mapped), kept in their source dtype (converted once, when a binary
restores them as float32; bf16 -> f32 is exact), and saved with orbax's write concurrency bounded to
twice the largest tensor. An import thus holds the checkpoint once plus a few tensors in flight
(1.3-1.4x the checkpoint's size at peak, measured in tests/interop/test_hf_mmfree.py); an export
converts and writes one tensor at a time.

The source dtypes, shard layout and safetensors metadata go into the checkpoint's `meta`
(`hf_source`), and the source's `config.json`, tokenizer files and model card are copied verbatim
into `<workdir>/hf/` (`workdir_tokenizer` loads the tokenizer from there), so `export_hf` writes the
same directory back.
"""
import dataclasses
import json
import os
import re
import shutil
from typing import Any, Callable, Iterable, Optional

import flax
import jax
import ml_collections
import numpy as np

from neurojax.data.hf_tokenizer import SENTENCEPIECE_MODEL, TOKENIZER_JSON, load_tokenizer
from neurojax.errors import NeurojaxError
from neurojax.files import read_json_object, write_json_atomic
from neurojax.interop import safetensors_io as st
from neurojax.nn.config import ModelConfig
from neurojax.nn.registry import Registry
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.config import run_config, validate_run_config
from neurojax.train.model_factory import FAMILY_FIELD, abstract_params, family_of, model_config
from neurojax.train.workdir import CONFIG_FILE, read_run_config

HF_CONFIG = "config.json"
HF_SUBDIR = "hf"  # <workdir>/hf: the source's config.json, tokenizer files, model card (verbatim)
META_KEY = "hf_source"  # checkpoint meta entry: dtypes, shard layout, safetensors metadata of the source
IMPORT_STEP = 0
# Files copied from the source directory into <workdir>/hf and back out on export.
COPIED_FILES = (HF_CONFIG, "generation_config.json", TOKENIZER_JSON, SENTENCEPIECE_MODEL, "tokenizer_config.json",
                "special_tokens_map.json", "added_tokens.json", "README.md")
LATENT_DTYPES = ("F32", "BF16", "F16")  # exactly representable in float32, so a round trip is lossless
DTYPE_NAMES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
TORCH_DTYPES = {v: k for k, v in DTYPE_NAMES.items()}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One checkpoint tensor: its Hugging Face key, its neurojax parameter path, its shape."""

    key: str
    path: tuple[str, ...]
    shape: tuple[int, ...]
    projection: bool = False  # a BitLinear's latent weight (ternarized at run time)

    @property
    def stem(self) -> str:
        """The key without its final `.weight`, for the packed format's key names."""
        return self.key[: -len(".weight")]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """How one family of Hugging Face checkpoints maps onto a neurojax model config.

    - `config_from_hf(hf_config, source) -> config` validates a `config.json` (errors name `source`);
    - `hf_config_from_model(config, torch_dtype) -> dict` writes one for a model trained here;
    - `key_table(config) -> [Entry]` lists every tensor in model order;
    - `require_exportable(config) -> config` refuses configs the format cannot hold;
    - `ignored(key, config)`: source tensors that are dropped on import (e.g. rotary buffers);
    - `hint(key) -> str`: a hint appended to the "unexpected tensor" error.
    """

    name: str
    model_types: tuple[str, ...]
    config_type: type
    config_from_hf: Callable[[dict, str], Any]
    hf_config_from_model: Callable[[Any, str], dict]
    key_table: Callable[[Any], list[Entry]]
    require_exportable: Callable[[Any], Any]
    ignored: Callable[[str, Any], bool] = lambda key, config: False
    hint: Callable[[str], str] = lambda key: ""


ARCHITECTURES: Registry = Registry("Hugging Face model_type")


def register_architecture(arch: Architecture) -> Architecture:
    """Register `arch` under each of its `model_types`."""
    for model_type in arch.model_types:
        ARCHITECTURES.register(model_type)(arch)
    return arch


def _load_architectures() -> None:
    from neurojax.interop import hf_llama, hf_mmfree  # noqa: F401  (each registers its architecture)


def architecture_of(hf_config: dict, source: str) -> Architecture:
    """The registered architecture of a `config.json`'s `model_type`; a clear error for the others."""
    _load_architectures()
    model_type = hf_config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise NeurojaxError(f"{source!r} has model_type {model_type!r}; neurojax imports "
                            f"{sorted(ARCHITECTURES.names())}")
    return ARCHITECTURES.get(model_type)


def architecture_for(config: Any) -> Architecture:
    """The architecture that holds a neurojax model config (for export)."""
    _load_architectures()
    for name in ARCHITECTURES.names():
        arch = ARCHITECTURES.get(name)
        if isinstance(config, arch.config_type):
            return arch
    raise NeurojaxError(f"no Hugging Face format holds a {type(config).__name__} model (the hybrid has none yet)")


# ---------------------------------------------------------------------------------------------- checks


def read_hf_config(path: str) -> dict:
    if not os.path.isfile(path):
        raise NeurojaxError(f"{path!r} does not exist: a Hugging Face model directory needs {HF_CONFIG}")
    return read_json_object(path)


def listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_tensors(layout: st.Layout, table: list[Entry], config_path: str, arch: Architecture,
                  config: Any) -> None:
    """Every key of `table` present with its shape and a latent float dtype, and no other (non-ignored) key."""
    expected = {e.key: e for e in table}
    where = (os.path.join(layout.directory, st.INDEX_FILE) if layout.sharded
             else os.path.join(layout.directory, st.SINGLE_FILE))
    missing = [k for k in expected if k not in layout.tensors]
    if missing:
        raise NeurojaxError(f"{where!r} lacks tensor {listing(missing)}, which {config_path!r} implies; the "
                            f"checkpoint is incomplete or does not belong to this config.json")
    unexpected = [k for k in layout.tensors if k not in expected and not arch.ignored(k, config)]
    if unexpected:
        first = layout.tensors[unexpected[0]]
        raise NeurojaxError(f"{os.path.join(layout.directory, first.file)!r} holds unexpected tensor "
                            f"{listing(unexpected)}{arch.hint(unexpected[0])}; it is not a {arch.name} checkpoint "
                            f"of {config_path!r}")
    for key, e in expected.items():
        info = layout.tensors[key]
        if info.shape != e.shape:
            raise NeurojaxError(f"tensor {key!r} in {layout.path(key)!r} has shape {list(info.shape)}, but "
                                f"{config_path!r} implies {list(e.shape)}")
        if info.dtype not in LATENT_DTYPES:
            raise NeurojaxError(f"tensor {key!r} in {layout.path(key)!r} has dtype {info.dtype}; weights "
                                f"must be one of {list(LATENT_DTYPES)}")


def _check_tokenizers(hf_dir: str, vocab_size: int) -> None:
    for name in (TOKENIZER_JSON, SENTENCEPIECE_MODEL):
        path = os.path.join(hf_dir, name)
        if os.path.isfile(path):
            load_tokenizer(path, vocab_size=vocab_size)


def fresh_target(path: str, flag: str) -> None:
    """`path` must not exist or be an empty directory (nothing there is ever overwritten)."""
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise NeurojaxError(f"{flag} {path!r} already exists and is not empty; give a new directory")


def staging_dir(path: str) -> str:
    return f"{os.path.abspath(path).rstrip(os.sep)}.partial-{os.getpid()}"


def commit(staging: str, path: str) -> None:
    if os.path.isdir(path):
        os.rmdir(path)  # empty (checked before)
    os.rename(staging, path)


def copy_files(src_dir: str, dst_dir: str, names: Iterable[str] = COPIED_FILES) -> list[str]:
    copied = []
    for name in names:
        if os.path.isfile(os.path.join(src_dir, name)):
            os.makedirs(dst_dir, exist_ok=True)
            shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst_dir, name))
            copied.append(name)
    return copied


# ---------------------------------------------------------------------------------------------- import


def _save_checkpoint(workdir: str, step: int, params: Any, train: Any, meta: dict, in_flight_bytes: int) -> None:
    """What `Checkpointer(workdir).save(step, params, train, meta)` writes (the same orbax layout,
    `checkpoints/<step>/{params,train,meta}`, read back by `Checkpointer`), with orbax's write
    concurrency bounded to `in_flight_bytes`: by default orbax stages every array at once, which
    for a large import would add about the checkpoint's size again on top of the params."""
    import orbax.checkpoint as ocp

    limit_gb = max(int(in_flight_bytes), 16 << 20) / 1e9
    options = ocp.CheckpointManagerOptions(max_to_keep=None, create=True, enable_async_checkpointing=False)
    handlers = {"params": ocp.StandardCheckpointHandler(save_concurrent_gb=limit_gb),
                "train": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")  # Checkpointer's directory
    manager = ocp.CheckpointManager(directory, options=options, item_handlers=handlers)
    try:
        manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                                   train=ocp.args.StandardSave(train), meta=ocp.args.JsonSave(meta)),
                     force=True)
        manager.wait_until_finished()
    finally:
        manager.close()


def imported_run_config(config: Any, tokenizer: str = "") -> dict:
    """The run config recorded in an imported workdir: the default sections with this `model`
    (MatMul-free sections carry no `family`, as `model_section` writes them) and, for a model with its own
    tokenizer, `data.tokenizer` naming it (so training and evaluation read the corpus in its tokens)."""
    run = run_config("tiny")
    run.data.tokenizer = tokenizer
    section = config.to_dict()
    if not isinstance(config, ModelConfig):
        section = {FAMILY_FIELD: family_of(config), **section}
    run.model = ml_collections.ConfigDict(section)
    budget = getattr(config, "max_seq_len", None)
    if budget is not None and run.train.seq_len > budget:
        run.train.seq_len = budget  # the default training length must fit the model's position budget
    validate_run_config(run)
    return json.loads(json.dumps(run.to_dict()))


def import_hf(hf_dir: str, workdir: str, log: Callable[[str], None] = lambda s: None) -> dict:
    """Convert the Hugging Face directory `hf_dir` (any registered `model_type`) into a new neurojax workdir.

    Returns a summary (`config`, `tensors`, `bytes`, `dtypes`, `files`). Raises `NeurojaxError`,
    writing nothing, for any bad input.
    """
    config_path = os.path.join(hf_dir, HF_CONFIG)
    hf_config = read_hf_config(config_path)
    arch = architecture_of(hf_config, config_path)
    cfg = arch.config_from_hf(hf_config, config_path)
    layout = st.read_layout(hf_dir)
    table = arch.key_table(cfg)
    check_tensors(layout, table, config_path, arch, cfg)
    abstract = flax.traverse_util.flatten_dict(abstract_params(cfg))
    if set(abstract) != {e.path for e in table} or any(abstract[e.path].shape != e.shape for e in table):
        raise AssertionError("key_table disagrees with the model's parameters")  # a bug, not bad input
    _check_tokenizers(hf_dir, cfg.vocab_size)
    fresh_target(workdir, "--workdir")
    has_tokenizer = any(os.path.isfile(os.path.join(hf_dir, n)) for n in (TOKENIZER_JSON, SENTENCEPIECE_MODEL))
    record = imported_run_config(cfg, os.path.join(os.path.abspath(workdir), HF_SUBDIR) if has_tokenizer else "")
    used = [layout.tensors[e.key] for e in table]
    log(f"importing {len(table)} tensors ({sum(t.nbytes for t in used) / 2**20:,.1f} MiB, "
        f"{'/'.join(sorted({t.dtype for t in used}))}) from {hf_dir} ({arch.name})")

    staging = staging_dir(workdir)
    shutil.rmtree(staging, ignore_errors=True)
    keys = {e.key for e in table}
    try:
        flat = {}
        for e in table:  # one tensor at a time, kept in its stored dtype (converted once, on restore)
            flat[e.path] = jax.device_put(st.read_tensor(layout, e.key))  # zero-copy: aligned buffer
        meta = {"step": IMPORT_STEP, "config": record, META_KEY: {
            "directory": os.path.abspath(hf_dir),
            "dtypes": {e.key: layout.tensors[e.key].dtype for e in table},
            "files": {name: [k for k, t in layout.tensors.items() if t.file == name and k in keys]
                      for name in layout.files},
            "file_metadata": layout.file_metadata,
            "index_metadata": layout.index_metadata,
        }}
        largest = max(t.nbytes for t in used)
        _save_checkpoint(staging, IMPORT_STEP, flax.traverse_util.unflatten_dict(flat),
                         {"step": np.int32(IMPORT_STEP)}, meta, in_flight_bytes=2 * largest)
        del flat
        write_json_atomic(os.path.join(staging, CONFIG_FILE), record)
        copied = copy_files(hf_dir, os.path.join(staging, HF_SUBDIR))
        commit(staging, workdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"wrote {workdir}: {cfg.num_layers} layers, d={cfg.d_model}, vocab {cfg.vocab_size}; "
        f"copied {', '.join(copied) or 'no extra files'}")
    return {"config": cfg, "tensors": len(table), "bytes": sum(t.nbytes for t in used), "files": layout.files,
            "dtypes": sorted({t.dtype for t in used})}


# ---------------------------------------------------------------------------------------------- export


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as `5GB` (10^9, as transformers counts), `500MiB` or `123456`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise NeurojaxError(f"cannot read the size {text!r}; write e.g. 5GB, 500MB, 2GiB or a number of bytes")
    size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if size <= 0:
        raise NeurojaxError(f"the size {text!r} must be positive")
    return size


def dtype_code(dtype: Optional[str]) -> Optional[str]:
    """The safetensors code of an export dtype name; None for "source" / None (keep each tensor's dtype)."""
    if dtype is None or dtype == "source":
        return None
    if dtype not in DTYPE_NAMES:
        raise NeurojaxError(f"unknown export dtype {dtype!r}; use one of {['source', *DTYPE_NAMES]}")
    return DTYPE_NAMES[dtype]


def write_hf_directory(out_dir: str, table: list[Entry], dtypes: dict[str, str], take: Callable[[tuple], Any],
                       hf_config: dict, files: Optional[dict] = None, metadata: Optional[dict] = None,
                       index_metadata: Optional[dict] = None, max_shard_bytes: Optional[int] = None,
                       extra_files: Optional[dict[str, Any]] = None, copy_from: Optional[str] = None,
                       flag: str = "--to_hf") -> dict:
    """Write a Hugging Face directory (new or empty `out_dir`), one tensor at a time.

    `take(path)` returns (and may release) the parameter at `path`; it is converted to
    `dtypes[key]` just before it is written. `files` (file name -> keys) keeps a source's shard
    layout, else shards of at most `max_shard_bytes` (one `model.safetensors` by default).
    `extra_files` (name -> str / bytes) and the `COPIED_FILES` found in `copy_from` are written
    beside; `hf_config` is written as config.json (None: copied verbatim from `copy_from`).
    Staged, then renamed.
    """
    fresh_target(out_dir, flag)
    specs = {e.key: st.TensorInfo(e.key, "", dtypes[e.key], e.shape) for e in table}
    if files is None:
        files = st.plan_shards([specs[e.key] for e in table], max_shard_bytes)
    else:
        files = {name: [specs[k] for k in keys] for name, keys in files.items()}
    by_key = {e.key: e for e in table}

    def produce(key: str) -> np.ndarray:
        return np.asarray(take(by_key[key].path)).astype(st.DTYPES[dtypes[key]], copy=False)

    staging = staging_dir(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        st.write_checkpoint(staging, files, produce, metadata or {"format": "pt"}, index_metadata)
        names = [n for n in COPIED_FILES if n != HF_CONFIG or hf_config is None]
        copied = copy_files(copy_from, staging, names) if copy_from else []
        for name, content in (extra_files or {}).items():
            with open(os.path.join(staging, name), "wb" if isinstance(content, bytes) else "w") as f:
                f.write(content)
            copied.append(name)
        if hf_config is not None:
            write_json_atomic(os.path.join(staging, HF_CONFIG), hf_config)
        commit(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    total = sum(s.nbytes for specs_ in files.values() for s in specs_)
    return {"files": list(files), "tensors": len(table), "bytes": total, "copied": copied}


def export_hf(workdir: str, out_dir: str, step: Optional[int] = None, dtype: Optional[str] = None,
              max_shard_bytes: Optional[int] = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Write the model of `workdir` as a Hugging Face directory `out_dir` (new or empty) of its architecture.

    `dtype`: "source" / None keeps each tensor's imported dtype (float32 for a run trained here),
    or "bfloat16" / "float32" / "float16" for every tensor. `max_shard_bytes`: None keeps the
    source's shard layout (one `model.safetensors` for a run trained here), else shards of at
    most that size. An imported, unchanged workdir exports tensors byte-for-byte identical to
    its source, and its source `config.json` verbatim.
    """
    cfg = model_config(read_run_config(workdir)["model"])
    arch = architecture_for(cfg)
    cfg = arch.require_exportable(cfg)
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        meta = ckpt.restore_meta(step)
        step = int(meta["step"])
        target = dtype_code(dtype)
        source = meta.get(META_KEY)
        table = arch.key_table(cfg)
        stored = {e.key: (source["dtypes"][e.key] if source else "F32") for e in table}
        out = {e.key: target or stored[e.key] for e in table}
        files = source["files"] if (max_shard_bytes is None and source) else None
        # safetensors metadata and the index's own metadata (its total_size is recomputed) as imported
        metadata = next(iter(source["file_metadata"].values()), None) if source else None
        index_metadata = source["index_metadata"] if source else None
        fresh_target(out_dir, "--to_hf")
        # Restore in the stored dtypes (no conversion), then convert tensor by tensor as it is written.
        flat_abstract = {e.path: jax.ShapeDtypeStruct(e.shape, st.DTYPES[stored[e.key]]) for e in table}
        params, _, _ = ckpt.restore(flax.traverse_util.unflatten_dict(flat_abstract), step=step)
    finally:
        ckpt.close()
    flat = flax.traverse_util.flatten_dict(params)
    del params
    hf_dir = os.path.join(workdir, HF_SUBDIR)
    source_config = os.path.join(hf_dir, HF_CONFIG)
    if source and target is None and os.path.isfile(source_config):
        hf_config = None  # copied verbatim
    elif os.path.isfile(source_config):
        hf_config = read_hf_config(source_config)
        codes = set(out.values())
        hf_config["torch_dtype"] = TORCH_DTYPES[codes.pop()] if len(codes) == 1 else "float32"
    else:
        codes = set(out.values())
        hf_config = arch.hf_config_from_model(cfg, TORCH_DTYPES[codes.pop()] if len(codes) == 1 else "float32")
    done = write_hf_directory(out_dir, table, out, flat.pop, hf_config, files, metadata, index_metadata,
                              max_shard_bytes, copy_from=hf_dir)
    log(f"wrote {out_dir}: {len(table)} tensors in {len(done['files'])} file(s), {done['bytes'] / 2**20:,.1f} MiB "
        f"({'/'.join(sorted(set(out.values())))}), step {step}; copied {', '.join([HF_CONFIG, *done['copied']])}")
    return {"files": done["files"], "tensors": len(table), "bytes": done["bytes"], "step": step}


def workdir_tokenizer(workdir: str):
    """The tokenizer a workdir's model reads: the imported `tokenizer.json` / `tokenizer.model` in
    `<workdir>/hf/` (checked against the model's vocabulary), else the `ByteTokenizer`."""
    vocab_size = int(read_run_config(workdir)["model"]["vocab_size"])
    hf_dir = os.path.join(workdir, HF_SUBDIR)
    if any(os.path.isfile(os.path.join(hf_dir, n)) for n in (TOKENIZER_JSON, SENTENCEPIECE_MODEL)):
        return load_tokenizer(hf_dir, vocab_size=vocab_size)
    return load_tokenizer(None)
