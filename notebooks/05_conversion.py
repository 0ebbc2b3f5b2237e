# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Convert a Transformer into a SpikingBrain-style hybrid
#
# SpikingBrain-7B is not trained from scratch: it is Qwen2.5-7B converted, with each attention
# layer turned into gated linear attention (GLA) or sliding-window attention (SWA) that reuses the
# layer's q/k/v/o weights, then trained on a small fraction of the data with the teacher's logits as
# a target. Here we do the same to a small Transformer++ trained in the notebook, with the library
# functions the binaries use (`experiments/convert_hybrid.py`, `experiments/train.py
# --config=experiments/configs/continual.py:<converted>`), and watch how much of the teacher comes
# back per training token compared with the same hybrid trained from scratch. About two minutes on
# a 2-core CPU; `NEUROJAX_NOTEBOOK_SMALL=1` trains a quarter as long.

# %%
import json
import os
import time

import flax
import matplotlib.pyplot as plt
import numpy as np

from neurojax.eval import evaluate_lm
from neurojax.nn.hybrid_conversion import ConversionConfig, reused_paths
from neurojax.nn.transformer import transformer_initial_state
from neurojax.notebook import fresh_workdir, show, small_settings
from neurojax.tables.hybrid_scaling import measure_prefill
from neurojax.train import load_trained, run_config, train
from neurojax.train.convert import calibration_report, continual_config, convert_workdir
from neurojax.train.data_setup import load_run_data

SMALL = small_settings()
ROOT = fresh_workdir("nb05")
TEACHER_STEPS = 100 if SMALL else 400
N = TEACHER_STEPS // 20  # continual-training unit: 4N steps = 20% of the teacher's tokens
started = time.time()



def quiet(_msg):
    pass


# %% [markdown]
# ## The teacher
# A 4-layer Transformer++ (LLaMA-style: RoPE, SwiGLU, grouped-query attention) of width 64 on the
# embedded Python-stdlib corpus, byte tokens.

# %%
cfg = run_config("transformer_micro")
cfg.model.update(d_model=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=128)
cfg.train.update(num_steps=TEACHER_STEPS, batch_size=8, seq_len=64, warmup_steps=TEACHER_STEPS // 10,
                 learning_rate=3e-3, log_every=TEACHER_STEPS // 4, eval_every=0, eval_batches=4,
                 checkpoint_every=TEACHER_STEPS)
teacher_dir = os.path.join(ROOT, "teacher")
train(cfg, teacher_dir)
teacher = load_trained(teacher_dir)
data = load_run_data(teacher.config)


def bits_per_byte(model, params):
    return evaluate_lm(model, {"params": params}, data.validation, data.byte_lengths)["bits_per_byte"]


teacher_bpb = bits_per_byte(teacher.model, teacher.params)
print(f"teacher: {teacher_bpb:.3f} bits/byte after {TEACHER_STEPS} steps")

# %% [markdown]
# ## Conversion
# SpikingBrain-7B's layout: even layers GLA, odd layers SWA (window 16 here, a quarter of the
# training context). The GLA layers keep q/k/v/o and add a low-rank decay gate and a per-head
# output norm; their half-life and output gain are fitted to the teacher's attention outputs on a
# few calibration batches. Everything else is the teacher's tensors, bit for bit.

# %%
conv = ConversionConfig(layout="alternate", window=16, decay_rank=8)
converted_dir = os.path.join(ROOT, "converted")
convert_workdir(teacher_dir, converted_dir, conv, log=print)
converted = load_trained(converted_dir)
flat_t = flax.traverse_util.flatten_dict(teacher.params)
flat_c = flax.traverse_util.flatten_dict(converted.params)
reused = reused_paths(converted.model.config)
identical = all(np.asarray(flat_c[p]).tobytes() == np.asarray(flat_t[p]).tobytes() for p in reused)
print(f"{len(reused)} of {len(flat_c)} student tensors reused from the teacher; bit-identical: {identical}")
for r in calibration_report(converted_dir):
    print(f"layer {r['layer']}: half-life {r['half_life']:g} tokens, output error {r['rel_error']:.3f} "
          f"(random init {r['rel_error_default']:.3f})")
converted_bpb = bits_per_byte(converted.model, converted.params)
print(f"converted, before any training: {converted_bpb:.3f} bits/byte")

# %% [markdown]
# ## Continual training with distillation vs training from scratch
# The converted model trains for 4N steps on the LM loss plus the KL to the teacher's logits
# (`distill.kl_weight`), evaluated every N steps. The same hybrid, randomly initialised, gets the
# same 4N steps.

# %%
distilled = continual_config(converted_dir, num_steps=4 * N, kl_weight=1.0, learning_rate=1e-3)
distilled.train.update(eval_every=N, log_every=N)
train(distilled, os.path.join(ROOT, "distilled"), log=quiet)
scratch = continual_config(converted_dir, num_steps=4 * N, kl_weight=0.0)
scratch.init.params_from = ""  # the same architecture from a random initialisation
scratch.train.update(eval_every=N, log_every=N)
train(scratch, os.path.join(ROOT, "scratch"), log=quiet)


def curve(name):
    records = [json.loads(line) for line in open(os.path.join(ROOT, name, "metrics.jsonl"))]
    return {r["step"]: r["val_bits_per_byte"] for r in records if "val_bits_per_byte" in r}


tokens_per_step = cfg.train.batch_size * cfg.train.seq_len
d, s = curve("distilled"), curve("scratch")
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot([0] + [k * tokens_per_step for k in sorted(d)], [converted_bpb] + [d[k] for k in sorted(d)], "s-",
        label="converted + distillation")
ax.plot([k * tokens_per_step for k in sorted(s)], [s[k] for k in sorted(s)], "^-", label="hybrid from scratch")
ax.axhline(teacher_bpb, color="gray", ls=":", label="teacher")
ax.set(xlabel="training tokens", ylabel="validation bits/byte", title="recovery per training token")
ax.legend()
show(fig)
print(f"after {4 * N} steps ({4 * N * tokens_per_step:,} tokens, {4 * N / TEACHER_STEPS:.0%} of the teacher's): "
      f"converted {d[4 * N]:.3f}, from scratch {s[4 * N]:.3f}, teacher {teacher_bpb:.3f} bits/byte")

# %% [markdown]
# ## Decode memory
# The teacher's KV cache grows with the prompt; the converted model's state (GLA states and a
# 16-slot ring buffer per SWA layer) does not. Measured on the arrays a jitted prefill returns.

# %%
lengths = (32, 64, 128, 256)
final = load_trained(os.path.join(ROOT, "distilled"))
teacher_bytes, student_bytes = [], []
for n in lengths:
    teacher_bytes.append(measure_prefill(teacher.model, teacher.params, n, 64, 1,
                                         lambda b, n=n: transformer_initial_state(teacher.model.config, b, n))[1])
    student_bytes.append(measure_prefill(final.model, final.params, n, 64, 1)[1])
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(lengths, np.array(teacher_bytes) / 1024, "o-", label="teacher KV cache")
ax.plot(lengths, np.array(student_bytes) / 1024, "s-", label="converted state")
ax.set(xlabel="prompt tokens", ylabel="KiB", title="decoding state after the prompt")
ax.legend()
show(fig)
print(f"notebook time: {time.time() - started:.0f} s")

# %% [markdown]
# ## Checks

# %%
assert identical
assert all(r["rel_error"] < r["rel_error_default"] for r in calibration_report(converted_dir))
assert d[4 * N] < d[N] and d[4 * N] < s[4 * N], (d, s)  # recovers, and beats training from scratch
assert len(set(student_bytes)) == 1 and teacher_bytes == sorted(teacher_bytes) and teacher_bytes[-1] > student_bytes[0]
print("all checks passed")
