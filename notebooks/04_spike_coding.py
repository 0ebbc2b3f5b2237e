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
# # 04 · Spike coding of real activations
#
# SpikingBrain's adaptive-threshold coding turns each activation `x` of a token into an integer
# spike count `round(x / V_th)` with `V_th = mean|x| / k`, then expands the counts into spike
# trains (binary, ternary, bitwise, two's complement; `neurojax.spiking.coding`). Setting
# `ModelConfig.spike_k` codes every BitLinear input of the LM this way. Here we code the
# activations of a trained model, look at the trains of each coding, and measure sparsity and
# bits per byte against `k`. About a minute and a half on a 2-core CPU;
# `NEUROJAX_NOTEBOOK_SMALL=1` trains 30 steps instead of 200 and tries three values of k.

# %%
import time

import flax
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from neurojax.eval import evaluate_lm
from neurojax.nn import MatMulFreeLM
from neurojax.nn.bitlinear import SPIKE_COUNTS
from neurojax.nn.mlgru import TAPS
from neurojax.notebook import fresh_workdir, show, small_settings
from neurojax.spiking.coding import (
    CODINGS,
    adaptive_threshold,
    decode,
    encode,
    sparsity,
    spike_counts,
)
from neurojax.train import load_trained, run_config, train
from neurojax.train.data_setup import load_run_data

SMALL = small_settings()
WORKDIR = fresh_workdir("nb04")
K_VALUES = (1.0, 3.0, 8.0) if SMALL else (1.0, 2.0, 3.0, 5.0, 8.0)
started = time.time()



# %% [markdown]
# ## A trained ternary model and its activations
# We train the narrowed tiny config briefly, then read real activations: the residual stream
# entering layer 0's channel mixer (a tap the model sows), and the spike counts of every
# BitLinear input when the same weights run with `spike_k` set (sown in `SPIKE_COUNTS`).

# %%
cfg = run_config("tiny")
cfg.model.update(d_model=128, num_layers=2, intermediate_size=256)
cfg.train.update(num_steps=30 if SMALL else 200, batch_size=8, seq_len=64, warmup_steps=5 if SMALL else 20,
                 log_every=10 if SMALL else 50, eval_every=0, eval_batches=2, checkpoint_every=10**6)
train(cfg, WORKDIR)
trained = load_trained(WORKDIR)
params, base_cfg = trained.params, trained.model.config
data = load_run_data(cfg, eval_batches=2)
window = jnp.asarray(data.validation[0][:4, :-1])  # 4 sequences of 64 real bytes of Python source
_, taps = trained.model.apply({"params": params}, window, mutable=[TAPS])
x = np.asarray(taps[TAPS]["layers_0"]["resid_mid"][0][0, 10])  # one token's activation vector [d]

# %% [markdown]
# ## The adaptive threshold
# The threshold follows each token's own scale: `V_th = mean|x| / k`. Larger `k` means a finer
# step, larger counts and more spikes.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
axes[0].hist(x, bins=40, color="C0")
for k in (1.0, 3.0, 8.0):
    v_th = float(adaptive_threshold(x, k)[0])
    axes[0].axvline(v_th, ls="--", color=f"C{int(k)}", label=f"V_th at k={k:g}: {v_th:.2f}")
axes[0].set(xlabel="activation", ylabel="channels", title="one token's activations")
axes[0].legend()
for k in (1.0, 3.0, 8.0):
    axes[1].plot(np.sort(np.asarray(spike_counts(x, k)[0])), label=f"k={k:g}")
axes[1].set(xlabel="channel (sorted)", ylabel="spike count", title="counts round(x / V_th)")
axes[1].legend()
show(fig)

# %% [markdown]
# ## The spike trains of each coding
# The same counts (this token, k = 3) expanded into trains: rows are time steps, columns
# channels, white +1, black -1, gray no spike. Binary trains are unsigned, so a signed tensor is
# shifted by a zero point (`-min`): every channel then spikes. Each train decodes back to the
# counts exactly.

# %%
counts = np.asarray(spike_counts(x, 3.0)[0])
trains = {coding: encode(counts, coding) for coding in CODINGS}
fig, axes = plt.subplots(len(CODINGS), 1, figsize=(11, 1.0 + 1.1 * len(CODINGS)), sharex=True)
for ax, (coding, st) in zip(axes, trains.items()):
    ax.imshow(np.asarray(st.train), aspect="auto", interpolation="nearest", cmap="gray", vmin=-1, vmax=1)
    ax.set_ylabel(f"{coding}\nT={st.T}")
    ax.set_title(f"{coding}: sparsity {float(sparsity(st)):.2f}", fontsize=9, loc="right")
axes[-1].set_xlabel("channel")
show(fig)
exact = all(np.array_equal(np.asarray(decode(st)), counts) for st in trains.values())
print("every coding decodes exactly:", exact)

# %% [markdown]
# ## Sparsity and bits per byte against k
# For each k, the model with the same weights and `spike_k=k` is evaluated on validation text
# (`evaluate_lm`, as `python -m experiments.evaluate` does), and every BitLinear input's counts are
# expanded with each coding; sparsity is the fraction of (step, channel) slots without a spike,
# over all inputs. The dashed line is the same model with absmax int8 inputs.

# %%
def coding_sparsity(sown: dict) -> dict:
    """Zero fraction of the trains of every sown count tensor, per coding (weighted by train size)."""
    zeros, total = dict.fromkeys(CODINGS, 0), dict.fromkeys(CODINGS, 0)
    for c in sown.values():
        c = np.asarray(c[0] if isinstance(c, tuple) else c)
        for coding in CODINGS:
            st = encode(c, coding)
            size = int(np.prod(st.train.shape))
            zeros[coding] += float(sparsity(st)) * size
            total[coding] += size
    return {coding: zeros[coding] / max(total[coding], 1) for coding in CODINGS}


base_bpb = evaluate_lm(trained.model, {"params": params}, data.validation, data.byte_lengths)["bits_per_byte"]
rows = []
for k in K_VALUES:
    model_k = MatMulFreeLM(base_cfg.replace(spike_k=k))
    bpb = evaluate_lm(model_k, {"params": params}, data.validation, data.byte_lengths)["bits_per_byte"]
    _, sown = model_k.apply({"params": params}, window, mutable=[SPIKE_COUNTS])
    flat = flax.traverse_util.flatten_dict(jax.device_get(sown[SPIKE_COUNTS]), sep="/")
    rows.append((k, bpb, coding_sparsity(flat)))
    print(f"k={k:g}: {bpb:.3f} bits/byte, sparsity " + ", ".join(f"{c} {s:.3f}" for c, s in rows[-1][2].items()))
print(f"absmax int8 inputs: {base_bpb:.3f} bits/byte")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for coding in CODINGS:
    axes[0].plot(K_VALUES, [r[2][coding] for r in rows], marker="o", label=coding)
axes[0].set(xlabel="k", ylabel="sparsity (no-spike slots)", title="sparsity of the trains", xscale="log")
axes[0].legend()
axes[1].plot(K_VALUES, [r[1] for r in rows], marker="o", label="spike-coded inputs")
axes[1].axhline(base_bpb, ls="--", color="gray", label="absmax int8 inputs")
axes[1].set(xlabel="k", ylabel="bits per byte", title="validation bits per byte", xscale="log")
axes[1].legend()
show(fig)
print(f"notebook time: {time.time() - started:.0f} s")

# %% [markdown]
# ## Checks

# %%
assert exact
bpbs = [r[1] for r in rows]
bitwise = [r[2]["bitwise"] for r in rows]
assert bpbs[-1] < bpbs[0], bpbs  # a finer threshold loses less of the activations ...
assert bitwise[-1] < bitwise[0], bitwise  # ... and spikes more
assert abs(bpbs[-1] - base_bpb) < 0.1 * base_bpb, (bpbs[-1], base_bpb)  # k=8 is close to int8
assert all(0.0 < s < 1.0 for r in rows for s in r[2].values())
print("all checks passed")
