"""Hugging Face MMfreeLM checkpoints (`ridger/MMfreeLM-*`, model type `hgrn_bit`): the architecture and the packed format.

    import_hf("MMfreeLM-370M/", "workdir/mmfree370m")        # then every binary runs on the workdir
    export_hf("workdir/mmfree370m", "out/")                   # the same layout back, tensor bytes identical
    export_packed_ternary("workdir/mmfree370m", "packed/")    # a different format: 2-bit codes + scales

A Hugging Face directory holds `config.json` and `model.safetensors` (or shards named by
`model.safetensors.index.json`), latent weights in bf16 or f32 under the keys of the spec's table
(`key_table` builds it from the config). Import and export are the shared ones of
`neurojax.interop.hf_checkpoint` (validation first, staged writes, streaming, verbatim round trip);
this module registers the `hgrn_bit` architecture with them.

The packed export stores each projection as `neurojax.kernels.ternary_matmul.pack` data (2 bits
per weight) with its scale `s_w` (`W ~= codes / s_w`; re-deriving the scale from ternary codes would
destroy the model), under other key names and another file name, so nothing mistakes it for the
latent format; `load_packed_ternary` reads it into inference variables.
"""
import json
import os
import shutil
from typing import Any, Callable, Optional

import flax
import jax.numpy as jnp
import numpy as np

from neurojax.data.tokenizer import ByteTokenizer
from neurojax.errors import NeurojaxError
from neurojax.files import write_json_atomic
from neurojax.interop import safetensors_io as st
from neurojax.interop.hf_checkpoint import (COPIED_FILES, HF_CONFIG, HF_SUBDIR, LATENT_DTYPES, META_KEY,
                                            Architecture, Entry, commit, copy_files, export_hf, fresh_target,
                                            import_hf, listing, parse_size, read_hf_config, register_architecture,
                                            staging_dir, workdir_tokenizer)
from neurojax.kernels.ternary_matmul.pack import packed_rows
from neurojax.nn.bitlinear import QUANTIZED
from neurojax.nn.config import ModelConfig
from neurojax.nn.lm import MatMulFreeLM
from neurojax.nn.params import inference_variables
from neurojax.train.checkpoint import Checkpointer
from neurojax.train.model_factory import model_config, require_matmulfree
from neurojax.train.restore import load_trained
from neurojax.train.workdir import read_run_config

# The shared entry points, importable from here as before.
__all__ = ["import_hf", "export_hf", "workdir_tokenizer", "parse_size", "key_table", "model_config_from_hf",
           "hf_config_from_model", "require_exportable", "export_packed_ternary", "load_packed_ternary",
           "packed_model", "MMFREE"]

MODEL_TYPE = "hgrn_bit"
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
    if cfg.linear_name != "bitlinear" or cfg.quantizer_name != "absmax_int8":
        raise NeurojaxError(f"the MMfreeLM format holds BitLinear projections with absmax int8 inputs; this run "
                            f"uses model.linear={cfg.linear_name!r}, model.quantizer={cfg.quantizer_name!r}")
    if (cfg.token_mixer, cfg.channel_mixer) != ("mlgru", "glu"):
        raise NeurojaxError(f"the MMfreeLM format holds MLGRU + GLU blocks, this run uses model.token_mixer="
                            f"{cfg.token_mixer!r} and model.channel_mixer={cfg.channel_mixer!r}")
    return cfg


def _unexpected_hint(key: str) -> str:
    return " (config.json says use_lower_bound=false)" if key == "model.lower_bounds" else ""


MMFREE = register_architecture(Architecture(
    name="MMfreeLM", model_types=(MODEL_TYPE,), config_type=ModelConfig, config_from_hf=model_config_from_hf,
    hf_config_from_model=hf_config_from_model, key_table=key_table, require_exportable=require_exportable,
    hint=_unexpected_hint))


# ---------------------------------------------------------------------------------------------- packed


def export_packed_ternary(workdir: str, out_dir: str, step: Optional[int] = None,
                          log: Callable[[str], None] = lambda s: None) -> dict:
    """Write `out_dir/model.packed_ternary.safetensors`: every projection as packed 2-bit codes
    (`<key minus .weight>.weight_packed`, uint8 `[K4, N_out]`) with its float32 scale
    (`...weight_s_w`, `W ~= codes / s_w`), every other tensor as in `export_hf`'s source dtype;
    plus `config.json` and the tokenizer files. Not loadable as a latent checkpoint, by design."""
    cfg = require_exportable(model_config(read_run_config(workdir)["model"]))
    fresh_target(out_dir, "--to_hf")
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
    staging = staging_dir(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        st.write_file(os.path.join(staging, PACKED_FILE), specs, arrays.pop, {
            "format": PACKED_FORMAT,
            "packing": "neurojax.kernels.ternary_matmul.pack: uint8 [K4, N_out], K4 = 64 * ceil(K_in / 256), "
                       "bits 2j..2j+1 of byte [i, n] = code of input j * K4 + i, 2-bit two's complement",
            "scale": "W ~= codes / weight_s_w (float32 per tensor)"})
        hf_dir = os.path.join(workdir, HF_SUBDIR)
        copy_files(hf_dir, staging, [n for n in COPIED_FILES if n != HF_CONFIG])
        hf_config = (read_hf_config(os.path.join(hf_dir, HF_CONFIG)) if os.path.isfile(os.path.join(hf_dir, HF_CONFIG))
                     else hf_config_from_model(cfg))
        write_json_atomic(os.path.join(staging, HF_CONFIG), hf_config)
        commit(staging, out_dir)
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
    cfg = model_config_from_hf(read_hf_config(config_path), config_path)
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
        raise NeurojaxError(f"{path!r} " + (f"lacks tensor {listing(missing)}" if missing else
                                            f"holds unexpected tensor {listing(unexpected)}"))
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
