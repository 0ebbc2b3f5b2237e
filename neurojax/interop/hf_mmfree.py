"""Hugging Face MMfreeLM checkpoints (`ridger/MMfreeLM-*`, model type `hgrn_bit`) <-> neurojax workdirs.

    import_hf("MMfreeLM-370M/", "workdir/mmfree370m")        # then every binary runs on the workdir
    export_hf("workdir/mmfree370m", "out/")                   # the same layout back, tensor bytes identical
    export_packed_ternary("workdir/mmfree370m", "packed/")    # a different format: 2-bit codes + scales

A Hugging Face directory holds `config.json` and `model.safetensors` (or shards named by
`model.safetensors.index.json`), latent weights in bf16 or f32 under the keys of the spec's table
(`key_table` builds it from the config). Import validates everything first (config fields, every
key present and expected, every shape, every dtype, every file complete, the tokenizer's vocabulary)
and only then writes, into a temporary directory renamed into place at the end, so a bad input leaves
nothing behind.

Memory: tensors are read one at a time with plain file reads into aligned buffers that JAX adopts
without copying (nothing stays mapped), kept in their source dtype (converted once, when a binary
restores them as float32, the model's parameter dtype, where the ternary codes are defined; bf16 ->
f32 is exact), and saved with orbax's write concurrency bounded to twice the largest tensor. An
import thus holds the checkpoint once plus a few tensors in flight: 1.3-1.4x the checkpoint's size
at peak, measured in the tests (about 2x with orbax's default concurrency, 3x converting to float32).

The source dtypes, shard layout and safetensors metadata go into the checkpoint's `meta`
(`hf_source`), and the source's `config.json`, tokenizer files and model card are copied verbatim
into `<workdir>/hf/` (`workdir_tokenizer` loads the tokenizer from there), so `export_hf` writes the
same directory back.

The packed export stores each projection as `neurojax.kernels.ternary_matmul.pack` data (2 bits
per weight) with its scale `s_w` (`W ~= codes / s_w`; re-deriving the scale from ternary codes would
destroy the model), under other key names and another file name, so nothing mistakes it for the
latent format; `load_packed_ternary` reads it into inference variables.
"""
import dataclasses
import json
import os
import re
import shutil
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from neurojax.data.hf_tokenizer import SENTENCEPIECE_MODEL, TOKENIZER_JSON, load_tokenizer
from neurojax.data.tokenizer import ByteTokenizer
from neurojax.errors import NeurojaxError
from neurojax.files import read_json_object, write_json_atomic
from neurojax.interop import safetensors_io as st
from neurojax.kernels.ternary_matmul.pack import packed_rows
from neurojax.nn.bitlinear import QUANTIZED
from neurojax.nn.config import ModelConfig
from neurojax.nn.lm import MatMulFreeLM
from neurojax.nn.params import abstract_params, inference_variables
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.config import run_config, validate_run_config
from neurojax.train.model_factory import model_config, require_matmulfree
from neurojax.train.restore import load_trained
from neurojax.train.workdir import CONFIG_FILE, read_run_config

MODEL_TYPE = "hgrn_bit"
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
# HGRNBitConfig's defaults, applied (as transformers does) to fields a config.json leaves out.
HF_DEFAULTS = {"num_heads": 1, "expand_ratio": 1, "use_short_conv": False, "use_lower_bound": True,
               "hidden_ratio": 4, "intermediate_size": None, "rms_norm_eps": 1e-6, "tie_word_embeddings": False,
               "initializer_range": 0.02}
REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers")
PROJECTIONS = ("i_proj", "f_proj", "g_proj", "o_proj")

PACKED_FILE = "model.packed_ternary.safetensors"
PACKED_FORMAT = "neurojax-packed-ternary-v1"
PACKED_SUFFIX = ".weight_packed"  # uint8 [K4, N_out], layout of neurojax.kernels.ternary_matmul.pack
SCALE_SUFFIX = ".weight_s_w"  # float32 [], W ~= codes / s_w


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


def key_table(cfg: ModelConfig) -> list[Entry]:
    """Every tensor of an MMfreeLM checkpoint with `cfg`'s architecture, in model order (spec's table)."""
    d, ffn, v = cfg.d_model, cfg.ffn_size, cfg.vocab_size
    out = [Entry("model.embeddings.weight", ("embeddings", "embedding"), (v, d))]
    if cfg.use_lower_bound:
        out.append(Entry("model.lower_bounds", ("lower_bounds",), (cfg.num_layers, d)))

    def linear(key, path, n_out, n_in):
        return [Entry(f"{key}.weight", (*path, "weight"), (n_out, n_in), projection=True),
                Entry(f"{key}.norm.weight", (*path, "norm", "weight"), (n_in,))]

    for layer in range(cfg.num_layers):
        k, p = f"model.layers.{layer}", (f"layers_{layer}",)
        out.append(Entry(f"{k}.attn_norm.weight", (*p, "attn_norm", "weight"), (d,)))
        for proj in PROJECTIONS:
            out += linear(f"{k}.attn.{proj}", (*p, "attn", proj), d, d)
        out.append(Entry(f"{k}.attn.g_norm.weight", (*p, "attn", "g_norm", "weight"), (d,)))
        out.append(Entry(f"{k}.mlp_norm.weight", (*p, "mlp_norm", "weight"), (d,)))
        out += linear(f"{k}.mlp.gate_proj", (*p, "mlp", "gate_proj"), 2 * ffn, d)
        out += linear(f"{k}.mlp.down_proj", (*p, "mlp", "down_proj"), d, ffn)
    out.append(Entry("model.norm.weight", ("norm", "weight"), (d,)))
    out += linear("lm_head", ("lm_head",), v, d)
    return out


# ---------------------------------------------------------------------------------------------- config


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise NeurojaxError(f"{path!r} does not exist: a Hugging Face model directory needs {HF_CONFIG}")
    return read_json_object(path)


def model_config_from_hf(hf: dict, source: str = HF_CONFIG) -> ModelConfig:
    """The `ModelConfig` of an `hgrn_bit` config.json (`source` names the file in errors)."""
    if hf.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise NeurojaxError(f"{source!r} has model_type {hf.get('model_type')!r}; only MMfreeLM ({MODEL_TYPE!r}) "
                            f"checkpoints can be imported")
    missing = [f for f in REQUIRED_FIELDS if hf.get(f) is None]
    if missing:
        raise NeurojaxError(f"{source!r} lacks the required fields {missing}")
    values = {k: (hf[k] if hf.get(k) is not None else v) if k != "intermediate_size" else hf.get(k)
              for k, v in HF_DEFAULTS.items()}
    values.update({k: hf[k] for k in REQUIRED_FIELDS})
    ints = ("vocab_size", "hidden_size", "num_hidden_layers", "num_heads", "expand_ratio")
    for name in ints + ("intermediate_size",):
        value = values[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise NeurojaxError(f"{source!r}: {name} must be a positive integer, got {value!r}")
    for name in ("use_short_conv", "use_lower_bound", "tie_word_embeddings"):
        if not isinstance(values[name], bool):
            raise NeurojaxError(f"{source!r}: {name} must be true or false, got {values[name]!r}")
    for name in ("rms_norm_eps", "hidden_ratio", "initializer_range"):
        if isinstance(values[name], bool) or not isinstance(values[name], (int, float)) or values[name] < 0:
            raise NeurojaxError(f"{source!r}: {name} must be a non-negative number, got {values[name]!r}")
    unsupported = {"expand_ratio": (values["expand_ratio"], 1), "use_short_conv": (values["use_short_conv"], False),
                   "tie_word_embeddings": (values["tie_word_embeddings"], False)}
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise NeurojaxError(f"{source!r}: {name}={json.dumps(value)} is not supported (the released MMfreeLM "
                                f"checkpoints and neurojax use {json.dumps(supported)})")
    try:
        return ModelConfig(vocab_size=values["vocab_size"], d_model=values["hidden_size"],
                           num_layers=values["num_hidden_layers"], intermediate_size=values["intermediate_size"],
                           hidden_ratio=values["hidden_ratio"], num_heads=values["num_heads"],
                           use_lower_bound=values["use_lower_bound"], rms_norm_eps=float(values["rms_norm_eps"]),
                           init_std=float(values["initializer_range"]))
    except NeurojaxError as e:
        raise NeurojaxError(f"{source!r}: {e}") from None


def hf_config_from_model(cfg: ModelConfig, torch_dtype: str = "float32") -> dict:
    """A config.json for a neurojax-trained model (byte tokenizer: PAD/BOS/EOS = 256/257/258)."""
    tok = ByteTokenizer()
    return {
        "architectures": ["HGRNBitForCausalLM"], "model_type": MODEL_TYPE, "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model, "num_hidden_layers": cfg.num_layers, "num_heads": cfg.num_heads,
        "expand_ratio": 1, "use_short_conv": False, "use_lower_bound": cfg.use_lower_bound,
        "hidden_ratio": cfg.hidden_ratio, "intermediate_size": cfg.intermediate_size,
        "rms_norm_eps": cfg.rms_norm_eps, "hidden_act": "swish", "tie_word_embeddings": False,
        "initializer_range": cfg.init_std, "torch_dtype": torch_dtype, "use_cache": True,
        "pad_token_id": tok.PAD, "bos_token_id": tok.BOS, "eos_token_id": tok.EOS,
    }


def require_exportable(cfg: Any) -> ModelConfig:
    """`cfg` if the MMfreeLM format can hold it (ternary MLGRU + GLU, absmax int8 inputs)."""
    cfg = require_matmulfree(cfg, "the MMfreeLM (hgrn_bit) format")
    if cfg.full_precision:
        raise NeurojaxError("a full-precision run has no ternary projections; the MMfreeLM format cannot hold it")
    if cfg.spike_k is not None:
        raise NeurojaxError("a spike-coded run (model.spike_k) computes differently from MMfreeLM; it cannot be "
                            "exported in its format")
    if (cfg.token_mixer, cfg.channel_mixer) != ("mlgru", "glu"):
        raise NeurojaxError(f"the MMfreeLM format holds MLGRU + GLU blocks, this run uses model.token_mixer="
                            f"{cfg.token_mixer!r} and model.channel_mixer={cfg.channel_mixer!r}")
    return cfg


# ---------------------------------------------------------------------------------------------- checks


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_tensors(layout: st.Layout, table: list[Entry], config_path: str) -> None:
    """Every key of `table` present with its shape and a latent float dtype, and no other key."""
    expected = {e.key: e for e in table}
    where = (os.path.join(layout.directory, st.INDEX_FILE) if layout.sharded
             else os.path.join(layout.directory, st.SINGLE_FILE))
    missing = [k for k in expected if k not in layout.tensors]
    if missing:
        raise NeurojaxError(f"{where!r} lacks tensor {_listing(missing)}, which {config_path!r} implies; the "
                            f"checkpoint is incomplete or does not belong to this config.json")
    unexpected = [k for k in layout.tensors if k not in expected]
    if unexpected:
        first = layout.tensors[unexpected[0]]
        hint = (" (config.json says use_lower_bound=false)" if unexpected[0] == "model.lower_bounds" else "")
        raise NeurojaxError(f"{os.path.join(layout.directory, first.file)!r} holds unexpected tensor "
                            f"{_listing(unexpected)}{hint}; it is not an MMfreeLM checkpoint of {config_path!r}")
    for key, e in expected.items():
        info = layout.tensors[key]
        if info.shape != e.shape:
            raise NeurojaxError(f"tensor {key!r} in {layout.path(key)!r} has shape {list(info.shape)}, but "
                                f"{config_path!r} implies {list(e.shape)}")
        if info.dtype not in LATENT_DTYPES:
            raise NeurojaxError(f"tensor {key!r} in {layout.path(key)!r} has dtype {info.dtype}; latent weights "
                                f"must be one of {list(LATENT_DTYPES)}")


def _check_tokenizers(hf_dir: str, vocab_size: int) -> None:
    for name in (TOKENIZER_JSON, SENTENCEPIECE_MODEL):
        path = os.path.join(hf_dir, name)
        if os.path.isfile(path):
            load_tokenizer(path, vocab_size=vocab_size)


def _fresh_target(path: str, flag: str) -> None:
    """`path` must not exist or be an empty directory (nothing there is ever overwritten)."""
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise NeurojaxError(f"{flag} {path!r} already exists and is not empty; give a new directory")


def _staging(path: str) -> str:
    return f"{os.path.abspath(path).rstrip(os.sep)}.partial-{os.getpid()}"


def _commit(staging: str, path: str) -> None:
    if os.path.isdir(path):
        os.rmdir(path)  # empty (checked before)
    os.rename(staging, path)


def _copy_files(src_dir: str, dst_dir: str, names=COPIED_FILES) -> list[str]:
    copied = []
    for name in names:
        if os.path.isfile(os.path.join(src_dir, name)):
            os.makedirs(dst_dir, exist_ok=True)
            shutil.copyfile(os.path.join(src_dir, name), os.path.join(dst_dir, name))
            copied.append(name)
    return copied


def _flat_abstract(cfg: ModelConfig) -> dict:
    return flax.traverse_util.flatten_dict(abstract_params(cfg))


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


def imported_run_config(cfg: ModelConfig) -> dict:
    """The run config recorded in an imported workdir: the default sections with this `model`."""
    run = run_config("tiny")
    run.model = ml_collections.ConfigDict(cfg.to_dict())
    validate_run_config(run)
    return json.loads(json.dumps(run.to_dict()))


def import_hf(hf_dir: str, workdir: str, log: Callable[[str], None] = lambda s: None) -> dict:
    """Convert the Hugging Face MMfreeLM directory `hf_dir` into a new neurojax workdir.

    Returns a summary (`config`, `tensors`, `bytes`, `dtypes`, `files`). Raises `NeurojaxError`,
    writing nothing, for any bad input.
    """
    config_path = os.path.join(hf_dir, HF_CONFIG)
    hf_config = _read_json(config_path)
    cfg = model_config_from_hf(hf_config, config_path)
    layout = st.read_layout(hf_dir)
    table = key_table(cfg)
    check_tensors(layout, table, config_path)
    abstract = _flat_abstract(cfg)
    if set(abstract) != {e.path for e in table} or any(abstract[e.path].shape != e.shape for e in table):
        raise AssertionError("key_table disagrees with the model's parameters")  # a bug, not bad input
    _check_tokenizers(hf_dir, cfg.vocab_size)
    _fresh_target(workdir, "--workdir")
    record = imported_run_config(cfg)
    log(f"importing {len(table)} tensors ({layout.total_bytes / 2**20:,.1f} MiB, "
        f"{'/'.join(sorted({t.dtype for t in layout.tensors.values()}))}) from {hf_dir}")

    staging = _staging(workdir)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        flat = {}
        for e in table:  # one tensor at a time, kept in its stored dtype (converted once, on restore)
            flat[e.path] = jax.device_put(st.read_tensor(layout, e.key))  # zero-copy: aligned buffer
        meta = {"step": IMPORT_STEP, "config": record, META_KEY: {
            "directory": os.path.abspath(hf_dir),
            "dtypes": {k: t.dtype for k, t in layout.tensors.items()},
            "files": {name: [k for k, t in layout.tensors.items() if t.file == name] for name in layout.files},
            "file_metadata": layout.file_metadata,
            "index_metadata": layout.index_metadata,
        }}
        largest = max(t.nbytes for t in layout.tensors.values())
        _save_checkpoint(staging, IMPORT_STEP, flax.traverse_util.unflatten_dict(flat),
                         {"step": np.int32(IMPORT_STEP)}, meta, in_flight_bytes=2 * largest)
        del flat
        write_json_atomic(os.path.join(staging, CONFIG_FILE), record)
        copied = _copy_files(hf_dir, os.path.join(staging, HF_SUBDIR))
        _commit(staging, workdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"wrote {workdir}: {cfg.num_layers} layers, d={cfg.d_model}, vocab {cfg.vocab_size}, "
        f"intermediate {cfg.ffn_size}; copied {', '.join(copied) or 'no extra files'}")
    return {"config": cfg, "tensors": len(table), "bytes": layout.total_bytes, "files": layout.files,
            "dtypes": sorted({t.dtype for t in layout.tensors.values()})}


# ---------------------------------------------------------------------------------------------- export


def _workdir_model(workdir: str, step: Optional[int]) -> tuple[ModelConfig, Checkpointer, int, dict]:
    cfg = require_exportable(model_config(read_run_config(workdir)["model"]))
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        meta = ckpt.restore_meta(step)
    except BaseException:
        ckpt.close()
        raise
    return cfg, ckpt, int(meta["step"]), meta


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


def _dtype_code(dtype: Optional[str]) -> Optional[str]:
    if dtype is None or dtype == "source":
        return None
    if dtype not in DTYPE_NAMES:
        raise NeurojaxError(f"unknown export dtype {dtype!r}; use one of {['source', *DTYPE_NAMES]}")
    return DTYPE_NAMES[dtype]


def export_hf(workdir: str, out_dir: str, step: Optional[int] = None, dtype: Optional[str] = None,
              max_shard_bytes: Optional[int] = None, log: Callable[[str], None] = lambda s: None) -> dict:
    """Write the model of `workdir` as a Hugging Face MMfreeLM directory `out_dir` (new or empty).

    `dtype`: "source" / None keeps each tensor's imported dtype (float32 for a run trained here),
    or "bfloat16" / "float32" / "float16" for every tensor. `max_shard_bytes`: None keeps the
    source's shard layout (one `model.safetensors` for a run trained here), else shards of at
    most that size. An imported, unchanged workdir exports tensors byte-for-byte identical to
    its source.
    """
    cfg, ckpt, step, meta = _workdir_model(workdir, step)
    try:
        target = _dtype_code(dtype)
        source = meta.get(META_KEY)
        table = key_table(cfg)
        stored = {e.key: (source["dtypes"][e.key] if source else "F32") for e in table}
        out = {e.key: target or stored[e.key] for e in table}
        specs = {e.key: st.TensorInfo(e.key, "", out[e.key], e.shape) for e in table}
        if max_shard_bytes is None and source:
            files = {name: [specs[k] for k in keys] for name, keys in source["files"].items()}
        else:
            files = st.plan_shards([specs[e.key] for e in table], max_shard_bytes)
        # safetensors metadata and the index's own metadata (its total_size is recomputed) as imported
        metadata = next(iter(source["file_metadata"].values()), None) if source else {"format": "pt"}
        index_metadata = source["index_metadata"] if source else None
        _fresh_target(out_dir, "--to_hf")
        # Restore in the stored dtypes (no conversion), then convert tensor by tensor as it is written.
        flat_abstract = {e.path: jax.ShapeDtypeStruct(e.shape, st.DTYPES[stored[e.key]]) for e in table}
        params, _, _ = ckpt.restore(flax.traverse_util.unflatten_dict(flat_abstract), step=step)
    finally:
        ckpt.close()
    flat = flax.traverse_util.flatten_dict(params)
    by_key = {e.key: e for e in table}
    del params

    def produce(key: str) -> np.ndarray:
        array = np.asarray(flat.pop(by_key[key].path))
        return array.astype(st.DTYPES[out[key]], copy=False)

    staging = _staging(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        st.write_checkpoint(staging, files, produce, metadata, index_metadata)
        hf_dir = os.path.join(workdir, HF_SUBDIR)
        copied = _copy_files(hf_dir, staging, [n for n in COPIED_FILES if n != HF_CONFIG])
        source_config = os.path.join(hf_dir, HF_CONFIG)
        if source and target is None and os.path.isfile(source_config):
            shutil.copyfile(source_config, os.path.join(staging, HF_CONFIG))  # verbatim
        else:
            hf_config = _read_json(source_config) if os.path.isfile(source_config) else hf_config_from_model(cfg)
            codes = set(out.values())
            hf_config["torch_dtype"] = TORCH_DTYPES[codes.pop()] if len(codes) == 1 else "float32"
            write_json_atomic(os.path.join(staging, HF_CONFIG), hf_config)
        _commit(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    total = sum(s.nbytes for specs_ in files.values() for s in specs_)
    log(f"wrote {out_dir}: {len(table)} tensors in {len(files)} file(s), {total / 2**20:,.1f} MiB "
        f"({'/'.join(sorted(set(out.values())))}), step {step}; copied {', '.join([HF_CONFIG, *copied])}")
    return {"files": list(files), "tensors": len(table), "bytes": total, "step": step}


def workdir_tokenizer(workdir: str):
    """The tokenizer a workdir's model reads: the imported `tokenizer.json` / `tokenizer.model` in
    `<workdir>/hf/` (checked against the model's vocabulary), else the `ByteTokenizer`."""
    vocab_size = int(read_run_config(workdir)["model"]["vocab_size"])
    hf_dir = os.path.join(workdir, HF_SUBDIR)
    if any(os.path.isfile(os.path.join(hf_dir, n)) for n in (TOKENIZER_JSON, SENTENCEPIECE_MODEL)):
        return load_tokenizer(hf_dir, vocab_size=vocab_size)
    return load_tokenizer(None)


# ---------------------------------------------------------------------------------------------- packed


def export_packed_ternary(workdir: str, out_dir: str, step: Optional[int] = None,
                          log: Callable[[str], None] = lambda s: None) -> dict:
    """Write `out_dir/model.packed_ternary.safetensors`: every projection as packed 2-bit codes
    (`<key minus .weight>.weight_packed`, uint8 `[K4, N_out]`) with its float32 scale
    (`...weight_s_w`, `W ~= codes / s_w`), every other tensor as in `export_hf`'s source dtype;
    plus `config.json` and the tokenizer files. Not loadable as a latent checkpoint, by design."""
    cfg = require_exportable(model_config(read_run_config(workdir)["model"]))
    _fresh_target(out_dir, "--to_hf")
    trained = load_trained(workdir, step)
    ckpt = Checkpointer(workdir, read_only=True)
    try:
        source = ckpt.restore_meta(trained.step).get(META_KEY)
    finally:
        ckpt.close()
    variables = inference_variables(trained.model, trained.params)
    params = flax.traverse_util.flatten_dict(variables["params"])
    quantized = flax.traverse_util.flatten_dict(variables[QUANTIZED])
    specs, arrays = [], {}
    for e in key_table(cfg):
        if e.projection:
            owner = e.path[:-1]
            packed = np.asarray(quantized[(*owner, "packed")])
            arrays[e.stem + PACKED_SUFFIX] = packed
            arrays[e.stem + SCALE_SUFFIX] = np.asarray(quantized[(*owner, "scale")], np.float32).reshape(())
            specs += [st.TensorInfo(e.stem + PACKED_SUFFIX, PACKED_FILE, "U8", packed.shape),
                      st.TensorInfo(e.stem + SCALE_SUFFIX, PACKED_FILE, "F32", ())]
        else:
            code = source["dtypes"][e.key] if source else "F32"
            arrays[e.key] = np.asarray(params[e.path]).astype(st.DTYPES[code])
            specs.append(st.TensorInfo(e.key, PACKED_FILE, code, e.shape))
    staging = _staging(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        st.write_file(os.path.join(staging, PACKED_FILE), specs, arrays.pop, {
            "format": PACKED_FORMAT,
            "packing": "neurojax.kernels.ternary_matmul.pack: uint8 [K4, N_out], K4 = 64 * ceil(K_in / 256), "
                       "bits 2j..2j+1 of byte [i, n] = code of input j * K4 + i, 2-bit two's complement",
            "scale": "W ~= codes / weight_s_w (float32 per tensor)"})
        hf_dir = os.path.join(workdir, HF_SUBDIR)
        _copy_files(hf_dir, staging, [n for n in COPIED_FILES if n != HF_CONFIG])
        hf_config = (_read_json(os.path.join(hf_dir, HF_CONFIG)) if os.path.isfile(os.path.join(hf_dir, HF_CONFIG))
                     else hf_config_from_model(cfg))
        write_json_atomic(os.path.join(staging, HF_CONFIG), hf_config)
        _commit(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = os.path.getsize(os.path.join(out_dir, PACKED_FILE))
    log(f"wrote {out_dir}: packed ternary format ({PACKED_FORMAT}), {size / 2**20:,.2f} MiB, step {trained.step}")
    return {"file": PACKED_FILE, "bytes": size, "step": trained.step}


def load_packed_ternary(directory: str) -> tuple[ModelConfig, dict]:
    """`(config, variables)` from an `export_packed_ternary` directory; `MatMulFreeLM(config).apply(variables,
    tokens)` runs the packed path (the same integers as the latent model, bit for bit)."""
    config_path = os.path.join(directory, HF_CONFIG)
    cfg = model_config_from_hf(_read_json(config_path), config_path)
    path = os.path.join(directory, PACKED_FILE)
    tensors, metadata = st.read_header(path)
    layout = st.Layout(directory, tensors, {PACKED_FILE: metadata})
    if layout.file_metadata[PACKED_FILE].get("format") != PACKED_FORMAT:
        raise NeurojaxError(f"{path!r} is not in the {PACKED_FORMAT} format (its metadata says "
                            f"{layout.file_metadata[PACKED_FILE].get('format')!r})")
    expected = {}
    for e in key_table(cfg):
        if e.projection:
            expected[e.stem + PACKED_SUFFIX] = ("U8", (packed_rows(e.shape[1]), e.shape[0]), e.path[:-1] + ("packed",))
            expected[e.stem + SCALE_SUFFIX] = ("F32", (), e.path[:-1] + ("scale",))
        else:
            expected[e.key] = (None, e.shape, e.path)
    missing = [k for k in expected if k not in layout.tensors]
    unexpected = [k for k in layout.tensors if k not in expected]
    if missing or unexpected:
        raise NeurojaxError(f"{path!r} " + (f"lacks tensor {_listing(missing)}" if missing else
                                            f"holds unexpected tensor {_listing(unexpected)}"))
    params, quantized = {}, {}
    for key, (dtype, shape, flax_path) in expected.items():
        info = layout.tensors[key]
        if info.shape != shape or (dtype is not None and info.dtype != dtype) or (
                dtype is None and info.dtype not in LATENT_DTYPES):
            raise NeurojaxError(f"tensor {key!r} in {path!r} is {info.dtype}{list(info.shape)}, expected "
                                f"{dtype or '/'.join(LATENT_DTYPES)}{list(shape)}")
        array = st.read_tensor(layout, key)
        if dtype is None:
            params[flax_path] = jnp.asarray(array.astype(np.float32))
        else:
            quantized[flax_path] = jnp.asarray(array)
    return cfg, {"params": flax.traverse_util.unflatten_dict(params),
                 QUANTIZED: flax.traverse_util.unflatten_dict(quantized)}


def packed_model(directory: str) -> tuple[MatMulFreeLM, dict]:
    """The module and variables of a packed directory, ready for `model.apply` / generation."""
    cfg, variables = load_packed_ternary(directory)
    return MatMulFreeLM(cfg), variables
