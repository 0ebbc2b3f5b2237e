"""Hugging Face MMfreeLM checkpoints <-> neurojax workdirs (spec: mmfree.md, checkpoint key table).

Checkpoints are written here with the `safetensors` package itself (not the module under test), the
expected logits come from a NumPy float64 forward written from the spec, and every bad input must
raise `NeurojaxError` naming the file and the key while leaving nothing behind.
"""
import json
import os
import re
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors import safe_open

from neurojax import NeurojaxError
from neurojax.interop import hf_mmfree as hf
from neurojax.interop import safetensors_io as st
from neurojax.nn import MatMulFreeLM, inference_variables, init_params, preset
from neurojax.train import Checkpointer, load_trained
from neurojax.train.config import run_config
from tests.interop.hf_files import read_hf_dir as read_all
from tests.interop.hf_files import write_hf_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BF16 = ml_dtypes.bfloat16
EPS_BITLINEAR = 1e-6

# A small architecture with every feature: 3 layers (two with a lower bound), an explicit GLU width.
SMALL = {"model_type": "hgrn_bit", "architectures": ["HGRNBitForCausalLM"], "vocab_size": 300, "hidden_size": 32,
         "num_hidden_layers": 3, "num_heads": 1, "expand_ratio": 1, "use_short_conv": False,
         "use_lower_bound": True, "hidden_ratio": 4, "intermediate_size": 48, "rms_norm_eps": 1e-6,
         "hidden_act": "swish", "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1,
         "eos_token_id": 2, "max_position_embeddings": 2048}


# ------------------------------------------------------------------------------------- spec's key table


def spec_keys(hf_config):
    """Keys and shapes exactly as the spec's table lists them (written out here, not from the module)."""
    d, layers, v = hf_config["hidden_size"], hf_config["num_hidden_layers"], hf_config["vocab_size"]
    inter = hf_config.get("intermediate_size")
    if inter is None:
        ratio = hf_config.get("hidden_ratio") or 4
        inter = 256 * -(-int(d * ratio * 2 / 3) // 256)
    keys = {"model.embeddings.weight": (v, d), "model.norm.weight": (d,), "lm_head.weight": (v, d),
            "lm_head.norm.weight": (d,)}
    if hf_config.get("use_lower_bound", True):
        keys["model.lower_bounds"] = (layers, d)
    for l in range(layers):
        p = f"model.layers.{l}"
        keys[f"{p}.attn_norm.weight"] = (d,)
        keys[f"{p}.mlp_norm.weight"] = (d,)
        keys[f"{p}.attn.g_norm.weight"] = (d,)
        for proj in "ifgo":
            keys[f"{p}.attn.{proj}_proj.weight"] = (d, d)
            keys[f"{p}.attn.{proj}_proj.norm.weight"] = (d,)
        keys[f"{p}.mlp.gate_proj.weight"] = (2 * inter, d)
        keys[f"{p}.mlp.gate_proj.norm.weight"] = (d,)
        keys[f"{p}.mlp.down_proj.weight"] = (d, inter)
        keys[f"{p}.mlp.down_proj.norm.weight"] = (inter,)
    return keys


def random_tensors(hf_config, seed=0, dtype=np.float32):
    """Latent weights of every key: normal projections, norm weights around 1, random lower bounds."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in spec_keys(hf_config).items():
        if key.endswith("norm.weight"):
            value = 1.0 + 0.3 * rng.standard_normal(shape)
        elif key == "model.embeddings.weight":
            value = rng.standard_normal(shape)
        else:
            value = 0.05 * rng.standard_normal(shape)
        out[key] = value.astype(np.float32).astype(dtype)
    return out


def write_hf(directory, tensors, hf_config=SMALL, shards=None, metadata=None):
    return write_hf_dir(directory, tensors, hf_config, shards, metadata)


# ------------------------------------------------------------------------------ NumPy float64 oracle


def _rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _silu(x):
    return x * _sigmoid(x)


class Oracle:
    """The spec's forward in float64. `margin` records how close any int8 activation or ternary
    weight came to a rounding tie: parity is only asserted away from ties (the spec: a ulp can flip a code)."""

    def __init__(self, tensors, hf_config):
        self.t = {k: np.asarray(v).astype(np.float64) for k, v in tensors.items()}
        self.c = hf_config
        self.margin = np.inf

    def _tie_distance(self, v, limit):
        inside = np.abs(v) < limit
        frac = np.abs(np.abs(v[inside]) - np.floor(np.abs(v[inside])) - 0.5)
        if frac.size:
            self.margin = min(self.margin, float(frac.min()))

    def bitlinear(self, x, prefix):
        w, nw = self.t[prefix + ".weight"], self.t[prefix + ".norm.weight"]
        y = _rms(x, nw, EPS_BITLINEAR)
        s_x = 127.0 / np.maximum(np.max(np.abs(y), axis=-1, keepdims=True), 1e-5)
        v = y * s_x
        self._tie_distance(v, 127.5)
        q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)  # half away from zero
        s_w = 1.0 / max(np.mean(np.abs(w)), 1e-5)
        self._tie_distance(w * s_w, 1.5)
        codes = np.clip(np.round(w * s_w), -1, 1)  # np.round: half to even
        return (q / s_x) @ (codes / s_w).T

    def logits(self, tokens):
        c, t = self.c, self.t
        eps, layers = c["rms_norm_eps"], c["num_hidden_layers"]
        x = t["model.embeddings.weight"][tokens]  # [B, T, d]
        lb = None
        if c.get("use_lower_bound", True):
            raw = t["model.lower_bounds"]
            p = np.exp(raw - raw.max(0)) / np.exp(raw - raw.max(0)).sum(0)
            lb = np.cumsum(p, 0) - p[0]
        for l in range(layers):
            pre = f"model.layers.{l}"
            h = _rms(x, t[f"{pre}.attn_norm.weight"], eps)
            i = self.bitlinear(h, f"{pre}.attn.i_proj")
            f = _sigmoid(self.bitlinear(h, f"{pre}.attn.f_proj"))
            if lb is not None and l > 0:
                f = lb[l] + (1 - lb[l]) * f
            cand = _silu(i) * (1 - f)
            state = np.zeros((x.shape[0], x.shape[2]))
            hs = []
            for step in range(x.shape[1]):
                state = f[:, step] * state + cand[:, step]
                hs.append(state)
            hseq = np.stack(hs, 1)
            g = _rms(self.bitlinear(h, f"{pre}.attn.g_proj"), t[f"{pre}.attn.g_norm.weight"], eps)
            r = x + self.bitlinear(g * _silu(hseq), f"{pre}.attn.o_proj")
            h2 = _rms(r, t[f"{pre}.mlp_norm.weight"], eps)
            gate, up = np.split(self.bitlinear(h2, f"{pre}.mlp.gate_proj"), 2, axis=-1)
            x = r + self.bitlinear(_silu(gate) * up, f"{pre}.mlp.down_proj")
        return self.bitlinear(_rms(x, t["model.norm.weight"], eps), "lm_head")


def tie_free(hf_config, dtype, tokens, margin=2e-5, first_seed=0):
    """The first seed whose random checkpoint keeps every quantizer input `margin` away from a tie."""
    for seed in range(first_seed, first_seed + 200):
        tensors = random_tensors(hf_config, seed, dtype)
        oracle = Oracle(tensors, hf_config)
        expected = oracle.logits(tokens)
        if oracle.margin > margin:
            return tensors, expected
    raise AssertionError("no tie-free seed found")


def model_logits(workdir, tokens):
    trained = load_trained(workdir)
    logits, _ = jax.jit(trained.model.apply)({"params": trained.params}, jnp.asarray(tokens, jnp.int32))
    return np.asarray(logits, np.float64), trained


def leaves(params):
    return {k: np.asarray(v) for k, v in flax.traverse_util.flatten_dict(params).items()}


def no_leftovers(parent):
    return not [n for n in os.listdir(parent) if ".partial-" in n]


TOKENS = np.array([[1, 17, 250, 3, 99, 42], [1, 5, 5, 299, 0, 120]])


# ------------------------------------------------------------------------------------------ the table


def test_key_table_is_the_spec_table_and_the_model():
    for hf_config in (SMALL, {**SMALL, "intermediate_size": None}, {**SMALL, "use_lower_bound": False}):
        cfg = hf.model_config_from_hf(hf_config)
        table = hf.key_table(cfg)
        assert {e.key: e.shape for e in table} == spec_keys(hf_config)
        abstract = flax.traverse_util.flatten_dict(jax.eval_shape(
            lambda k, cfg=cfg: init_params(MatMulFreeLM(cfg), k, seq_len=1), jax.random.PRNGKey(0)))
        assert {e.path: e.shape for e in table} == {k: v.shape for k, v in abstract.items()}
        assert {e.key for e in table if e.projection} == {k for k in spec_keys(hf_config)
                                                          if k.endswith("proj.weight") or k == "lm_head.weight"}


@pytest.mark.parametrize("name,layers,d,inter,millions", [("370M", 24, 1024, 2816, 374), ("1.3B", 24, 2048, 5632, 1360),
                                                           ("2.7B", 32, 2560, 6912, 2700)])
def test_released_configs_map_to_the_presets(name, layers, d, inter, millions):
    hf_config = {"model_type": "hgrn_bit", "vocab_size": 32000, "hidden_size": d, "num_hidden_layers": layers,
                 "intermediate_size": None, "hidden_ratio": 4, "num_heads": 1, "rms_norm_eps": 1e-6}
    cfg = hf.model_config_from_hf(hf_config)
    assert cfg.ffn_size == inter and cfg.num_layers == layers and cfg.d_model == d
    assert cfg == preset(name)
    table = hf.key_table(cfg)
    assert abs(sum(int(np.prod(e.shape)) for e in table) / 1e6 - millions) / millions < 0.01  # the spec's counts
    assert {e.key: e.shape for e in table} == spec_keys(hf_config)
    # hidden_ratio null means 4; an explicit intermediate_size wins over the formula
    assert hf.model_config_from_hf({**hf_config, "hidden_ratio": None}).ffn_size == inter
    assert hf.model_config_from_hf({**hf_config, "intermediate_size": 640}).ffn_size == 640


def test_streaming_writer_is_read_by_safetensors(tmp_path):
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array(2.5, np.float32),
              "c": np.arange(5, dtype=np.float32).astype(BF16), "d": np.arange(7, dtype=np.uint8)}
    specs = [st.TensorInfo(k, "", st.dtype_code(v.dtype), v.shape) for k, v in arrays.items()]
    files = st.plan_shards(specs, max_shard_bytes=50)
    assert list(files) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert [s.key for s in files["model-00001-of-00002.safetensors"]] == ["a"]  # 48 bytes, then the rest
    st.write_checkpoint(str(tmp_path), files, lambda k: arrays[k], {"format": "pt"})
    back = read_all(tmp_path)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and back[k].tobytes() == v.tobytes()
    assert st.plan_shards(specs, None) == {"model.safetensors": specs}
    with pytest.raises(NeurojaxError, match="shard size"):
        st.plan_shards(specs, 0)
    with pytest.raises(NeurojaxError, match="'a'"):
        st.write_file(str(tmp_path / "x.safetensors"), specs[:1], lambda k: arrays[k].T)


# ------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype,hf_config", [
    (np.float32, SMALL),
    (BF16, {**SMALL, "intermediate_size": None, "hidden_ratio": 1.5, "num_heads": 2, "rms_norm_eps": 1e-5}),
], ids=["f32", "bf16-null-intermediate"])
def test_imported_logits_match_numpy_oracle(tmp_path, dtype, hf_config):
    tensors, expected = tie_free(hf_config, dtype, TOKENS)
    write_hf(tmp_path / "src", tensors, hf_config)
    hf.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    got, trained = model_logits(str(tmp_path / "wd"), TOKENS)
    assert trained.model.config.ffn_size == spec_keys(hf_config)["model.layers.0.mlp.down_proj.weight"][1]
    rel = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
    assert rel <= 1e-4, f"max relative error {rel:.2e}"
    np.testing.assert_array_equal(got.argmax(-1), expected.argmax(-1))
    # the imported latent weights are the stored values exactly (bf16 -> f32 is exact)
    params = leaves(trained.params)
    for e in hf.key_table(trained.model.config):
        np.testing.assert_array_equal(params[e.path], tensors[e.key].astype(np.float32), err_msg=e.key)


# --------------------------------------------------------------------------------- layouts, round trip


def test_sharded_and_single_file_load_identically(tmp_path):
    tensors = random_tensors(SMALL, 3, BF16)
    write_hf(tmp_path / "one", tensors)
    write_hf(tmp_path / "three", tensors, shards=3)
    assert len([n for n in os.listdir(tmp_path / "three") if n.endswith(".safetensors")]) == 3
    for name in ("one", "three"):
        hf.import_hf(str(tmp_path / name), str(tmp_path / f"wd_{name}"))
    a, ta = model_logits(str(tmp_path / "wd_one"), TOKENS)
    b, tb = model_logits(str(tmp_path / "wd_three"), TOKENS)
    pa, pb = leaves(ta.params), leaves(tb.params)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    np.testing.assert_array_equal(a, b)


def _special_values(tensors, key):
    """Put subnormals, signed zeros, extremes and odd mantissas into one tensor (all must survive)."""
    t = tensors[key].copy()
    dtype = t.dtype
    info = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    specials = np.array([0.0, -0.0, float(info.smallest_subnormal), -float(info.smallest_subnormal),
                         float(info.max), float(info.min), float(info.tiny), 1.0 + float(info.eps)], np.float64)
    t.reshape(-1)[: specials.size] = specials.astype(dtype)
    tensors[key] = t
    return tensors


@pytest.mark.parametrize("dtype,shards", [(BF16, None), (np.float32, 2), (np.float16, None)],
                         ids=["bf16-single", "f32-sharded", "f16-single"])
def test_round_trip_is_byte_identical(tmp_path, dtype, shards):
    tensors = _special_values(random_tensors(SMALL, 1, dtype), "model.layers.1.attn_norm.weight")
    tensors["model.norm.weight"] = tensors["model.norm.weight"].astype(np.float32)  # mixed dtypes too
    src = write_hf(tmp_path / "src", tensors, shards=shards, metadata={"format": "pt", "note": "kept"})
    for name in ("tokenizer_config.json", "generation_config.json"):
        (tmp_path / "src" / name).write_text(json.dumps({"name": name}))
    hf.import_hf(str(src), str(tmp_path / "wd"))
    hf.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    back = read_all(tmp_path / "out")
    assert back.keys() == tensors.keys()
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
        assert back[k].tobytes() == v.tobytes(), k
    assert json.load(open(tmp_path / "out" / "config.json")) == SMALL
    for name in ("tokenizer_config.json", "generation_config.json"):
        assert (tmp_path / "out" / name).read_text() == json.dumps({"name": name})
    if shards:
        a = json.load(open(tmp_path / "src" / "model.safetensors.index.json"))
        b = json.load(open(tmp_path / "out" / "model.safetensors.index.json"))
        assert a["weight_map"] == b["weight_map"] and a["metadata"] == b["metadata"]
    else:
        assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(tmp_path / "src"))
    for name in [n for n in os.listdir(tmp_path / "out") if n.endswith(".safetensors")]:
        with safe_open(str(tmp_path / "out" / name), framework="numpy") as f:
            assert f.metadata() == {"format": "pt", "note": "kept"}


def test_export_options_dtype_and_shards(tmp_path):
    tensors = random_tensors(SMALL, 2, np.float32)
    hf.import_hf(str(write_hf(tmp_path / "src", tensors)), str(tmp_path / "wd"))
    hf.export_hf(str(tmp_path / "wd"), str(tmp_path / "bf"), dtype="bfloat16", max_shard_bytes=40_000)
    index = json.load(open(tmp_path / "bf" / "model.safetensors.index.json"))
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1 and all(re.fullmatch(r"model-\d{5}-of-\d{5}\.safetensors", f) for f in files)
    assert index["metadata"]["total_size"] == sum(t.size * 2 for t in tensors.values())
    back = read_all(tmp_path / "bf")
    for k, v in tensors.items():
        assert back[k].dtype == BF16
        assert back[k].tobytes() == v.astype(BF16).tobytes(), k  # round to nearest even, as ml_dtypes does
    assert json.load(open(tmp_path / "bf" / "config.json"))["torch_dtype"] == "bfloat16"
    # the sharded bf16 export imports again and gives the bf16-rounded weights
    hf.import_hf(str(tmp_path / "bf"), str(tmp_path / "wd2"))
    params = leaves(load_trained(str(tmp_path / "wd2")).params)
    for e in hf.key_table(hf.model_config_from_hf(SMALL)):
        np.testing.assert_array_equal(params[e.path], tensors[e.key].astype(BF16).astype(np.float32))


def _native_workdir(path, cfg):
    """A workdir as training writes it (run config + a checkpoint), with random params."""
    model = MatMulFreeLM(cfg)
    params = jax.jit(lambda k: init_params(model, k, seq_len=2))(jax.random.PRNGKey(4))
    flat = flax.traverse_util.flatten_dict(params)
    rng = np.random.default_rng(4)
    flat = {k: v + 0.2 * rng.standard_normal(v.shape).astype(np.float32) for k, v in flat.items()}
    params = flax.traverse_util.unflatten_dict(flat)
    run = run_config("micro")
    run.model.update(cfg.to_dict())
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(json.loads(json.dumps(run.to_dict())), f)
    ckpt = Checkpointer(str(path))
    ckpt.save(7, params, {"step": np.int32(7)}, {"step": 7})
    ckpt.close()
    return {k: np.asarray(v) for k, v in flat.items()}


def test_a_run_trained_here_exports_and_imports_back(tmp_path):
    cfg = preset("micro", vocab_size=300)
    flat = _native_workdir(tmp_path / "run", cfg)
    assert type(hf.workdir_tokenizer(str(tmp_path / "run"))).__name__ == "ByteTokenizer"
    hf.export_hf(str(tmp_path / "run"), str(tmp_path / "out"))
    config = json.load(open(tmp_path / "out" / "config.json"))
    assert config["model_type"] == "hgrn_bit" and config["hidden_size"] == cfg.d_model
    assert config["intermediate_size"] == cfg.intermediate_size and config["torch_dtype"] == "float32"
    assert hf.model_config_from_hf(config) == cfg
    back = read_all(tmp_path / "out")
    assert back.keys() == spec_keys(config).keys()
    hf.import_hf(str(tmp_path / "out"), str(tmp_path / "again"))
    trained = load_trained(str(tmp_path / "again"))
    params = leaves(trained.params)
    assert params.keys() == flat.keys()
    for k in flat:
        np.testing.assert_array_equal(params[k], flat[k])


def test_export_refuses_what_the_format_cannot_hold(tmp_path):
    _native_workdir(tmp_path / "fp", preset("micro", full_precision=True))
    with pytest.raises(NeurojaxError, match="full-precision"):
        hf.export_hf(str(tmp_path / "fp"), str(tmp_path / "out"))
    _native_workdir(tmp_path / "ok", preset("micro"))
    os.makedirs(tmp_path / "busy")
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(NeurojaxError, match="not empty"):
        hf.export_hf(str(tmp_path / "ok"), str(tmp_path / "busy"))
    assert os.listdir(tmp_path / "busy") == ["keep.txt"]
    with pytest.raises(NeurojaxError, match="dtype"):
        hf.export_hf(str(tmp_path / "ok"), str(tmp_path / "out"), dtype="int8")
    with pytest.raises(NeurojaxError, match="step 3"):
        hf.export_hf(str(tmp_path / "ok"), str(tmp_path / "out"), step=3)
    assert not os.path.exists(tmp_path / "out") and no_leftovers(tmp_path)


def test_packed_ternary_export_keeps_scales(tmp_path):
    config = {**SMALL, "num_hidden_layers": 2}
    tensors = random_tensors(config, 5, BF16)
    hf.import_hf(str(write_hf(tmp_path / "src", tensors, config)), str(tmp_path / "wd"))
    hf.export_packed_ternary(str(tmp_path / "wd"), str(tmp_path / "packed"))
    assert sorted(os.listdir(tmp_path / "packed")) == ["config.json", "model.packed_ternary.safetensors"]
    with safe_open(str(tmp_path / "packed" / "model.packed_ternary.safetensors"), framework="numpy") as f:
        assert f.metadata()["format"] == hf.PACKED_FORMAT
        keys = set(f.keys())
        w = tensors["model.layers.0.attn.i_proj.weight"].astype(np.float64)
        s_w = f.get_tensor("model.layers.0.attn.i_proj.weight_s_w")
        packed = f.get_tensor("model.layers.0.attn.i_proj.weight_packed")
    assert "model.layers.0.attn.i_proj.weight" not in keys and "model.embeddings.weight" in keys
    assert s_w.shape == () and abs(float(s_w) - 1 / np.mean(np.abs(w))) <= 1e-6 * float(s_w)
    assert packed.dtype == np.uint8 and packed.shape == (64, 32)  # K4 = 64 * ceil(32 / 256)
    from neurojax.kernels.ternary_matmul.pack import PackedTernary, unpack

    codes = np.asarray(unpack(PackedTernary(jnp.asarray(packed)), 32))
    np.testing.assert_array_equal(codes, np.clip(np.round(w * float(s_w)), -1, 1))
    with pytest.raises(NeurojaxError, match="model.packed_ternary.safetensors"):
        hf.load_packed_ternary(str(tmp_path / "src"))  # a latent checkpoint is not the packed format
    model, variables = hf.packed_model(str(tmp_path / "packed"))
    trained = load_trained(str(tmp_path / "wd"))
    # the stored codes and scales are the ones the latent model computes at run time, bit for bit
    expected = inference_variables(trained.model, trained.params)
    for part in ("params", "quantized"):
        a, b = leaves(variables[part]), leaves(expected[part])
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=str(k))
    tokens = jnp.asarray(TOKENS, jnp.int32)
    got = np.asarray(jax.jit(model.apply)(variables, tokens)[0])
    latent = np.asarray(jax.jit(trained.model.apply)({"params": trained.params}, tokens)[0])
    assert np.max(np.abs(got - latent)) <= 1e-5 * np.max(np.abs(latent))


# ------------------------------------------------------------------------------------------ bad input


def _drop(key):
    def mutate(tensors, config, directory):
        del tensors[key]
    return mutate


def _add(key, shape):
    def mutate(tensors, config, directory):
        tensors[key] = np.zeros(shape, np.float32)
    return mutate


def _reshape(key, shape):
    def mutate(tensors, config, directory):
        tensors[key] = np.zeros(shape, np.float32)
    return mutate


def _config(**changes):
    def mutate(tensors, config, directory):
        config.update(changes)
    return mutate


def _int_dtype(tensors, config, directory):
    tensors["model.norm.weight"] = np.ones(32, np.int32)


BAD_TENSORS = [
    (_drop("model.layers.1.attn.g_norm.weight"), ["model.safetensors", "model.layers.1.attn.g_norm.weight", "lacks"]),
    (_drop("lm_head.norm.weight"), ["lm_head.norm.weight"]),
    (_add("model.layers.0.attn.extra.weight", (2,)), ["model.safetensors", "model.layers.0.attn.extra.weight",
                                                      "unexpected"]),
    (_add("model.layers.3.attn_norm.weight", (32,)), ["model.layers.3.attn_norm.weight"]),
    (_reshape("model.layers.2.mlp.gate_proj.weight", (48, 32)), ["model.layers.2.mlp.gate_proj.weight",
                                                                 "model.safetensors", "[96, 32]", "[48, 32]"]),
    (_reshape("model.lower_bounds", (2, 32)), ["model.lower_bounds", "[3, 32]"]),
    (_int_dtype, ["model.norm.weight", "I32"]),
    (_config(use_lower_bound=False), ["model.lower_bounds", "use_lower_bound"]),
    (_config(intermediate_size=64), ["mlp.gate_proj.weight", "[128, 32]"]),
    (_config(use_short_conv=True), ["config.json", "use_short_conv"]),
    (_config(expand_ratio=2), ["config.json", "expand_ratio"]),
    (_config(model_type="mamba"), ["config.json", "mamba", "hgrn_bit", "llama"]),
    (_config(hidden_size=None), ["config.json", "hidden_size"]),
    (_config(num_hidden_layers="3"), ["config.json", "num_hidden_layers"]),
]


@pytest.mark.parametrize("mutate,needles", BAD_TENSORS, ids=[
    "missing", "missing-head-norm", "unexpected", "extra-layer", "shape", "lower-bound-shape", "int-dtype",
    "lb-not-configured", "config-shape", "short-conv", "expand", "model-type", "no-hidden-size", "str-layers"])
def test_bad_checkpoints_are_clear_errors_and_write_nothing(tmp_path, mutate, needles):
    tensors = random_tensors(SMALL, 0)
    config = dict(SMALL)
    mutate(tensors, config, tmp_path / "src")
    write_hf(tmp_path / "src", tensors, config)
    with pytest.raises(NeurojaxError) as err:
        hf.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    for needle in needles:
        assert needle in str(err.value), str(err.value)
    assert not os.path.exists(tmp_path / "wd") and no_leftovers(tmp_path)


def _truncate(directory, name, cut):
    path = os.path.join(directory, name)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:cut] if cut > 0 else data[:len(data) + cut])
    return path


@pytest.mark.parametrize("cut", [-100, 5, 400], ids=["tail", "length", "header"])
def test_truncated_file_names_the_file(tmp_path, cut):
    write_hf(tmp_path / "src", random_tensors(SMALL, 0, BF16), shards=2)
    path = _truncate(tmp_path / "src", "model-00002-of-00002.safetensors", cut)
    with pytest.raises(NeurojaxError, match=re.escape(path)):
        hf.import_hf(str(tmp_path / "src"), str(tmp_path / "wd"))
    assert not os.path.exists(tmp_path / "wd") and no_leftovers(tmp_path)


def test_index_errors_name_file_and_key(tmp_path):
    src = write_hf(tmp_path / "src", random_tensors(SMALL, 0), shards=2)
    index_path = os.path.join(src, "model.safetensors.index.json")
    index = json.load(open(index_path))
    # a weight map naming a key its shard lacks
    bad = json.loads(json.dumps(index))
    bad["weight_map"]["model.layers.9.attn_norm.weight"] = "model-00001-of-00002.safetensors"
    json.dump(bad, open(index_path, "w"))
    with pytest.raises(NeurojaxError, match=r"model\.layers\.9\.attn_norm\.weight.*model-00001-of-00002"):
        hf.import_hf(src, str(tmp_path / "wd"))
    # a key the index maps to the other shard
    bad = json.loads(json.dumps(index))
    key = next(k for k, v in bad["weight_map"].items() if v.endswith("00001-of-00002.safetensors"))
    bad["weight_map"][key] = "model-00002-of-00002.safetensors"
    json.dump(bad, open(index_path, "w"))
    with pytest.raises(NeurojaxError, match=re.escape(key)):
        hf.import_hf(src, str(tmp_path / "wd"))
    # a shard that is missing
    json.dump(index, open(index_path, "w"))
    os.remove(os.path.join(src, "model-00002-of-00002.safetensors"))
    with pytest.raises(NeurojaxError, match="model-00002-of-00002.safetensors"):
        hf.import_hf(src, str(tmp_path / "wd"))
    open(index_path, "w").write("{not json")
    with pytest.raises(NeurojaxError, match="model.safetensors.index.json"):
        hf.import_hf(src, str(tmp_path / "wd"))
    assert not os.path.exists(tmp_path / "wd") and no_leftovers(tmp_path)


def test_missing_files_and_busy_workdir(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(NeurojaxError, match="config.json"):
        hf.import_hf(str(tmp_path / "empty"), str(tmp_path / "wd"))
    json.dump(SMALL, open(tmp_path / "empty" / "config.json", "w"))
    (tmp_path / "empty" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(NeurojaxError, match="safetensors"):
        hf.import_hf(str(tmp_path / "empty"), str(tmp_path / "wd"))
    src = write_hf(tmp_path / "src", random_tensors(SMALL, 0))
    os.makedirs(tmp_path / "wd")
    (tmp_path / "wd" / "notes.txt").write_text("mine")
    with pytest.raises(NeurojaxError, match="not empty"):
        hf.import_hf(src, str(tmp_path / "wd"))
    assert os.listdir(tmp_path / "wd") == ["notes.txt"]
    os.remove(tmp_path / "wd" / "notes.txt")  # an empty directory is fine
    hf.import_hf(src, str(tmp_path / "wd"))
    assert {"config.json", "checkpoints", "hf"} <= set(os.listdir(tmp_path / "wd"))


def test_tokenizer_vocab_must_match_the_model(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = open(json.__file__).read()
    tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=290, special_tokens=["<unk>", "<s>", "</s>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    assert tok.get_vocab_size() != SMALL["vocab_size"]
    src = write_hf(tmp_path / "src", random_tensors(SMALL, 0))
    tok.save(str(tmp_path / "src" / "tokenizer.json"))
    with pytest.raises(NeurojaxError) as err:
        hf.import_hf(src, str(tmp_path / "wd"))
    assert "tokenizer.json" in str(err.value) and "300" in str(err.value)
    assert not os.path.exists(tmp_path / "wd") and no_leftovers(tmp_path)
    # the right size imports, travels with the workdir and comes back out on export
    tok.add_tokens([f"<extra_{i}>" for i in range(SMALL["vocab_size"] - tok.get_vocab_size())])
    tok.save(str(tmp_path / "src" / "tokenizer.json"))
    hf.import_hf(src, str(tmp_path / "wd"))
    ours = hf.workdir_tokenizer(str(tmp_path / "wd"))
    assert ours.vocab_size == 300 and ours.BOS == 1 and ours.decode(ours.encode("x = 1", add_bos=True)) == "x = 1"
    hf.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (tmp_path / "src" / "tokenizer.json").read_bytes()


# -------------------------------------------------------------------------------------------- memory


MEMORY_SCRIPT = r"""
import json, os, re, sys
from neurojax.interop import hf_mmfree as hf

src, warm, work = sys.argv[1:4]
hf.import_hf(warm, work + "_warm")  # first use of orbax, jax, thread pools: not part of the measure
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
base = rss()
hf.import_hf(src, work)
peak = int(re.search(r"VmHWM:\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
print(json.dumps({"base": base, "peak": peak}))
"""
# ~50M weights, the largest tensor 8% of them (MMfreeLM-2.7B: 6%)
MEMORY_CONFIG = {"model_type": "hgrn_bit", "vocab_size": 4000, "hidden_size": 1024, "num_hidden_layers": 6,
                 "intermediate_size": 1024}


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux peak-RSS reset")
@pytest.mark.parametrize("dtype", [BF16, np.float32], ids=["bf16", "f32"])
def test_import_memory_stays_within_twice_the_checkpoint(tmp_path, dtype):
    """Peak resident memory of an import in a fresh process (the checkpoint is written by this one,
    so none of its buffers are already in the importing process's heap)."""
    rng = np.random.default_rng(0)
    tensors = {k: rng.standard_normal(s, dtype=np.float32).astype(dtype) for k, s in spec_keys(MEMORY_CONFIG).items()}
    write_hf(tmp_path / "src", tensors, MEMORY_CONFIG)
    size = os.path.getsize(tmp_path / "src" / "model.safetensors")
    del tensors
    write_hf(tmp_path / "warm", random_tensors(SMALL), SMALL)
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path / "src"), str(tmp_path / "warm"),
                             str(tmp_path / "wd")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout.strip().splitlines()[-1])
    ratio = (m["peak"] - m["base"]) / size
    print(f"import peak: {ratio:.2f}x the checkpoint size")
    assert ratio <= 2.0, f"import peak {ratio:.2f}x the checkpoint size"
