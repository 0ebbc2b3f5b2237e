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
# # 01 · Quickstart: config, train, generate, inspect
#
# The MatMul-free LM end to end with the library functions the binaries use:
# a run config (`neurojax.train.run_config`), training (`neurojax.train.train`, the same loop as
# `python -m experiments.train`), generation (`neurojax.inference.generate`) and a look at the
# ternary weights. About a minute on a 2-core CPU; `NEUROJAX_NOTEBOOK_SMALL=1` (what CI sets)
# trains 40 steps instead of 300.

# %%
import math
import os
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import neurojax.nn as nj
from neurojax.data import ByteTokenizer
from neurojax.inference import SamplingConfig, generate
from neurojax.notebook import fresh_workdir, show, small_settings
from neurojax.quant import ternary_codes
from neurojax.train import load_trained, run_config, train
from neurojax.train.metrics import read_metrics

SMALL = small_settings()
WORKDIR = fresh_workdir("nb01")  # a fresh run every time the notebook runs
started = time.time()



# %% [markdown]
# ## Config
# `run_config("tiny")` is the `ml_collections` config the training binary reads
# (`--config=experiments/configs/lm.py:tiny`). We narrow the tiny preset (2 layers of width 128)
# so that a few hundred steps take a minute here; every field can be set the same way.

# %%
cfg = run_config("tiny")
cfg.model.update(d_model=128, num_layers=2, intermediate_size=256)
cfg.train.update(num_steps=40 if SMALL else 300, batch_size=8, seq_len=64, warmup_steps=10 if SMALL else 30,
                 log_every=10 if SMALL else 25, eval_every=0, eval_batches=2, checkpoint_every=10**6)
model_cfg = nj.ModelConfig.from_dict(cfg.model.to_dict())
print(model_cfg)
print(f"{nj.count_params(model_cfg):,} parameters")

# %% [markdown]
# ## Init and one forward pass
# A whole sequence at once (the recurrence scanned inside each layer), or one token at a time
# with the explicit per-layer state: both give the same logits.

# %%
model = nj.MatMulFreeLM(model_cfg)
params = nj.init_params(model, jax.random.PRNGKey(0))
tokens = jnp.asarray(ByteTokenizer().encode("def main():")[None])
logits, state = model.apply({"params": params}, tokens)
step_logits, s = [], nj.initial_state(model_cfg, 1)
for t in range(tokens.shape[1]):
    out, s = nj.decode_step(model, {"params": params}, tokens[:, t], s)
    step_logits.append(out)
gap = float(jnp.max(jnp.abs(jnp.stack(step_logits, 1) - logits)))
print("logits", logits.shape, "| state per layer", [x.shape for x in state], f"| sequence vs step max |diff| {gap:.1e}")

# %% [markdown]
# ## Train
# The same resumable loop as the binary: checkpoints, `metrics.jsonl` and `loss.png` land in
# the workdir; running the cell again resumes (here: finds the run complete).

# %%
summary = train(cfg, WORKDIR)
records = read_metrics(os.path.join(WORKDIR, "metrics.jsonl"))
steps = [r["step"] for r in records if "loss" in r]
losses = [r["loss"] for r in records if "loss" in r]
val_loss = summary["validation"]["loss"]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(steps, losses, marker="o", label="train loss (logged)")
ax.axhline(math.log(model_cfg.vocab_size), color="gray", ls="--", label="uniform over 259 bytes")
ax.axhline(val_loss, color="C1", ls=":", label=f"validation {val_loss:.3f}")
ax.set(xlabel="step", ylabel="cross-entropy (nats)", title="tiny MatMul-free LM (ternary)")
ax.legend()
show(fig)
print(f"validation: {summary['validation']['bits_per_byte']:.3f} bits/byte")

# %% [markdown]
# ## Generate
# `load_trained` restores the workdir as the binaries do; `inference_variables` packs every
# ternary weight into 2 bits once, and decoding runs the `int8 x packed ternary` kernel.

# %%
trained = load_trained(WORKDIR)
variables = nj.inference_variables(trained.model, trained.params)
tok = ByteTokenizer()
prompt = tok.encode("def ")
generated = generate(trained.model, variables, prompt[None], 120, jax.random.PRNGKey(0),
                     SamplingConfig(temperature=0.8, top_k=20))
text = tok.decode(np.asarray(generated[0]))
print("def " + text)

# %% [markdown]
# ## Inspect the parameters
# Every projection holds a latent float weight; what the model computes with are its ternary
# codes `round(W / mean|W|)` in {-1, 0, +1} and one scale per tensor.

# %%
codes = []
for path, w in jax.tree_util.tree_leaves_with_path(trained.params):
    name = jax.tree_util.keystr(path)
    if name.endswith("['weight']") and w.ndim == 2 and "embeddings" not in name:
        c, _ = ternary_codes(w)
        codes.append(np.asarray(c).ravel())
codes = np.concatenate(codes)
values, counts = np.unique(codes, return_counts=True)
fig, ax = plt.subplots(figsize=(4, 3))
ax.bar([str(int(v)) for v in values], counts / counts.sum())
ax.set(xlabel="ternary code", ylabel="fraction of projection weights", title="ternary weight histogram")
show(fig)
bits = nj.weight_memory_bits(model_cfg)
float_bits = 32 * nj.count_params(model_cfg)
print(f"weights: {bits['total'] / 8 / 1024:.1f} KiB packed ternary vs {float_bits / 8 / 1024:.1f} KiB float32 "
      f"({float_bits / bits['total']:.1f}x smaller); projections alone {bits['projection'] / 8 / 1024:.1f} KiB")
print(f"notebook time so far: {time.time() - started:.0f} s")

# %% [markdown]
# ## Checks
# The cell fails if what the notebook showed is wrong: the model learned (validation loss well
# under the uniform predictor's), sequence and token-by-token forms agree, the codes are
# ternary, the packed model generated text, and packing saves memory.

# %%
assert val_loss < math.log(model_cfg.vocab_size) - 1.0, val_loss
assert losses[-1] < losses[0], (losses[0], losses[-1])
assert gap < 1e-4, gap
assert set(values.tolist()) <= {-1.0, 0.0, 1.0} and len(values) == 3
assert generated.shape == (1, 120) and len(text) > 0
assert bits["total"] * 4 < float_bits
print("all checks passed")
