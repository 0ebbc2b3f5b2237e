"""Table (by name): SmolLM2-135M as the teacher of a SpikingBrain-style hybrid conversion.

The conversion issue's pipeline on a real pretrained model, in this process (no workdirs: the teacher
is the imported GGUF, `smollm2.load_smollm2`):

1. Convert (`nn.hybrid_conversion.convert_params`, settings `CONVERSION`): embeddings, norms, MLPs and
   head kept; even layers gated linear attention, odd layers sliding-window attention, both reusing
   SmolLM2's q/k/v/o; each GLA layer's decay half-life and output gain fitted on `CALIBRATION` batches.
2. Continual training with distillation for `4N` steps of `BATCH` x `SEQ` SmolLM2 tokens of the corpus's
   training text (`train.step.make_train_step` with `Distillation`, the library's AdamW with
   `NEW_PARAMS_LR_SCALE` on the parameters the conversion added), bits per byte on the validation
   windows at 0, N, 2N and 4N steps.
3. The distilled model spike-coded with no retraining (k = `SPIKE_K`): bits per byte and sparsity.
4. Decoding-state memory vs context length: SmolLM2's KV cache vs the hybrid's fixed state.

The default `N` makes the whole table about 20 minutes on a 2-core CPU; nothing is checkpointed (a
by-name table: rerun it).
"""
import time
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from neurojax.data.iterator import BatchIterator
from neurojax.errors import NeurojaxError
from neurojax.eval import evaluate_lm
from neurojax.nn.hybrid import HybridLM, hybrid_state_bytes
from neurojax.nn.hybrid_conversion import ConversionConfig, convert_params, new_param_paths, student_config
from neurojax.nn.transformer import transformer_state_bytes
from neurojax.tables import smollm2
from neurojax.tables.registry import Table, TableContext, register_table
from neurojax.tables.spiking_sparsity import spike_stats
from neurojax.train.optim import make_optimizer
from neurojax.train.step import Distillation, init_train_state, make_train_step

N_STEPS = 40  # N: validation at 0, N, 2N, 4N continual steps
BATCH, SEQ = 4, 128
TRAIN_CHARS = 4_000_000  # the prefix of the corpus's training text that is tokenized for training windows
CONVERSION = ConversionConfig(layout="alternate", window=SEQ // 2, decay_rank=16)
CALIBRATION = (2, 8, 64)  # batches x batch size x tokens on which each GLA layer is fitted
KL_WEIGHT, TEMPERATURE = 1.0, 1.0
LEARNING_RATE = 3e-4  # peak, warmup 10% then decay to 10%: SmolLM2 is trained already
NEW_PARAMS_LR_SCALE = 10.0
SPIKE_K = 3.0
CONTEXT_LENGTHS = (512, 2048, 8192)  # decoding-state memory rows
SEED = 0
LOG_EVERY = 10


def _train_tokens(m, data: Optional[str]) -> np.ndarray:
    """SmolLM2 tokens of the first `TRAIN_CHARS` characters of the corpus's training split."""
    text, name = smollm2.split_text(data, "train")
    tokens = np.asarray(m.hf_tokenizer().encode(text[:TRAIN_CHARS]), np.int32)
    if len(tokens) < max(SEQ, CALIBRATION[2]) + 1:
        raise NeurojaxError(f"the training text of {name} has {len(tokens)} SmolLM2 tokens, too few for windows of "
                            f"{max(SEQ, CALIBRATION[2]) + 1}; give more text with --data")
    return tokens


def _optimizer(steps: int, new_paths: set, params: dict):
    t = ml_collections.ConfigDict(dict(learning_rate=LEARNING_RATE, warmup_steps=max(1, steps // 10),
                                       num_steps=steps, grad_clip=1.0, b1=0.9, b2=0.95, weight_decay=0.1))
    multipliers = jax.tree_util.tree_map_with_path(
        lambda path, _: NEW_PARAMS_LR_SCALE if tuple(k.key for k in path) in new_paths else 1.0, params)
    return make_optimizer(t, multipliers)


@register_table("smollm2_conversion", "SmolLM2-135M converted to the SpikingBrain-style hybrid and distilled: "
                "bits/byte vs training tokens, spike coding, decode memory", default=False)
def build(ctx: TableContext) -> list[Table]:
    m = smollm2.load_smollm2(ctx.log)
    tcfg = m.config
    student = student_config(tcfg, CONVERSION)
    windows, corpus = smollm2.eval_windows(m, ctx.data, smollm2.EVAL_ROWS, smollm2.EVAL_SEQ)
    byte_lengths = m.byte_lengths()
    tokens = _train_tokens(m, ctx.data)
    ctx.log(f"[smollm2_conversion] {len(tokens):,} training tokens from the {corpus} training text; "
            f"layout {'/'.join(student.layer_kinds)}, window {student.window}")

    def bpb(model, params) -> float:
        return evaluate_lm(model, {"params": params}, [windows], byte_lengths)["bits_per_byte"]

    teacher_bpb = smollm2.dense_bits_per_byte(m, windows)["bits_per_byte"]
    n_cal, b_cal, t_cal = CALIBRATION
    calib_it = BatchIterator(tokens, b_cal, t_cal, seed=SEED + 1)
    calibration = [calib_it.peek(i)[:, :-1] for i in range(n_cal)]
    params, report = convert_params(tcfg, m.params, student, jax.random.PRNGKey(SEED), calibration,
                                    CONVERSION.half_lives, log=ctx.log)
    params = jax.tree.map(jnp.copy, params)  # reused tensors are the teacher's own arrays: the step donates its state
    model = HybridLM(student)
    tokens_per_step = BATCH * SEQ
    rows = []

    def row(label, steps, value, how, sparsity=""):
        tokens = "" if steps is None else steps * tokens_per_step  # None: pretrained elsewhere
        rows.append([label, "" if steps is None else steps, tokens, value, 100 * (value / teacher_bpb - 1), sparsity,
                     how])

    row("teacher: SmolLM2-135M-Instruct", None, teacher_bpb, "imported GGUF, float32, pretrained elsewhere")
    converted_bpb = bpb(model, params)
    row("converted, 0 steps (calibrated init)", 0, converted_bpb, "conversion only: reused weights + fitted decay "
        "and gains")
    ctx.log(f"[smollm2_conversion] teacher {teacher_bpb:.4f} bits/byte, converted {converted_bpb:.4f}")

    total = 4 * N_STEPS
    new_paths = set(new_param_paths(student))
    optimizer = _optimizer(total, new_paths, params)
    state = init_train_state(model, optimizer, SEED, SEQ, params=params)
    step = make_train_step(model, optimizer,
                           distill=Distillation(m.model, m.params, KL_WEIGHT, TEMPERATURE))
    data = BatchIterator(tokens, BATCH, SEQ, seed=SEED)
    losses, start = [], time.time()
    for i in range(1, total + 1):
        state, metrics = step(state, data.peek(i - 1))
        losses.append({k: float(v) for k, v in metrics.items()})
        if i % LOG_EVERY == 0 or i == total:
            rate = i * tokens_per_step / (time.time() - start)
            ctx.log(f"[smollm2_conversion] step {i}/{total}: loss {losses[-1]['loss']:.3f} (ce {losses[-1]['ce']:.3f}, "
                    f"kl {losses[-1]['kl']:.3f}), {rate:.0f} tokens/s, ~{(total - i) * tokens_per_step / rate:.0f} s left")
        if i in (N_STEPS, 2 * N_STEPS, 4 * N_STEPS):
            value = bpb(model, state["params"])
            row(f"converted + distillation, {i // N_STEPS}N steps", i, value,
                f"LM loss + {KL_WEIGHT:g} x KL(teacher || student), T = {TEMPERATURE:g}")
            ctx.log(f"[smollm2_conversion] {i} steps: {value:.4f} bits/byte")
    spiking = HybridLM(student.replace(spike_k=SPIKE_K))
    stats = spike_stats(spiking, state["params"], [windows[:smollm2.STAT_ROWS]])
    row(f"distilled 4N, spike-coded k={SPIKE_K:g}", total, bpb(spiking, state["params"]),
        "no retraining: every projection input except the MLP down projection", stats.sparsity)
    final = rows[-2][3]
    recovered = (converted_bpb - final) / (total * tokens_per_step)
    first, last = losses[0], losses[-1]
    recovery = Table(
        name="smollm2_conversion",
        title=f"SmolLM2-135M converted to the hybrid ({'/'.join(student.layer_kinds[:4])}... over {student.num_layers} "
              f"layers, window {student.window}) and distilled: bits/byte vs training tokens ({corpus}, N = "
              f"{N_STEPS} steps of {BATCH}x{SEQ} tokens)",
        columns=["model", "train steps", "train tokens", "val bits/byte", "gap to teacher (%)", "activation sparsity",
                 "how"],
        rows=rows,
        notes=[
            f"val bits/byte: measured in this run on the smollm2 table's validation windows ({smollm2.EVAL_ROWS} x "
            f"{smollm2.EVAL_SEQ + 1} SmolLM2 tokens of the {corpus} validation text).",
            f"Recovered per training token: {recovered:.3g} bits/byte per token ({converted_bpb:.4f} -> {final:.4f} "
            f"over {total * tokens_per_step:,} tokens); training loss {first['loss']:.3f} -> {last['loss']:.3f} "
            f"(ce {first['ce']:.3f} -> {last['ce']:.3f}, kl {first['kl']:.3f} -> {last['kl']:.3f}). SmolLM2 was "
            "pretrained on trillions of tokens: this is a first look at recovery at a CPU budget, not a claim of "
            "SpikingBrain's figures.",
            f"Training: {total} steps of {BATCH} random windows of {SEQ + 1} tokens from the first "
            f"{TRAIN_CHARS:,} characters of the {corpus} training text; AdamW, peak learning rate {LEARNING_RATE:g} "
            f"(x{NEW_PARAMS_LR_SCALE:g} on the {len(new_paths)} parameters the conversion added), warmup "
            f"{max(1, total // 10)} steps, grad clip 1; settings not tuned on this model.",
            "Conversion calibration (relative error of each GLA layer vs SmolLM2's attention, fitted / random "
            "init): " + ", ".join(f"L{r.layer} {r.rel_error:.2f}/{r.rel_error_default:.2f}" for r in report) + ".",
            f"Spike coding: adaptive threshold mean|x|/k at k = {SPIKE_K:g}; sparsity of the bitwise spike trains "
            f"measured on {smollm2.STAT_ROWS} validation window(s).",
        ],
    )
    memory = Table(
        name="smollm2_conversion_memory",
        title="Decoding-state memory at batch 1: SmolLM2's KV cache vs the converted hybrid's state",
        columns=["context tokens", "SmolLM2 KV cache (MiB)", "hybrid state (MiB)", "ratio"],
        rows=[[n, transformer_state_bytes(tcfg, 1, n) / 2**20, hybrid_state_bytes(student, 1) / 2**20,
               transformer_state_bytes(tcfg, 1, n) / hybrid_state_bytes(student, 1)] for n in CONTEXT_LENGTHS],
        notes=["Computed from the decoding states' array shapes (transformer_state_bytes: float32 keys and values "
               f"for every position; hybrid_state_bytes: GLA states plus a {student.window}-slot ring buffer per SWA "
               "layer, the same at every length), not a process measurement."],
    )
    return [recovery, memory]
