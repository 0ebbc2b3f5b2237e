"""Test-only GGUF helpers: a tiny LLaMA GGUF written with `gguf`'s writer, NumPy de-quantizers of the
block formats written from llama.cpp's reference C (`dequantize_row_*`), and an independent float64
NumPy forward of a `llama` GGUF that reads the stored (permuted) q/k rows with llama.cpp's own
adjacent-pair RoPE, so it never un-permutes anything.
"""
import dataclasses
from typing import Optional

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

# ---- a tiny tokenizer and model -----------------------------------------------------------------

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TRAIN_TEXT = ("The capital of France is Paris. Paris is a city in France with 2,165,423 people. "
              "def add(a, b):\n    return a + b\n\nThe quick brown fox jumps over the lazy dog. ") * 20


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE trained here (SmolLM's pre-tokenizer: digits split, then GPT-2's regex)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([TRAIN_TEXT], trainer)
    return tok


def tokenizer_metadata(tok) -> dict:
    """GGUF tokenizer fields of a trained `tokenizers` BPE: tokens by id, "a b" merges, token types."""
    import json

    model = json.loads(tok.to_str())["model"]
    vocab = tok.get_vocab(with_added_tokens=True)
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    types = [3 if t in SPECIALS else 1 for t in tokens]
    return {"tokens": tokens, "merges": merges, "types": types}


@dataclasses.dataclass
class TinySpec:
    """What `write_tiny_gguf` writes; tests change a field to make a bad file."""

    d: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    ffn: int = 96
    context: int = 128
    rope_theta: float = 1e4
    eps: float = 1e-5
    tied: bool = False
    arch: str = "llama"
    # GGUF type per tensor kind (blk.* kinds and token_embd / output / output_norm)
    types: dict = dataclasses.field(default_factory=lambda: {
        "token_embd": Q.Q8_0, "attn_q": Q.Q4_1, "attn_k": Q.Q8_0, "attn_v": Q.F16, "attn_output": Q.Q4_0,
        "ffn_gate": Q.Q4_1, "ffn_up": Q.Q8_0, "ffn_down": Q.Q4_1, "output": Q.Q8_0, "attn_norm": Q.F32,
        "ffn_norm": Q.F32, "output_norm": Q.F32})
    drop_keys: tuple = ()  # metadata keys left out
    drop_tensors: tuple = ()
    extra_tensors: tuple = ()  # (name, float32 array)
    extra_tokens: int = 0  # tokens appended to the vocabulary (a tokenizer larger than the embedding)
    metadata: dict = dataclasses.field(default_factory=dict)  # key -> value written instead of the true one
    seed: int = 0


def llama_permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (pairs per head for its rotary layout)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(path: str, spec: TinySpec = TinySpec(), tok=None) -> dict:
    """Write a tiny llama GGUF; returns {"hf": HF-layout float32 tensors before quantization, "tokenizer": tok}."""
    tok = tok if tok is not None else tiny_tokenizer()
    meta = tokenizer_metadata(tok)
    vocab = len(meta["tokens"])
    rng = np.random.default_rng(spec.seed)
    hd = spec.d // spec.heads

    def w(*shape, scale=None):
        return (rng.standard_normal(shape) * (scale or 1 / np.sqrt(shape[-1]))).astype(np.float32)

    hf = {"token_embd": w(vocab, spec.d, scale=0.5), "output_norm": (1 + 0.1 * rng.standard_normal(spec.d)).astype(
        np.float32)}
    if not spec.tied:
        hf["output"] = w(vocab, spec.d)
    for l in range(spec.layers):
        hf.update({f"blk.{l}.attn_norm": (1 + 0.1 * rng.standard_normal(spec.d)).astype(np.float32),
                   f"blk.{l}.ffn_norm": (1 + 0.1 * rng.standard_normal(spec.d)).astype(np.float32),
                   f"blk.{l}.attn_q": w(spec.heads * hd, spec.d), f"blk.{l}.attn_k": w(spec.kv_heads * hd, spec.d),
                   f"blk.{l}.attn_v": w(spec.kv_heads * hd, spec.d), f"blk.{l}.attn_output": w(spec.d, spec.heads * hd),
                   f"blk.{l}.ffn_gate": w(spec.ffn, spec.d), f"blk.{l}.ffn_up": w(spec.ffn, spec.d),
                   f"blk.{l}.ffn_down": w(spec.d, spec.ffn)})
    writer = gguf.GGUFWriter(path, spec.arch)
    a = spec.arch
    kv = [("uint32", f"{a}.block_count", spec.layers), ("uint32", f"{a}.context_length", spec.context),
          ("uint32", f"{a}.embedding_length", spec.d), ("uint32", f"{a}.feed_forward_length", spec.ffn),
          ("uint32", f"{a}.attention.head_count", spec.heads), ("uint32", f"{a}.attention.head_count_kv", spec.kv_heads),
          ("float32", f"{a}.rope.freq_base", spec.rope_theta),
          ("float32", f"{a}.attention.layer_norm_rms_epsilon", spec.eps),
          ("uint32", f"{a}.rope.dimension_count", hd),
          ("string", "general.name", "tiny-test"), ("string", "tokenizer.ggml.model", "gpt2"),
          ("string", "tokenizer.ggml.pre", "smollm"),
          ("array", "tokenizer.ggml.tokens", meta["tokens"] + [f"<extra_{i}>" for i in range(spec.extra_tokens)]),
          ("array", "tokenizer.ggml.token_type", meta["types"] + [1] * spec.extra_tokens),
          ("array", "tokenizer.ggml.merges", meta["merges"]),
          ("uint32", "tokenizer.ggml.bos_token_id", 1), ("uint32", "tokenizer.ggml.eos_token_id", 2),
          ("uint32", "tokenizer.ggml.unknown_token_id", 0), ("bool", "tokenizer.ggml.add_bos_token", False)]
    for kind, key, value in kv:
        if key not in spec.drop_keys:
            getattr(writer, f"add_{kind}")(key, spec.metadata.get(key, value))
    for name, values in hf.items():
        kind = name.split(".")[-1]
        stored = values
        if kind == "attn_q":
            stored = llama_permute(values, spec.heads)
        elif kind == "attn_k":
            stored = llama_permute(values, spec.kv_heads)
        full = f"{name}.weight"
        if full in spec.drop_tensors:
            continue
        qtype = spec.types[kind]
        data = stored if qtype == Q.F32 else gguf.quants.quantize(stored, qtype)
        writer.add_tensor(full, data, raw_dtype=qtype)
    for name, values in spec.extra_tensors:
        writer.add_tensor(name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"hf": hf, "tokenizer": tok}


# ---- NumPy de-quantizers (llama.cpp ggml-quants.c, dequantize_row_*) ------------------------------

def _f16(b: np.ndarray) -> np.ndarray:
    return b.copy().view(np.float16).astype(np.float64)[..., 0]


def dequantize(raw: np.ndarray, qtype, n: int) -> np.ndarray:
    """float64 values of `n`-element rows stored as `raw` bytes `[rows, bytes]` in block format `qtype`."""
    raw = np.asarray(raw)
    if qtype == Q.F32:
        return raw.astype(np.float64)
    if qtype == Q.F16:
        return raw.astype(np.float64)
    if qtype == Q.BF16:
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    rows = raw.shape[0]
    if qtype == Q.Q8_0:
        b = raw.reshape(rows, -1, 34)
        return (_f16(b[..., 0:2])[..., None] * b[..., 2:].view(np.int8)).reshape(rows, n)
    if qtype in (Q.Q4_0, Q.Q4_1):
        size = 18 if qtype == Q.Q4_0 else 20
        b = raw.reshape(rows, -1, size)
        d = _f16(b[..., 0:2])[..., None]
        qs = b[..., size - 16:].astype(np.int64)
        q = np.concatenate([qs & 0xF, qs >> 4], axis=-1)
        out = (q - 8) * d if qtype == Q.Q4_0 else q * d + _f16(b[..., 2:4])[..., None]
        return out.reshape(rows, n)
    if qtype == Q.Q4_K:
        out = np.zeros((rows, n))
        b = raw.reshape(rows, -1, 144)
        for r in range(rows):
            for k in range(b.shape[1]):
                blk = b[r, k]
                d, dmin = _f16(blk[0:2][None])[0], _f16(blk[2:4][None])[0]
                sc, qs = blk[4:16].astype(np.int64), blk[16:].astype(np.int64)

                def scale_min(j):
                    if j < 4:
                        return sc[j] & 63, sc[j + 4] & 63
                    return (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4), (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4)

                y = []
                for j in range(4):
                    s1, m1 = scale_min(2 * j)
                    s2, m2 = scale_min(2 * j + 1)
                    q = qs[32 * j:32 * j + 32]
                    y += list(d * s1 * (q & 0xF) - dmin * m1) + list(d * s2 * (q >> 4) - dmin * m2)
                out[r, 256 * k:256 * (k + 1)] = y
        return out
    if qtype == Q.Q6_K:
        out = np.zeros((rows, n))
        b = raw.reshape(rows, -1, 210)
        for r in range(rows):
            for k in range(b.shape[1]):
                blk = b[r, k]
                ql, qh = blk[0:128].astype(np.int64), blk[128:192].astype(np.int64)
                sc, d = blk[192:208].view(np.int8).astype(np.int64), _f16(blk[208:210][None])[0]
                y = np.zeros(256)
                for half in range(2):
                    L, H, S, Y = ql[64 * half:], qh[32 * half:], sc[8 * half:], 128 * half
                    for l in range(32):
                        i = l // 16
                        y[Y + l] = d * S[i] * (((L[l] & 0xF) | ((H[l] & 3) << 4)) - 32)
                        y[Y + l + 32] = d * S[i + 2] * (((L[l + 32] & 0xF) | (((H[l] >> 2) & 3) << 4)) - 32)
                        y[Y + l + 64] = d * S[i + 4] * (((L[l] >> 4) | (((H[l] >> 4) & 3) << 4)) - 32)
                        y[Y + l + 96] = d * S[i + 6] * (((L[l + 32] >> 4) | (((H[l] >> 6) & 3) << 4)) - 32)
                out[r, 256 * k:256 * (k + 1)] = y
        return out
    raise ValueError(f"no test de-quantizer for {qtype}")


def random_k_blocks(qtype, rows: int, n: int, seed: int = 0) -> np.ndarray:
    """Random Q4_K / Q6_K bytes `[rows, n / 256 * block]` with finite, moderate f16 scales."""
    rng = np.random.default_rng(seed)
    size = {Q.Q4_K: 144, Q.Q6_K: 210}[qtype]
    b = rng.integers(0, 256, (rows, n // 256, size), dtype=np.uint8)
    halves = rng.uniform(0.001, 0.05, (rows, n // 256, 2)).astype(np.float16).view(np.uint8)
    if qtype == Q.Q4_K:
        b[..., 0:4] = halves
    else:
        b[..., 208:210] = halves[..., 0:2]
    return b.reshape(rows, -1)


# ---- an independent float64 forward of a llama GGUF ------------------------------------------------

class Float64Llama:
    """llama.cpp's LLaMA forward in float64 NumPy from a GGUF's stored tensors, with a KV cache.

    Tensors are de-quantized with `dequantize` above (not gguf's code, not neurojax's); q and k are
    used as stored (permuted), with llama.cpp's rotary mode 0 (adjacent pairs (2i, 2i+1) rotated by
    `pos * base^(-2i / D)`), which is what the permutation was made for.
    """

    def __init__(self, path: str):
        r = gguf.GGUFReader(path)
        f = {k: v.contents() for k, v in r.fields.items() if not k.startswith("tokenizer.")}
        a = f["general.architecture"]
        self.layers, self.heads = f[f"{a}.block_count"], f[f"{a}.attention.head_count"]
        self.kv_heads = f.get(f"{a}.attention.head_count_kv", self.heads)
        self.theta = f.get(f"{a}.rope.freq_base", 10000.0)
        self.eps = f[f"{a}.attention.layer_norm_rms_epsilon"]
        self.t = {}
        for t in r.tensors:
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            data = np.asarray(t.data)
            self.t[t.name.removesuffix(".weight")] = dequantize(
                data.reshape(-1, data.shape[-1]) if data.ndim > 1 else data[None], t.tensor_type,
                shape[-1]).reshape(shape)
        self.head_dim = self.t["blk.0.attn_q"].shape[0] // self.heads
        self.out = self.t.get("output", self.t["token_embd"])
        self.reset()

    def reset(self):
        self.cache = [([], []) for _ in range(self.layers)]
        self.pos = 0

    def _rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def _rope(self, x, positions):  # x [T, H, D], adjacent pairs
        D = x.shape[-1]
        freq = self.theta ** (-np.arange(0, D, 2) / D)
        ang = positions[:, None, None] * freq[None, None, :]
        c, s = np.cos(ang), np.sin(ang)
        even, odd = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = even * c - odd * s, even * s + odd * c
        return out

    def __call__(self, ids) -> np.ndarray:
        """Logits `[T, V]` for `ids` appended to what the cache holds."""
        ids = np.asarray(ids)
        T, H, K, D = len(ids), self.heads, self.kv_heads, self.head_dim
        positions = self.pos + np.arange(T, dtype=np.float64)
        x = self.t["token_embd"][ids]
        for l in range(self.layers):
            p = f"blk.{l}."
            h = self._rms(x, self.t[p + "attn_norm"])
            q = self._rope((h @ self.t[p + "attn_q"].T).reshape(T, H, D), positions)
            k = self._rope((h @ self.t[p + "attn_k"].T).reshape(T, K, D), positions)
            v = (h @ self.t[p + "attn_v"].T).reshape(T, K, D)
            ks, vs = self.cache[l]
            ks.append(k)
            vs.append(v)
            keys, values = np.concatenate(ks), np.concatenate(vs)
            S = len(keys)
            att = np.empty((T, H, D))
            for head in range(H):
                g = head // (H // K)
                scores = q[:, head] @ keys[:, g].T / np.sqrt(D)
                scores[np.arange(S)[None, :] > (self.pos + np.arange(T))[:, None]] = -np.inf
                prob = np.exp(scores - scores.max(-1, keepdims=True))
                att[:, head] = (prob / prob.sum(-1, keepdims=True)) @ values[:, g]
            x = x + att.reshape(T, H * D) @ self.t[p + "attn_output"].T
            h = self._rms(x, self.t[p + "ffn_norm"])
            gate = h @ self.t[p + "ffn_gate"].T
            x = x + ((gate / (1 + np.exp(-gate))) * (h @ self.t[p + "ffn_up"].T)) @ self.t[p + "ffn_down"].T
        self.pos += T
        return self._rms(x, self.t["output_norm"]) @ self.out.T

    def greedy(self, prompt, steps: int) -> list[int]:
        self.reset()
        logits = self(prompt)
        out = []
        for _ in range(steps):
            out.append(int(np.argmax(logits[-1])))
            logits = self([out[-1]])
        return out

    def bits_per_byte(self, ids, byte_lengths: np.ndarray) -> float:
        self.reset()
        logits = self(ids[:-1])
        logp = logits - logits.max(-1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
        nll = -logp[np.arange(len(ids) - 1), ids[1:]].sum()
        return float(nll / np.log(2) / byte_lengths[ids[1:]].sum())


def truncate(path: str, fraction: float, out: Optional[str] = None) -> str:
    data = open(path, "rb").read()
    out = out or path
    with open(out, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return out
