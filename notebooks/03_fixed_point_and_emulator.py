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
# # 03 · Integer model and emulated neuromorphic cores
#
# A trained ternary LM becomes an int32-only model (`neurojax.fixedpoint`), which compiles onto
# emulated Loihi 2-like cores (`neurojax.neuromorphic`). We run a prompt through the cores, check
# every layer's outputs and the logits against the integer model bit for bit, and look at the
# events and the energy the cost model assigns to them: what `python -m experiments.quantize` and
# `python -m experiments.emulate` do, cell by cell. About two minutes on a 2-core CPU (compiling
# the interpreter step is most of it); `NEUROJAX_NOTEBOOK_SMALL=1` trains 30 steps instead of 200.

# %%
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from neurojax.data import ByteTokenizer
from neurojax.eval.integer import quantize_trained, score_integer
from neurojax.fixedpoint import IntQuantConfig, int_forward
from neurojax.neuromorphic import cost
from neurojax.neuromorphic.chip import chip_by_name
from neurojax.neuromorphic.compiler import compile_model
from neurojax.neuromorphic.emulate import first_mismatch, run_tokens
from neurojax.notebook import fresh_workdir, show, small_settings
from neurojax.train import load_trained, run_config, train

SMALL = small_settings()
WORKDIR = fresh_workdir("nb03")
started = time.time()



# %% [markdown]
# ## A small trained ternary model
# The narrowed tiny config (width 64, 2 layers) keeps the compiled network small.

# %%
cfg = run_config("tiny")
cfg.model.update(d_model=64, num_layers=2, intermediate_size=128)
cfg.train.update(num_steps=30 if SMALL else 200, batch_size=8, seq_len=64, warmup_steps=5 if SMALL else 20,
                 log_every=10 if SMALL else 50, eval_every=0, eval_batches=2, checkpoint_every=10**6)
summary = train(cfg, WORKDIR)
trained = load_trained(WORKDIR)

# %% [markdown]
# ## Convert to the integer-only model
# Static scales are calibrated on training batches (observers on the float model's taps), then
# every weight, norm, LUT and rescale becomes int32 arithmetic. The integer model is scored
# against the float one on validation batches.

# %%
qcfg = IntQuantConfig()
int_model = quantize_trained(trained, qcfg, calib_batches=2)
score = score_integer(trained, int_model, eval_batches=2)
print(f"bits/byte: float {score['float_bits_per_byte']:.4f}, integer {score['int_bits_per_byte']:.4f}; "
      f"top-1 agreement {100 * score['top1_agreement']:.2f}% of {score['tokens']:,} tokens; "
      f"saturations {score['overflow']}")

# %% [markdown]
# ## Compile onto emulated cores and run a prompt
# `compile_model` maps the integer model onto neuron groups, synapses and microcode programs,
# places them on cores, and pipelines the layers: in prefill mode token `t` enters at step `t`
# and its logits leave `depth` steps later.

# %%
chip = chip_by_name("loihi2_32bit")
compiled = compile_model(int_model, chip)
report = compiled.report()
print(report)
tok = ByteTokenizer()
prompt = tok.encode("def main():")
t0 = time.time()
emu = run_tokens(compiled, prompt, "prefill")
print(f"emulated {emu.num_steps} steps for {prompt.size} tokens in {time.time() - t0:.1f} s (first run compiles)")

# %% [markdown]
# ## The bit-exact check
# The integer model runs the same prompt with its taps recorded; `first_mismatch` compares every
# tap (each layer's outputs and the logits) at every token with what the cores produced.

# %%
params = jax.tree_util.tree_map(np.asarray, int_model.params)
int_logits, _, diag = int_forward(int_model.spec, params, np.asarray(prompt, np.int32)[None], with_taps=True)
reference = {k: np.asarray(v)[0] for k, v in diag["taps"].items()}
mismatch = first_mismatch(compiled, emu, reference)
print("bit-exact" if mismatch is None else f"NOT bit-exact: {mismatch}",
      f"over {len(emu.taps)} taps x {prompt.size} tokens")
next_ids = np.asarray(int_logits)[0].argmax(-1)
print("integer model's greedy next bytes after each prefix:", repr(tok.decode(next_ids)))

# %% [markdown]
# ## Events: raster, per-core counts
# Left: which probed neurons (every layer's outputs and the logits, in pipeline order) sent a
# graded spike at each step: the prompt's tokens travel through the layers as a band.
# Right: messages per core and step. Below: each counter summed per core.

# %%
sources = []  # every probed channel, in pipeline order
for _, tap in sorted(compiled.taps.items(), key=lambda kv: kv[1].depth):
    sources += [src for src in tap.sources if src not in sources]
raster = np.concatenate([emu.trace.probes[src] for src in sources], axis=-1) != 0
messages = np.asarray(emu.trace.counters["messages"])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].imshow(raster.T, aspect="auto", interpolation="nearest", cmap="Greys")
axes[0].set(xlabel="time step", ylabel="probed neuron (pipeline order)", title="event raster: probed neurons")
im = axes[1].imshow(messages.T, aspect="auto", interpolation="nearest", cmap="viridis")
axes[1].set(xlabel="time step", ylabel="core", title="messages per core and step")
fig.colorbar(im, ax=axes[1])
show(fig)

per_core = {k: np.asarray(v, np.int64).sum(axis=0) for k, v in emu.trace.counters.items()}
fig, ax = plt.subplots(figsize=(11, 3))
cores = np.arange(len(per_core["synops"]))
width = 0.8 / len(per_core)
for i, (name, counts) in enumerate(per_core.items()):
    ax.bar(cores + i * width, counts, width, label=name)
ax.set(xlabel="core", ylabel="events over the run", yscale="symlog", title="events per core")
ax.legend(ncol=len(per_core))
show(fig)

# %% [markdown]
# ## Energy and time from the cost model
# `cost.run_cost` prices each counter with the named energy model's per-event constants and adds
# static power over the modelled run time.

# %%
run = cost.run_cost(emu.trace, "loihi2_assumed", placement=compiled.placement)
print(f"{'term':<16}{'events':>14}{'energy (nJ)':>14}")
for term, joules in run.energy_j.items():
    print(f"{term:<16}{run.counts.get(term, ''):>14}{joules * 1e9:>14.3f}")
print(f"{'total':<16}{'':>14}{run.total_energy_j * 1e9:>14.3f}")
print(f"modelled time {run.total_time_s * 1e6:.1f} us for {prompt.size} tokens: "
      f"{run.total_energy_j / prompt.size * 1e6:.3f} uJ/token, {prompt.size / run.total_time_s:,.0f} tokens/s "
      f"on {run.cores} cores / {run.chips} chip(s)")
print(f"notebook time: {time.time() - started:.0f} s")

# %% [markdown]
# ## Checks

# %%
assert mismatch is None, mismatch
assert score["top1_agreement"] > 0.9, score["top1_agreement"]
assert summary["validation"]["loss"] < np.log(259) - 0.5
assert raster.any() and per_core["synops"].sum() > 0
assert run.total_energy_j > 0 and np.isclose(sum(run.energy_j.values()), run.total_energy_j)
print("all checks passed")
